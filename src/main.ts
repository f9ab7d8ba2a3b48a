// carpd's command line: parse argv, load the config, build the real clock, sockets and
// platform, start. Everything below this file is testable without the OS.

import { existsSync, readFileSync, statSync } from 'node:fs'
import { CONFIG_MAX_BYTES, SECRET_FILE_MAX_BYTES, readBoundedFile } from './io/files.js'
import { type NetworkInterfaceInfo, networkInterfaces } from 'node:os'
import { randomBytes } from 'node:crypto'
import { setFlagsFromString } from 'node:v8'
import { Agent, VERSION } from './carp/agent.js'
import { type ControlRequest, requestMac } from './control/protocol.js'
import { BOARDS } from './config/boards.gen.js'
import { ioError } from './config/errors.js'
import { loadConfig } from './config/load.js'
import { errorLines, formatErrors, renderEffective, renderReference } from './config/render.js'
import type { Cidr, Config, EffectiveEntry, Endpoint, LoadResult } from './config/types.js'
import { type Clock, realClock } from './io/clock.js'
import { controlRequest, startControlServer } from './io/control.js'
import { type Logger, lineLogger } from './io/log.js'
import type { Transport } from './io/transport.js'
import { openUdpTransport } from './io/udp.js'
import { dryRunPlatform } from './platform/dryrun.js'
import { linuxInterfaceNet, linuxPlatform } from './platform/linux.js'
import { conntrackBackend } from './platform/conntrack.js'
import { dryRunSyncBackend } from './platform/dryrun.js'
import { renderStatus } from './control/render.js'
import { SyncRuntime } from './sync/runtime.js'
import { QuorumRuntime } from './quorum/runtime.js'
import { SerialLine } from './platform/serial.js'
import { demux } from './io/demux.js'
import { VOTE_VERSION } from './wire/vote.js'
import { WITNESS_PORT_DEFAULT } from './quorum/witness.js'
import { masterDownMs } from './carp/vhid.js'
import { type Runner, execRunner } from './platform/exec.js'
import { dryRunWanApplier, linuxWanApplier, reversePathWarning } from './platform/wan.js'
import { WanRuntime } from './wan/runtime.js'
import { wanDemotion } from './wan/policy.js'
import { renderWanSet, routeCommands } from './wan/rules/index.js'
import { RulesError, parseWanStates, renderRules } from './wan/rules/index.js'
import { DEMOTE_WAN } from './carp/constants.js'
import { FenceCore, spawnFence } from './platform/fence.js'
import { IP_UDP_HEADER_BYTES, SYNC_MTU_DEFAULT, SYNC_RECV_BUFFER_BYTES } from './sync/constants.js'
import { SYNC_MAX_FRAME } from './wire/sync.js'
import { runWitness } from './quorum/witness-server.js'

const DEFAULT_CONFIG = '/cf/carpd.conf'
const DEFAULT_CONTROL_PORT = 8239
const RESYNC_POLL_MS = 200

const EXIT_OK = 0
const EXIT_USAGE = 1
const EXIT_RUNTIME = 2

