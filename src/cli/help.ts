// The help of every command: `carpd --help`, `carpd COMMAND --help`, and the text
// after a usage error.

import { DEFAULT_CONFIG, DEFAULT_CONTROL_PORT } from './args.js'

export const HELP: Record<string, string> = {
  fence: `usage: carpd fence NODE   (started by carpd run itself; not for operators)

The fence of a board with a witness: reads "hold VHID MS IFACE CIDR,..." and
"drop VHID" lines on stdin and removes a vhid's VIPs (ip addr del) when its hold
runs out, so a stopped or hung carpd cannot keep serving without its lease.
`,
  main: `usage: carpd [COMMAND] [OPTIONS]

commands:
  run -c FILE [--dry-run]     run the agent (the default command)
  check -c FILE               validate FILE, print the effective config; exit 1 on error
  rules -c FILE               print the firewall rules carpd would load (multi-WAN)
  witness -c FILE             run as the witness (third host)
  fence NODE                  (internal) started by run with a witness: removes the
                              VIPs of a master whose lease ran out while it hung
  status [-c FILE] [--json]   ask the running agent for its state
  ctl maint on|off [-c FILE]  maintenance mode: hand the VIPs to the peer, or take them back
  ctl demote N [-c FILE]      set the operator's demotion (0..255; 0 clears it)
  ctl resync [-c FILE]        force a full state resync
  help config                 the reference of every configuration key (Markdown)
  version                     print the version

Every command takes --help. The config file defaults to ${DEFAULT_CONFIG}.
exit codes: 0 ok, 1 bad config or usage, 2 runtime failure
`,
  run: `usage: carpd [run] -c FILE [--dry-run]

Runs the agent: CARP on every carp.N block of FILE; state sync when sync.interface
is set; split-brain protection when the peer is reachable on the sync link or the
serial line (serial.device), or a witness is set (then with a fence child process);
multi-WAN on the wan.N blocks (a file with only wan.N blocks is a single router).
  -c, --config FILE   the configuration (default ${DEFAULT_CONFIG})
  --dry-run           log the OS commands (ip, arping, hooks) instead of running them
                      (without it, platform = linux runs them: needs root)
Signals: TERM/INT bow out and stop; HUP reloads FILE (a bad file keeps the running
config and says why); USR1 prints the status to the console.
`,
  check: `usage: carpd check -c FILE [--system]

Validates FILE (with its board defaults and secret files) and prints the effective
configuration, secrets masked, each value with where it came from. Exit 1 on any error.
  --system   also check this board for FILE: the tools carpd runs and their flavour
             (ip, arping, conntrack, iptables-restore or nft), kernel conntrack and
             macvlan, every interface and the serial device (not the console),
             ip_forward and rp_filter, Node.js; each problem with the command that
             fixes it; exit 1 when something needed is missing
`,
  status: `usage: carpd status [-c FILE] [--json]

Asks the running agent over UDP on 127.0.0.1:control.port (read from FILE, default
${DEFAULT_CONFIG} when it exists, else ${DEFAULT_CONTROL_PORT}) and prints its state.
  --json   the same as JSON, for scripts
`,
  ctl: `usage: carpd ctl maint on|off | demote N | resync  [-c FILE] [--json]

  maint on     raise the demotion so the peer takes the VIPs over (planned switchover)
  maint off    clear it; with carp.preempt = yes this board takes the VIPs back
  demote N     set the operator's share of the demotion counter to N (0..255, 0 clears)
  resync       force a full state-table resync (state sync)
Prints the resulting status (--json for JSON).
`,
  rules: `usage: carpd rules -c FILE [--wan-state up,down,...] [--routes]

Prints the multi-WAN rules carpd would load for the wan.N blocks of FILE, in the
flavour of wan.rules: iptables (for iptables-restore --noflush), nft (for nft -f)
or pf (for pfctl -a carpd/wan -f -; FreeBSD syntax with platform = freebsd, else
OpenBSD's; its first lines say what the main pf.conf needs: the anchor, FreeBSD's
nat-anchor, reply-to on your pass rules for what comes in on a WAN). A WAN whose
interface has an IPv4 address now gets SNAT to it, the others MASQUERADE (pf: NAT
to the interface's address as it changes).
  -c, --config FILE     the configuration (default ${DEFAULT_CONFIG})
  --wan-state LIST      one up|down|degraded per WAN in wan number order, e.g. up,down
                        (default: all up); all down spreads over every WAN
  --routes              print the Linux policy routing (ip route / ip rule)
                        commands instead, one per line
`,
  witness: `usage: carpd witness -c FILE

Runs the witness: the third host that grants the pair leases on their vhids, one board
at a time, so that two masters never serve at once (split-brain protection). FILE:
  node = witness                     any name; it starts every console line (required)
  witness.listen = 192.0.2.50:8241   UDP address to listen on; port 8241 if none (required)
  witness.key = ...                  the boards' witness.key; or witness.keyfile = PATH
  witness.lease = 3s                 the longest lease granted; longer requests are cut
  witness.state = /cf/witness.state  where the epoch is kept; rewritten at each start
After a start it grants nothing for witness.lease x 1.01 + 250ms, since leases it
granted before may still run. Boards are shown by sender id (8 hex digits).
Signals: TERM/INT stop; USR1 prints the leases and drop counters to the console.
`,
  version: `usage: carpd version\n`,
  help: `usage: carpd help [config]\n`,
}
