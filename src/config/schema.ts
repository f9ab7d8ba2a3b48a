// The one table of configuration keys (SPEC "Configuration file"). Validation,
// defaults, the effective-config listing, key suggestions and the README reference
// are all driven by SCHEMA; adding a key means adding a row here and reading it in
// load.ts's builder.
import {
  ADVBASE_MAX_S,
  ADVSKEW_MAX,
  IPV4_PREFIX_MAX,
  IPV6_PREFIX_MAX,
  MS_PER_H,
  MS_PER_MIN,
  MS_PER_S,
  PORT_MAX,
  PORT_MIN,
  SERIAL_BAUD_RATES,
  IFNAME_MAX,
  VHID_MAX,
  VHID_MIN,
  WAN_MAX,
  WAN_MIN,
} from './constants.js'

export type ValueType =
  | 'string' // any non-empty text
  | 'name' // node and board names
  | 'ifname' // interface names: a name of at most IFNAME_MAX characters
  | 'int' // whole number within min..max
  | 'bool' // yes/no, true/false, on/off, 1/0
  | 'enum' // one of `values`
  | 'duration' // 250ms, 1.5s; a bare number is in `unit` (ms or s); stored in ms
  | 'seconds' // whole seconds: 1 or 1s
  | 'percent' // 5% or a fraction 0..1; stored as a fraction
  | 'ipv4'
  | 'ipv4List' // comma separated
  | 'cidrList' // comma separated IPv4/prefix or IPv6/prefix, the prefix is required
  | 'endpoint' // IPv4 with an optional :port; no port = the default port
  | 'endpointList' // comma separated IPv4[:port], IPv6 or [IPv6]:port
  | 'path' // absolute
  | 'port' // UDP port 1..65535

/** Numbered blocks: `carp.N.*` (N = vhid) and `wan.N.*`. */
export interface BlockRange {
  min: number
  max: number
  what: string // what N is, for messages
}

export const BLOCKS: Readonly<Record<string, BlockRange>> = {
  carp: { min: VHID_MIN, max: VHID_MAX, what: 'vhid' },
  wan: { min: WAN_MIN, max: WAN_MAX, what: 'WAN number' },
}

export interface KeyRow {
  /** The key; in numbered blocks N stands for the number, e.g. 'carp.N.advskew'. */
  key: string
  type: ValueType
  /**
   * Text parsed like a value from the file. undefined: no default (the key is
   * absent unless set). '' means "unset / off" and also lets the file write `key =`.
   */
  default?: string
  /** int, seconds: the range; duration: the range in ms. */
  min?: number
  max?: number
  /** enum: the allowed words. */
  values?: readonly string[]
  /** duration: the unit of a bare number ('ms' or 's'); others: unit text for people. */
  unit?: string
  secret?: true
  /** On a secret: the key naming a file the secret may be read from instead. */
  fromFile?: string
  /** Must be set (per block for block keys; for a secret, it or its file). */
  required?: true
  help: string
}