const HELP: Record<string, string> = {
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
  check: `usage: carpd check -c FILE

Validates FILE (with its board defaults and secret files) and prints the effective
configuration, secrets masked, each value with where it came from. Exit 1 on any error.
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
OpenBSD's). A WAN whose interface has an IPv4 address now gets SNAT to it, the
others MASQUERADE (pf: NAT to the interface's address as it changes).
  -c, --config FILE     the configuration (default ${DEFAULT_CONFIG})
  --wan-state LIST      one up|down per WAN in wan number order, e.g. up,down
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

interface Args {
  command: string
  positional: string[]
  config: string | undefined
  dryRun: boolean
  json: boolean
  help: boolean
  routes: boolean // rules --routes
  wanState: string | undefined // rules --wan-state
}

/** Commands that take words after them; the others take options only. */
const TAKES_WORDS = new Set(['ctl', 'help', 'fence'])

function parseArgs(argv: string[]): Args | string {
  const args: Args = {
    command: 'run',
    positional: [],
    config: undefined,
    dryRun: false,
    json: false,
    help: false,
    routes: false,
    wanState: undefined,
  }
  const rest = [...argv]
  if (rest[0] !== undefined && !rest[0].startsWith('-')) args.command = rest.shift()!
  while (rest.length > 0) {
    const arg = rest.shift()!
    if (arg === '-c' || arg === '--config') {
      const file = rest.shift()
      if (file === undefined) return `${arg} needs a file name`
      args.config = file
    } else if (arg.startsWith('--config=')) args.config = arg.slice('--config='.length)
    else if (arg === '--dry-run') args.dryRun = true
    else if (arg === '--routes') args.routes = true
    else if (arg === '--wan-state') {
      const states = rest.shift()
      if (states === undefined) return `${arg} needs a list such as up,down`
      args.wanState = states
    }
    else if (arg === '--json') args.json = true
    else if (arg === '-h' || arg === '--help') args.help = true
    else if (arg.startsWith('-') && !/^-\d+$/.test(arg)) return `unknown option ${arg}`
    else args.positional.push(arg)
  }
  return args
}

/**
 * Reads and validates a configuration file. `secrets: false` skips reading the secret
 * files (`carpd status` needs only control.port, and may run as a user who cannot
 * read them).
 */
function readConfig(file: string, secrets = true): LoadResult {
  if (file === '') return { ok: false, warnings: [], errors: [ioError('-c ""', 'no file named')] }
  let text: string
  try {
    text = readBoundedFile(file, CONFIG_MAX_BYTES)
  } catch (err) {
    return { ok: false, warnings: [], errors: [ioError(file, (err as Error).message)] }
  }
  const readFile = secrets ? (path: string) => readBoundedFile(path, SECRET_FILE_MAX_BYTES) : () => 'not read'
  return loadConfig(text, file, { readFile, boards: BOARDS })
}

function loadOrExit(file: string, secrets = true): Config {
  const result = readConfig(file, secrets)
  for (const w of result.warnings) process.stderr.write(`carpd: warning: ${w}\n`)
  if (!result.ok) {
    process.stderr.write(formatErrors(result.errors))
    process.exit(EXIT_USAGE)
  }
  return result.config
}

/** The first IPv4 address os.networkInterfaces() lists for an interface (an own property: `constructor` is no interface). */
function ipv4Of(iface: string): NetworkInterfaceInfo | undefined {
  const all = networkInterfaces()
  return Object.hasOwn(all, iface) ? all[iface]?.find((a) => a.family === 'IPv4') : undefined
}

/**
 * The first IPv4 address of an interface with its prefix; undefined when it has none.
 * On Linux from `ip -j -4 addr`, which also lists interfaces whose link is down (a
 * router must start with a cable unplugged: that vhid waits in INIT); elsewhere from
 * os.networkInterfaces(), which lists only interfaces that are up.
 */

function interfaceNet(iface: string): Cidr | undefined {
  const fromIp = linuxInterfaceNet(iface)
  if (fromIp) return fromIp
  const found = ipv4Of(iface)
  if (!found) return undefined
  return { address: found.address, prefix: Number(found.cidr?.split('/')[1] ?? 32) }
}

async function run(args: Args): Promise<number> {
  // Keep V8's young generation at its first size instead of letting it grow to 32 MB
  // under a burst of sync traffic: that reservation alone broke the 80 MB budget for
  // 100,000 synced flows (npm run bench; README "State sync"). A flag read when the
  // heap grows, so setting it here works, unlike --max-semi-space-size.
  setFlagsFromString('--semi-space-growth-factor=1')
  const file = args.config ?? DEFAULT_CONFIG
  const config = loadOrExit(file)
  if (config.carp.vhids.length === 0 && config.wans.length === 0) {
    process.stderr.write(`carpd: ${file}: nothing to run: no carp.N block (e.g. carp.1.interface, carp.1.vip, carp.1.pass) and no wan.N block\n`)
    return EXIT_USAGE
  }
  if (config.wans.length > 0 && config.wanRules === 'pf' && !args.dryRun) {
    process.stderr.write(`carpd: wan.rules = pf: \`carpd rules\` prints them for pfctl, but loading them needs the BSD platform, not in this version (use iptables or nft on Linux)\n`)
    return EXIT_RUNTIME
  }
  const clock = realClock()
  const log = lineLogger(config.node, (line) => process.stdout.write(line), clock.wall)
  if (!args.dryRun && config.platform !== 'linux') {
    process.stderr.write(`carpd: platform ${config.platform}: only linux (or --dry-run) is in this version\n`)
    return EXIT_RUNTIME
  }
  const platform = args.dryRun ? dryRunPlatform(log) : linuxPlatform({ run: execRunner, log })
  const nets = new Map<string, Cidr>()
  for (const vc of config.carp.vhids) {
    const net = interfaceNet(vc.interface)
    if (net === undefined) {
      process.stderr.write(`carpd: carp.${vc.vhid}.interface = ${vc.interface}: no such interface with an IPv4 address\n`)
      return EXIT_RUNTIME
    }
    nets.set(vc.interface, net)
  }
  const multicast = new Map(
    config.carp.vhids.filter((vc) => vc.peers.length === 0).map((vc) => [vc.interface, nets.get(vc.interface)!.address]),
  )
  let transport
  try {
    transport = await openUdpTransport({ port: config.carp.port, bindAddress: '0.0.0.0', multicastInterfaces: multicast })
  } catch (err) {
    process.stderr.write(`carpd: cannot open the CARP socket on UDP port ${config.carp.port}: ${(err as Error).message}\n`)
    return EXIT_RUNTIME
  }
  const agent = new Agent({
    config,
    clock,
    transport,
    platform,
    log,
    random: randomBytes,
    interfaceNet: (iface) => nets.get(iface),
    multicastInterfaces: new Set(multicast.keys()),
  })
  let sync: { link: SyncRuntime | null; transport: Transport; quorum: Transport; peer: Endpoint } | null = null
  if (config.sync.interface && config.sync.peer) {
    const made = await openSync(config, [...nets.values()].map((n) => n.address), args.dryRun, log, clock, agent)
    if (typeof made === 'string') {
      process.stderr.write(`carpd: ${made}\n`)
      await transport.close()
      return EXIT_RUNTIME
    }
    sync = made
    if (sync.link) agent.attachSync(sync.link)
  }
  const quorum = await openQuorum(config, args.dryRun, log, clock, agent, sync)
  if (typeof quorum === 'string') {
    process.stderr.write(`carpd: ${quorum}\n`)
    await transport.close()
    await sync?.transport.close()
    return EXIT_RUNTIME
  }
  if (quorum) agent.attachQuorum(quorum.link)
  const wan = config.wans.length > 0 ? openWan(config, args.dryRun, log, clock, agent, quorum?.link ?? null) : null
  if (wan) agent.attachWan(wan)
  // With a witness a master holds its VIPs on a lease; the fence removes them when the
  // lease runs out and this process could not (SIGSTOP, hang). Not in --dry-run.
  const fence = quorum?.link.mode === 'witness' && !args.dryRun
    ? spawnFence({ argv: [process.execPath, process.argv[1]!, 'fence', config.node], log, onExpired: (vhid) => agent.fenceExpired(vhid) })
    : null
  if (fence) agent.attachFence(fence)
  let control
  try {
    control = await startControlServer(config.controlPort, (req) => agent.control(req))
  } catch (err) {
    process.stderr.write(`carpd: cannot open the control socket on 127.0.0.1:${config.controlPort}: ${(err as Error).message}\n`)
    await transport.close()
    await sync?.transport.close()
    await quorum?.close()
    return EXIT_RUNTIME
  }
  await platform.prepare?.()
  // Sync first: its startup demotion must be in place before the first advert; the
  // quorum link before the vhids, which report to it from their first event.
  sync?.link?.start()
  quorum?.link.start()
  quorum?.serial?.start()
  agent.start()
  await wan?.start()

  let stopping = false
  const stop = async (signal: string): Promise<void> => {
    if (stopping) return
    stopping = true
    log.event('carpd', `${signal}: stopping`)
    await agent.stop()
    await wan?.stop()
    fence?.close()
    quorum?.link.stop()
    await quorum?.close()
    await sync?.link?.stop()
    await sync?.transport.close()
    await control.close()
    await transport.close()
    process.exit(EXIT_OK)
  }
  process.on('SIGTERM', () => void stop('SIGTERM'))
  process.on('SIGINT', () => void stop('SIGINT'))
  process.on('SIGUSR1', () => {
    for (const line of renderStatus(agent.status()).trimEnd().split('\n')) log.event('status', line)
  })
  process.on('SIGHUP', () => {
    const result = readConfig(file)
    if (!result.ok) {
      log.event('config', `reload rejected, keeping the running configuration: ${result.errors.length} error(s)`)
      for (const line of errorLines(result.errors)) log.event('config', line)
      return
    }
    // What start refuses, a reload refuses too (it once claimed MASTER on a vhid whose
    // interface does not exist).
    // Only interfaces the running vhids do not use, each once: every look-up runs `ip`.
    const running = new Set(agent.status().vhids.map((v) => v.interface))
    const fresh = [...new Set(result.config.carp.vhids.map((vc) => vc.interface))].filter((iface) => !running.has(iface))
    const missing = new Set(fresh.filter((iface) => interfaceNet(iface) === undefined))
    if (missing.size > 0) {
      log.event('config', 'reload rejected, keeping the running configuration:')
      for (const vc of result.config.carp.vhids) {
        if (missing.has(vc.interface)) log.event('config', `carp.${vc.vhid}.interface = ${vc.interface}: no such interface with an IPv4 address`)
      }
      return
    }
    const notes = agent.reload(result.config)
    log.event('config', `reloaded ${file}${notes.length ? '' : ' (no change to the vhids)'}`)
  })
  return new Promise<number>(() => {}) // runs until a signal stops it
}