export const SCHEMA: readonly KeyRow[] = [
  // --- the board itself
  { key: 'node', type: 'name', required: true, help: "This board's name, unique in the pair; starts every console line." },
  { key: 'board', type: 'name', default: '', help: 'Board profile from boards/ whose defaults are loaded first; the file overrides them.' },
  { key: 'board.supported', type: 'bool', default: 'yes', help: 'Set by board profiles: no means carpd (Node.js) cannot run on this hardware.' },
  { key: 'board.note', type: 'string', default: '', help: 'Set by board profiles: a note about the hardware, shown as a warning when unsupported.' },
  { key: 'platform', type: 'enum', values: ['linux', 'freebsd', 'openbsd'], default: 'linux', help: 'Which adapter changes the operating system (ip/conntrack/iptables or ifconfig/pfctl).' },
  { key: 'control.port', type: 'port', default: '8239', help: 'Loopback UDP port that carpd status and carpd ctl talk to.' },
  { key: 'log.format', type: 'enum', values: ['full', 'short'], default: 'full', help: 'Console lines: full is `ISO-time node subsystem message`; short is `HH:MM:SS subsystem message` (UTC), for an 80-column serial console that shows one board.' },
  { key: 'log.syslog', type: 'endpoint', default: '', help: 'Also send every event to this syslog server over UDP (RFC 5424, one datagram per line, hostname = node), an IPv4 address[:port], port 514 by default; empty means no remote syslog.' },
  { key: 'log.syslog.facility', type: 'enum', values: ['daemon', 'local0', 'local1', 'local2', 'local3', 'local4', 'local5', 'local6', 'local7'], default: 'daemon', help: "Syslog facility of carpd's messages (faults are warning, state changes notice, the rest info)." },

  // --- CARP
  { key: 'carp.port', type: 'port', default: '8240', help: 'UDP port CARP advertisements are sent to and received on.' },
  { key: 'carp.preempt', type: 'bool', default: 'yes', help: 'A backup with a better (lower) skew takes over from a worse master. At power-on the preferred board wins either way (src/quorum/README.md, Power-on).' },
  { key: 'carp.preempt.holddown', type: 'duration', unit: 's', default: '0s', min: 0, max: MS_PER_H, help: 'After any state change, stay backup at least this long before preempting.' },
  { key: 'carp.upscript', type: 'path', default: '', help: 'Script run on becoming master, with arguments: vhid interface vip state.' },
  { key: 'carp.downscript', type: 'path', default: '', help: 'Script run on becoming backup, with arguments: vhid interface vip state.' },
  { key: 'carp.N.interface', type: 'ifname', required: true, help: 'Interface that carries vhid N and its VIPs.' },
  { key: 'carp.N.vip', type: 'cidrList', required: true, help: 'Virtual IPs of vhid N with their prefix, comma separated: IPv4, IPv6 or both. A vhid with only IPv6 VIPs advertises over IPv6 (ff02::12 or IPv6 peers); one with any IPv4 VIP, over IPv4.' },
  { key: 'carp.N.advbase', type: 'seconds', unit: 's', default: '1', min: 0, max: ADVBASE_MAX_S, help: 'Advertisement base interval; 0 is sub-second mode (advskew must then be at least 1).' },
  { key: 'carp.N.advskew', type: 'int', unit: '1/256 s', default: '0', min: 0, max: ADVSKEW_MAX, help: 'Added to advbase; the board with the lower skew is the preferred master.' },
  { key: 'carp.N.pass', type: 'string', secret: true, fromFile: 'carp.N.passfile', required: true, help: 'Shared secret authenticating adverts (HMAC-SHA1); or set carp.N.passfile, which also allows a " #" that would start a comment here.' },
  { key: 'carp.N.passfile', type: 'path', help: 'File holding carp.N.pass (trailing newline removed).' },
  { key: 'carp.N.vmac', type: 'bool', default: 'yes', help: 'Linux: the VIPs live on a macvlan carpN with the virtual MAC 00:00:5e:00:01:N (carp(4), VRRP), so neighbours keep the same MAC across a takeover; no falls back to the board\'s own MAC and gratuitous ARP only. Traffic to the VIP then arrives on carpN: firewall rules that match the LAN interface must match carpN too.' },
  { key: 'carp.N.peer', type: 'endpointList', default: '', help: 'Unicast peers for adverts, of the family the vhid advertises over; empty means multicast to 224.0.0.18 (ff02::12 for an IPv6-only vhid).' },

  // --- state sync
  { key: 'sync.interface', type: 'ifname', default: '', help: 'Dedicated link to the peer for state sync; empty means no sync.' },
  { key: 'sync.peer', type: 'endpoint', default: '', help: "The peer's address on the sync link; its port defaults to sync.port." },
  { key: 'sync.port', type: 'port', default: '8242', help: 'UDP port this board receives sync frames on (its address on sync.interface).' },
  { key: 'sync.bulk.timeout', type: 'duration', unit: 's', default: '30s', min: MS_PER_S, max: 10 * MS_PER_MIN, help: 'A starting board stays demoted until the bulk transfer from its peer is in, or this long.' },
  { key: 'sync.key', type: 'string', secret: true, fromFile: 'sync.keyfile', help: 'Secret authenticating sync messages (HMAC-SHA256); or set sync.keyfile.' },
  { key: 'sync.keyfile', type: 'path', help: 'File holding sync.key (trailing newline removed).' },
  { key: 'sync.backend', type: 'enum', values: ['conntrack', 'pf', 'none'], default: 'conntrack', help: 'Firewall state table to sync: conntrack (Linux), pf (BSD) or none.' },

  // --- serial heartbeat
  { key: 'serial.device', type: 'path', default: '', help: 'Null-modem heartbeat line to the peer; empty means no serial heartbeat.' },
  { key: 'serial.baud', type: 'enum', unit: 'bit/s', values: SERIAL_BAUD_RATES, default: '19200', help: 'Line rate of the serial heartbeat; both boards must match.' },
  { key: 'heartbeat.interval', type: 'duration', unit: 's', default: '250ms', min: 50, max: 10 * MS_PER_S, help: 'Time between heartbeat frames to the peer, on the serial line and the sync link (default 4 per second). Left unset with a sub-second heartbeat.timeout derived below, 100 ms on both boards (more where the serial line needs it to stay a quarter busy).' },
  { key: 'heartbeat.timeout', type: 'duration', unit: 's', default: '1s', min: 100, max: MS_PER_MIN, help: 'A peer path (serial line, sync link) is dead after this much silence; at least 2 intervals. Left unset, the fastest vhid\'s master-down when that is under 1 s (so a sub-second pair without a witness fails over at CARP speed; at least 3 intervals); `carpd check` shows the value and why.' },

  // --- witness
  { key: 'witness', type: 'endpoint', default: '', help: 'The third host that grants leases (2 of 3 votes to be master), host[:port], port 8241 by default; empty means two-node mode.' },
  { key: 'witness.key', type: 'string', secret: true, fromFile: 'witness.keyfile', help: 'Secret shared with the witness; or set witness.keyfile.' },
  { key: 'witness.keyfile', type: 'path', help: 'File holding witness.key (trailing newline removed).' },
  { key: 'witness.lease', type: 'duration', unit: 's', default: '3s', min: 500, max: MS_PER_MIN, help: 'Length of a witness or peer lease; a small multiple of the advert interval (a failover with a witness takes up to about one lease). In the witness\'s own file: the longest lease it grants.' },
  { key: 'witness.listen', type: 'endpoint', default: '', help: "Witness's own file only: the address the witness listens on." },
  { key: 'witness.state', type: 'path', default: '/cf/witness.state', help: "Witness's own file only: where the witness persists its epoch." },

  // --- multi-WAN
  { key: 'wan.rules', type: 'enum', values: ['iptables', 'nft', 'pf'], default: 'iptables', help: 'Firewall rule flavour generated for multi-WAN.' },
  { key: 'wan.probe.interval', type: 'duration', unit: 's', default: '250ms', min: 100, max: MS_PER_MIN, help: 'Time between probe rounds on each WAN (a round asks every target of the WAN once). With down.rounds, how fast a dead WAN is found (defaults: within 2.5 s).' },
  { key: 'wan.probe.timeout', type: 'duration', unit: 's', default: '1s', min: 100, max: 10 * MS_PER_S, help: 'A probe not answered within this time counts as lost.' },
  { key: 'wan.probe.window', type: 'int', unit: 'rounds', default: '240', min: 1, max: 2400, help: 'Number of recent probe rounds that loss and latency are judged over, once half of them are in (default 60 s of rounds: 10 % loss reads 10 +- 1.9 %; over 10 rounds it read anything from 0 to 30 %).' },
  { key: 'wan.probe.loss.down', type: 'percent', default: '5%', help: 'An online WAN is degraded when the share of failed rounds over the window reaches this: it keeps carrying traffic at half its weight, and its connections stay (only down.rounds takes a WAN offline).' },
  { key: 'wan.probe.loss.up', type: 'percent', default: '1%', help: 'A degraded WAN is back to full weight when its loss over the window falls to this (below loss.down).' },
  { key: 'wan.probe.latency.down', type: 'duration', unit: 's', default: '800ms', min: 1, max: 10 * MS_PER_S, help: 'An online WAN is degraded when its mean latency over the window reaches this.' },
  { key: 'wan.probe.latency.up', type: 'duration', unit: 's', default: '400ms', min: 1, max: 10 * MS_PER_S, help: 'A degraded WAN is back to full weight when its mean latency falls to this (below latency.down).' },
  { key: 'wan.probe.down.rounds', type: 'int', unit: 'rounds', default: '6', min: 1, max: 100, help: 'Failed probe rounds in a row that take a WAN offline and drain its connections: the only way a WAN is judged dead (at 10 % loss, independent from round to round, six in a row come about once in 77 hours of 250 ms rounds, three in a row at 500 ms, the old defaults, every 9 minutes; loss in bursts longer than a second is an outage).' },
  { key: 'wan.probe.up.rounds', type: 'int', unit: 'rounds', default: '8', min: 1, max: 100, help: 'Good probe rounds in a row an offline WAN needs before it may come back (then wan.failback.hold).' },
  { key: 'wan.failback.hold', type: 'duration', unit: 's', default: '10s', min: 0, max: 60 * MS_PER_MIN, help: 'A WAN that recovered carries new connections again only after it has been healthy this long (no flapping).' },
  { key: 'wan.N.interface', type: 'ifname', required: true, help: 'Interface of uplink N.' },
  { key: 'wan.N.gateway', type: 'ipv4', required: true, help: 'Next hop of uplink N.' },
  { key: 'wan.N.weight', type: 'int', default: '1', min: 1, max: 100, help: 'Share of new connections within its tier, relative to the other WANs.' },
  { key: 'wan.N.tier', type: 'int', default: '1', min: 1, max: 16, help: 'Lower tiers are preferred; WANs of the same tier share the load.' },
  { key: 'wan.N.probe', type: 'ipv4List', required: true, help: 'DNS servers probed through uplink N, comma separated; any answer counts, so a resolver that refuses recursion works too.' },
  { key: 'wan.N.probe.need', type: 'int', unit: 'targets', default: '1', min: 1, max: 16, help: 'How many of the probe targets must answer for a round to count as good (k of n).' },
]

// ---------------------------------------------------------------------------
// Looking keys up

const ROWS_BY_KEY = new Map(SCHEMA.map((row) => [row.key, row]))

/** The block prefix of a row key ('carp' for 'carp.N.vip'), or undefined. */
export function blockPrefix(rowKey: string): string | undefined {
  const match = /^([a-z]+)\.N\./.exec(rowKey)
  return match === null ? undefined : match[1]
}

export function rowByKey(rowKey: string): KeyRow | undefined {
  return ROWS_BY_KEY.get(rowKey)
}

/** 'carp.N.vip', 3 → 'carp.3.vip'. */
export function instantiate(rowKey: string, n: number | string): string {
  return rowKey.replace('.N.', `.${n}.`)
}

export type Resolved =
  | { kind: 'global'; row: KeyRow }
  | { kind: 'block'; row: KeyRow; prefix: string; n: number }
  | { kind: 'badBlockNumber'; row: KeyRow; prefix: string; range: BlockRange }
  | { kind: 'unknown' }

/** Which row a concrete key of the file belongs to. */
export function resolveKey(key: string): Resolved {
  const global = ROWS_BY_KEY.get(key)
  if (global !== undefined && blockPrefix(global.key) === undefined) return { kind: 'global', row: global }

  const match = /^([a-z]+)\.(\d+)\.(.+)$/.exec(key)
  if (match === null) return { kind: 'unknown' }
  const [, prefix, digits, rest] = match
  const row = ROWS_BY_KEY.get(`${prefix}.N.${rest}`)
  const range = Object.hasOwn(BLOCKS, prefix) ? BLOCKS[prefix] : undefined
  if (row === undefined || range === undefined) return { kind: 'unknown' }

  // A leading zero would let carp.1 and carp.01 name the same vhid twice.
  const n = Number(digits)
  if (String(n) !== digits || n < range.min || n > range.max) return { kind: 'badBlockNumber', row, prefix, range }
  return { kind: 'block', row, prefix, n }
}