/**
 * The sync link: its socket on this board's address of sync.interface, shared by state
 * sync (when sync.backend is not none) and the quorum's heartbeats and votes.
 */
async function openSync(
  config: Config,
  ownAddresses: string[],
  dryRun: boolean,
  log: Logger,
  clock: Clock,
  agent: Agent,
): Promise<{ link: SyncRuntime | null; transport: Transport; quorum: Transport; peer: Endpoint } | string> {
  const { sync } = config
  if (sync.backend === 'pf') return 'sync.backend = pf: the pf backend is not part of this version (use conntrack on Linux)'
  const net = interfaceNet(sync.interface)
  if (net === undefined) return `sync.interface = ${sync.interface}: no such interface with an IPv4 address`
  const peer = { address: sync.peer!.address, port: sync.peer!.port || sync.port }
  let transport: Transport
  try {
    transport = await openUdpTransport({ port: sync.port, bindAddress: net.address, multicastInterfaces: new Map(), recvBufferBytes: SYNC_RECV_BUFFER_BYTES })
  } catch (err) {
    return `cannot open the sync socket on ${net.address}:${sync.port}: ${(err as Error).message}`
  }
  const [quorum, frames] = demux(transport, VOTE_VERSION)
  if (sync.backend === 'none') return { link: null, transport, quorum, peer }
  const link = new SyncRuntime({
    node: config.node,
    key: sync.key,
    peer,
    maxFrameBytes: Math.min(SYNC_MAX_FRAME, linkMtu(sync.interface) - IP_UDP_HEADER_BYTES),
    bulkTimeoutMs: sync.bulkTimeoutMs,
    clock,
    transport: frames,
    backend: dryRun ? dryRunSyncBackend(log) : conntrackBackend({ log }),
    log,
    random: randomBytes,
    demote: (reason, value, why) => agent.demote(reason, value, why),
    ignoreAddresses: [net.address, peer.address, ...ownAddresses],
  })
  return { link, transport, quorum, peer }
}

/**
 * Split-brain protection, on when the peer can be heard on a path besides the LAN
 * (sync link, serial line) or a witness is configured. Returns null when off.
 */
async function openQuorum(
  config: Config,
  dryRun: boolean,
  log: Logger,
  clock: Clock,
  agent: Agent,
  sync: { quorum: Transport; peer: Endpoint } | null,
): Promise<{ link: QuorumRuntime; serial: SerialLine | null; close(): Promise<void> } | string | null> {
  const w = config.witness.address
  if (!sync && !config.serial.device && !w) return null
  let witness: { transport: Transport; address: Endpoint; key: string } | null = null
  if (w) {
    try {
      const transport = await openUdpTransport({ port: 0, bindAddress: '0.0.0.0', multicastInterfaces: new Map() })
      witness = { transport, address: { address: w.address, port: w.port || WITNESS_PORT_DEFAULT }, key: config.witness.key }
    } catch (err) {
      return `cannot open a socket for the witness: ${(err as Error).message}`
    }
  }
  let link: QuorumRuntime | null = null
  let serial: SerialLine | null = null
  if (config.serial.device) {
    // --dry-run logs stty instead of running it; the port itself is still opened.
    const run: Runner = dryRun
      ? async (argv) => {
          log.event('dry-run', argv.join(' '))
          return { code: 0, stdout: '', stderr: '', timedOut: false }
        }
      : execRunner
    serial = new SerialLine({ device: config.serial.device, baud: config.serial.baud, run, clock, log, onFrame: (f) => link?.onSerialFrame(f) })
  }
  const lanTimeoutMs = Math.max(...config.carp.vhids.map((vc) => masterDownMs(vc.advbaseS, vc.advskew)))
  link = new QuorumRuntime({
    node: config.node,
    agent,
    clock,
    log,
    random: randomBytes,
    leaseMs: config.witness.leaseMs,
    heartbeatIntervalMs: config.heartbeat.intervalMs,
    heartbeatTimeoutMs: config.heartbeat.timeoutMs,
    lanTimeoutMs,
    peerKey: config.sync.key || config.witness.key,
    sync: sync && { transport: sync.quorum, peer: sync.peer },
    serial,
    witness,
  })
  const opened = { link, serial, close: async () => {
    await serial?.close()
    await witness?.transport.close()
  } }
  return opened
}