/** Every secret with the key of the file it may come from. */
export const SECRET_PAIRS: readonly { secret: string; file: string }[] = SCHEMA.flatMap((row) =>
  row.fromFile === undefined ? [] : [{ secret: row.key, file: row.fromFile }],
)

// ---------------------------------------------------------------------------
// What a row allows, in words (error messages and the README reference)

/**
 * A duration in the file's own syntax, so that normalised values read back the same:
 * whole or fractional seconds from 1 s up (1.5s, 3600s), milliseconds below.
 */
export function formatMs(ms: number): string {
  if (ms === 0) return '0s'
  return ms >= MS_PER_S ? `${ms / MS_PER_S}s` : `${ms}ms`
}

export function allowedText(row: KeyRow): string {
  switch (row.type) {
    case 'string':
      return 'any text'
    case 'name':
      return 'a name of letters, digits, _ . - starting with a letter or digit'
    case 'ifname':
      return `an interface name: up to ${IFNAME_MAX} letters, digits, _ . - starting with a letter or digit`
    case 'int':
      return `${row.min}..${row.max}${row.unit === undefined ? '' : ` (${row.unit})`}`
    case 'bool':
      return 'yes | no (also true/false, on/off, 1/0)'
    case 'enum':
      return `${(row.values ?? []).join(' | ')}${row.unit === undefined ? '' : ` (${row.unit})`}`
    case 'duration':
      return `${formatMs(row.min ?? 0)}..${formatMs(row.max ?? 0)} (ms or s suffix; a bare number is in ${row.unit ?? 's'})`
    case 'seconds':
      return `${row.min}..${row.max} whole seconds`
    case 'percent':
      return '0%..100% or a fraction 0..1'
    case 'ipv4':
      return 'an IPv4 address, e.g. 192.0.2.1'
    case 'ipv4List':
      return 'IPv4 addresses, comma separated'
    case 'cidrList':
      return `IPv4/prefix (0..${IPV4_PREFIX_MAX}) or IPv6/prefix (0..${IPV6_PREFIX_MAX}), comma separated, e.g. 192.0.2.1/24, 2001:db8::1/64`
    case 'endpoint':
      return `IPv4[:port], port ${PORT_MIN}..${PORT_MAX}`
    case 'endpointList':
      return `IPv4[:port], IPv6 or [IPv6]:port (port ${PORT_MIN}..${PORT_MAX}), comma separated`
    case 'path':
      return 'an absolute path'
    case 'port':
      return `UDP port ${PORT_MIN}..${PORT_MAX}`
  }
}