/**
 * `carpd fence NODE`: the child that guards a master's VIPs (platform/fence.ts). It
 * ignores the signals a terminal sends to the whole process group, so carpd drops its
 * holds first; it ends when carpd's end of the pipe closes.
 */
function runFence(node: string): Promise<number> {
  const clock = realClock()
  const log = lineLogger(node, (line) => process.stderr.write(line), clock.wall)
  const platform = linuxPlatform({ run: execRunner, log })
  const core = new FenceCore({ clock, log, removeVip: (iface, vip) => platform.removeVip(iface, vip), reply: (line) => process.stdout.write(`${line}\n`) })
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, () => {})
  return new Promise((resolve) => {
    process.stdin.setEncoding('utf8').on('data', (chunk: string) => core.push(chunk))
    process.stdin.on('end', () => void core.end().then(() => resolve(EXIT_OK)))
  })
}

/**
 * Multi-WAN: probes on a socket bound to each WAN's address, rules in the configured
 * flavour, and pair awareness: the WANs' health goes to the peer in every heartbeat,
 * and a board whose WANs are all offline while the peer has a healthy one is demoted
 * (SPEC "Multi-WAN").
 */
function openWan(config: Config, dryRun: boolean, log: Logger, clock: Clock, agent: Agent, quorum: QuorumRuntime | null): WanRuntime {
  const flavour = config.wanRules === 'nft' ? 'nft' : 'iptables'
  const link: WanRuntime = new WanRuntime({
    config,
    clock,
    log,
    random: randomBytes,
    applier: dryRun ? dryRunWanApplier(log) : linuxWanApplier({ run: execRunner, log }),
    render: (wans, plan) => renderWanSet(flavour, wans, plan),
    routes: (wans) => routeCommands(wans),
    openSocket: (address) => openUdpTransport({ port: 0, bindAddress: address, multicastInterfaces: new Map() }),
    addressOf: (iface) => interfaceNet(iface)?.address ?? null,
    // No `ip` process every few seconds: os.networkInterfaces() lists up interfaces.
    addressNow: (iface) => ipv4Of(iface)?.address ?? null,
    onRound: () => {
      const why = wanDemotion(link.states(), quorum?.peerWans() ?? null)
      agent.demote('wan', why ? DEMOTE_WAN : 0, why ?? 'a WAN is healthy again, or the peer has none')
    },
  })
  quorum?.setWans(() => link.states())
  for (const w of config.wans) {
    const warning = reversePathWarning(w.interface, (path) => readFileSync(path, 'utf8'))
    if (warning) log.event('wan', `warning: ${warning}`)
  }
  return link
}

/** The interface's MTU from sysfs; Ethernet's when it cannot be read. */
function linkMtu(iface: string): number {
  try {
    const mtu = Number(readFileSync(`/sys/class/net/${iface}/mtu`, 'utf8').trim())
    return Number.isInteger(mtu) && mtu >= 576 ? mtu : SYNC_MTU_DEFAULT
  } catch {
    return SYNC_MTU_DEFAULT
  }
}

function check(args: Args): number {
  const file = args.config ?? DEFAULT_CONFIG
  const result = readConfig(file)
  for (const w of result.warnings) process.stderr.write(`warning: ${w}\n`)
  if (!result.ok) {
    process.stderr.write(formatErrors(result.errors))
    process.stderr.write(`${file}: ${result.errors.length} error(s)\n`)
    return EXIT_USAGE
  }
  for (const w of exposedSecrets(result.effective)) process.stderr.write(`warning: ${w}\n`)
  process.stdout.write(`# ${file}: OK\n`)
  process.stdout.write(renderEffective(result.effective))
  return EXIT_OK
}

/**
 * Files holding a secret that other users may read: the CARP passwords authenticate
 * adverts and derive the key of `carpd ctl`, so anyone who can read them can take
 * the VIP or force a failover.
 */
function exposedSecrets(effective: readonly EffectiveEntry[]): string[] {
  const files = new Map<string, string>() // path → a secret key it holds
  for (const e of effective) {
    if (!e.secret) continue
    if (e.source.kind === 'file') files.set(e.source.file, e.key)
    if (e.source.kind === 'secretFile') files.set(e.source.path, e.key)
  }
  const warnings: string[] = []
  for (const [path, key] of files) {
    let mode: number
    try {
      mode = statSync(path).mode & 0o777
    } catch {
      continue
    }
    if ((mode & 0o077) === 0) continue
    warnings.push(`${path} holds ${key} and other users may read it (mode ${mode.toString(8).padStart(4, '0')}): chmod 600 ${path}`)
  }
  return warnings
}

/**
 * The configuration `status` and `ctl` talk about: -c FILE, else the default file if
 * there is one (none at all: the default control port, no secrets).
 */
function configFor(args: Args, secrets: boolean): Config | null {
  if (args.config !== undefined) return loadOrExit(args.config, secrets)
  if (!existsSync(DEFAULT_CONFIG)) return null
  return loadOrExit(DEFAULT_CONFIG, secrets)
}

async function ask(args: Args, req: ControlRequest): Promise<number> {
  const needsToken = req.cmd !== 'status'
  const config = configFor(args, needsToken)
  if (needsToken && config === null) {
    process.stderr.write(`carpd: ${DEFAULT_CONFIG} not found: ctl needs the configuration (-c FILE) to prove it may act\n`)
    return EXIT_USAGE
  }
  const port = config?.controlPort ?? DEFAULT_CONTROL_PORT
  try {
    let signed = req
    if (needsToken) {
      // The agent's challenge, answered for this request only (control.ts).
      const challenge = await controlRequest(port, { cmd: 'challenge' })
      if (!challenge.ok || !('nonce' in challenge)) {
        const older = !challenge.ok && /unknown command "challenge"/.test(challenge.error)
        const why = older ? 'the running agent is older than this carpd (it knows no challenge): restart it with this version first' : challenge.ok ? 'the agent sent no challenge' : challenge.error
        process.stderr.write(`carpd: ${why}\n`)
        return EXIT_RUNTIME
      }
      signed = { ...req, nonce: challenge.nonce, mac: requestMac(config!, challenge.nonce, req) } as ControlRequest
    }
    const sentAt = Date.now()
    const reply = await controlRequest(port, signed)
    if (!reply.ok || !('status' in reply)) {
      process.stderr.write(`carpd: ${reply.ok ? 'the agent sent no status' : reply.error}\n`)
      return EXIT_RUNTIME
    }
    if (req.cmd === 'resync') return await followResync(port, config!.sync.bulkTimeoutMs, sentAt)
    process.stdout.write(args.json ? `${JSON.stringify(reply.status, null, 2)}\n` : renderStatus(reply.status))
    return EXIT_OK
  } catch (err) {
    process.stderr.write(`carpd: ${(err as Error).message}\n`)
    return EXIT_RUNTIME
  }
}

/** Polls the agent until the resync it was asked for is done, printing progress. */
async function followResync(port: number, timeoutMs: number, requestedAt: number): Promise<number> {
  const deadline = Date.now() + timeoutMs + RESYNC_POLL_MS
  let said = ''
  const say = (line: string): void => {
    if (line !== said) process.stdout.write(`${line}\n`)
    said = line
  }
  say('resync: asked the peer for its whole table and sending ours')
  while (Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, RESYNC_POLL_MS))
    const reply = await controlRequest(port, { cmd: 'status' })
    const sync = reply.ok && 'status' in reply ? reply.status.sync : null
    if (!sync) break
    const { receiving, sending, lastIn, wanted } = sync.bulk
    if (receiving) say(`resync: received ${receiving.done} of ${receiving.total} states`)
    else if (sending) say(`resync: sent ${sending.done} of ${sending.total} states`)
    // A bulk transfer that ended after the request (it is younger than the request).
    const fresh = lastIn !== null && lastIn.agoMs < Date.now() - requestedAt
    if (wanted === null && fresh && sending === null) {
      say(`resync: done, ${lastIn.done} states from the peer in ${lastIn.ms} ms; peer table ${sync.states.peer}, own ${sync.states.local}`)
      return EXIT_OK
    }
    if (wanted === null && !fresh) break
  }
  process.stderr.write('carpd: resync: no bulk transfer from the peer (is it up? see carpd status)\n')
  return EXIT_RUNTIME
}

function ctlRequest(positional: string[]): ControlRequest | string {
  const [what, arg] = positional
  if (what === 'maint' && (arg === 'on' || arg === 'off') && positional.length === 2) return { cmd: 'maint', on: arg === 'on' }
  if (what === 'demote' && arg !== undefined && /^\d+$/.test(arg) && positional.length === 2) {
    const value = Number(arg)
    if (value <= 255) return { cmd: 'demote', value }
    return `demote ${arg}: out of range (allowed: 0..255)`
  }
  if (what === 'resync' && positional.length === 1) return { cmd: 'resync' }
  return `ctl ${positional.join(' ')}: expected maint on|off, demote N or resync`
}

async function main(argv: string[]): Promise<number> {
  const args = parseArgs(argv)
  if (typeof args === 'string') {
    process.stderr.write(`carpd: ${args}\n${HELP.main}`)
    return EXIT_USAGE
  }
  const help = Object.hasOwn(HELP, args.command) ? HELP[args.command] : undefined
  if (help === undefined) {
    process.stderr.write(`carpd: unknown command ${args.command}\n${HELP.main}`)
    return EXIT_USAGE
  }
  if (args.positional.length > 0 && !TAKES_WORDS.has(args.command)) {
    process.stderr.write(`carpd ${args.command}: unexpected ${args.positional.join(' ')}\n${help}`)
    return EXIT_USAGE
  }
  if (args.help) {
    // `carpd --help` alone is about carpd, not about the default command.
    process.stdout.write(argv[0] === args.command ? help : HELP.main!)
    return EXIT_OK
  }
  switch (args.command) {
    case 'run':
      return run(args)
    case 'check':
      return check(args)
    case 'status':
      return ask(args, { cmd: 'status' })
    case 'ctl': {
      const req = ctlRequest(args.positional)
      if (typeof req === 'string') {
        process.stderr.write(`carpd: ${req}\n${HELP.ctl}`)
        return EXIT_USAGE
      }
      return ask(args, req)
    }
    case 'version':
      process.stdout.write(`carpd ${VERSION}\n`)
      return EXIT_OK
    case 'help':
      if (args.positional[0] === 'config') process.stdout.write(renderReference())
      else process.stdout.write(HELP.main!)
      return EXIT_OK
    case 'witness': {
      const config = loadOrExit(args.config ?? DEFAULT_CONFIG)
      const clock = realClock()
      return runWitness({ config, clock, log: lineLogger(config.node, (line) => process.stdout.write(line), clock.wall) })
    }
    case 'fence':
      return runFence(args.positional[0] ?? 'carpd')
    case 'rules': {
      // What carpd would load for these WAN states (all up by default), with each
      // WAN's SNAT address as the board has it now. No secrets needed.
      const config = loadOrExit(args.config ?? DEFAULT_CONFIG, false)
      try {
        // A file without WAN blocks is told so (by renderRules) before any word on the states.
        const states = args.wanState === undefined || config.wans.length === 0 ? null : parseWanStates(args.wanState, config.wans)
        const addresses = new Map<string, string>()
        for (const w of config.wans) {
          const address = interfaceNet(w.interface)?.address
          if (address !== undefined) addresses.set(w.interface, address)
        }
        process.stdout.write(renderRules(config, states, { routes: args.routes, addresses }))
        return EXIT_OK
      } catch (err) {
        if (!(err instanceof RulesError)) throw err
        process.stderr.write(`carpd rules: ${err.message}\n${err.code === 'badWanState' ? HELP.rules : ''}`)
        return EXIT_USAGE
      }
    }
    default:
      process.stderr.write(HELP.main!)
      return EXIT_USAGE
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: Error) => {
    process.stderr.write(`carpd: ${err.stack ?? err.message}\n`)
    process.exit(EXIT_RUNTIME)
  },
)
