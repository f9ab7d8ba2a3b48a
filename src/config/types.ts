// The validated configuration: what the rest of carpd sees.
// Produced only by config/load.ts from the key=value file (SPEC "Configuration file").
// Durations are in milliseconds (suffix Ms), ratios are fractions 0..1.

export type PlatformName = 'linux' | 'freebsd' | 'openbsd'

/** An IPv4 address with an optional UDP port (port 0 = "use the default port"). */
export interface Endpoint {
  address: string
  port: number
}

/** One IPv4 address with its prefix length, e.g. 192.0.2.1/24. */
export interface Cidr {
  address: string
  prefix: number
}

/** carp.N.*: one virtual host id. */
export interface VhidConfig {
  vhid: number // N of carp.N.*, 1..255
  interface: string
  vips: Cidr[]
  advbaseS: number // 0..255, 0 = sub-second mode
  advskew: number // 0..254, in 1/256 s
  pass: string // secret: from carp.N.pass or the file named by carp.N.passfile
  peers: Endpoint[] // unicast peers; empty = multicast to 224.0.0.18
  vmac: boolean // a virtual MAC on macvlan carpN where the platform has it
}

export interface CarpConfig {
  port: number // UDP port adverts are sent to and received on
  preempt: boolean
  preemptHolddownMs: number
  upscript: string // '' = none
  downscript: string // '' = none
  vhids: VhidConfig[] // sorted by vhid
}

export interface SyncConfig {
  interface: string // '' = no sync
  peer: Endpoint | null // port 0 = the same as sync.port
  port: number // UDP port this board listens on
  key: string // secret
  backend: 'conntrack' | 'pf' | 'none'
  bulkTimeoutMs: number
}

export interface SerialConfig {
  device: string // '' = no serial heartbeat
  baud: number
}

export interface HeartbeatConfig {
  intervalMs: number
  timeoutMs: number
}

export interface WitnessConfig {
  address: Endpoint | null // witness = host:port; null = two-node mode
  key: string // secret
  leaseMs: number
  listen: Endpoint | null // only in the witness's own file
  state: string // path where the witness persists its epoch
}

export interface LogConfig {
  format: 'full' | 'short'
  syslog: Endpoint | null // port 0 = 514
  facility: 'daemon' | `local${0 | 1 | 2 | 3 | 4 | 5 | 6 | 7}`
}

export interface WanConfig {
  wan: number // N of wan.N.*
  interface: string
  gateway: string
  weight: number
  tier: number
  probes: string[]
  probeNeed: number // k of n: targets that must answer for a good round
  /**
   * The address new connections are NATed to when a carp.N block shares this WAN's
   * interface: the first IPv4 VIP on the gateway's subnet (lowest vhid first), so a
   * pair's synced NAT mappings hold on whichever board serves; null: the interface's
   * own address. See wanShare in config/load.ts.
   */
  natAddress: string | null
  /** The macvlans (carpN) of the vhids with a virtual MAC on this interface: traffic to their VIPs comes in there. */
  vipInterfaces: string[]
}

/**
 * wan.probe.*: how WAN health is judged, the same for every WAN. Separate down and up
 * thresholds give hysteresis (SPEC "Multi-WAN"); up thresholds are below down ones.
 */
export interface WanProbeConfig {
  intervalMs: number // between probes on one WAN
  timeoutMs: number // an unanswered probe counts as lost after this
  window: number // how many recent probe rounds loss and latency are judged over
  lossDown: number // fraction 0..1: loss at or above this over the window degrades an online WAN
  lossUp: number // fraction 0..1: loss at or below this (and latency) makes a degraded WAN online again
  latencyDownMs: number // mean latency at or above this over the window degrades an online WAN
  latencyUpMs: number // mean latency at or below this (and loss) makes a degraded WAN online again
  downRounds: number // failed rounds in a row that take a WAN offline (dead): the only way there
  upRounds: number // good rounds in a row before an offline WAN may come back
  failbackHoldMs: number // a recovered WAN waits this long, healthy, before it carries traffic
}

export interface Config {
  file: string // the file this was read from
  node: string
  board: string // '' = none
  platform: PlatformName
  controlPort: number
  log: LogConfig
  carp: CarpConfig
  sync: SyncConfig
  serial: SerialConfig
  heartbeat: HeartbeatConfig
  witness: WitnessConfig
  wans: WanConfig[] // sorted by N
  wanRules: 'iptables' | 'nft' | 'pf'
  wanProbe: WanProbeConfig
}

/** Where an effective value came from, for `carpd check`. */
export type ValueSource =
  | { kind: 'default' }
  | { kind: 'derived'; why: string } // from other settings (heartbeat timing from the CARP timing)
  | { kind: 'board'; board: string; line: number }
  | { kind: 'file'; file: string; line: number }
  | { kind: 'secretFile'; file: string; line: number; path: string }

/** One line of the effective configuration, in schema order. */
export interface EffectiveEntry {
  key: string
  value: string // the value as text, normalised; secrets are not masked here
  secret: boolean
  source: ValueSource
}

/** Stable codes: tests match these, not the wording. */
export type ConfigErrorCode =
  | 'syntax' // a line that is not key = value
  | 'unknownKey'
  | 'duplicateKey'
  | 'badValue' // wrong type/format
  | 'outOfRange'
  | 'missingKey'
  | 'conflict' // e.g. both carp.1.pass and carp.1.passfile, advbase 0 with advskew 0
  | 'unknownBoard'
  | 'secretFile' // a ...file that cannot be read or is empty
  | 'io' // the config file itself cannot be read

export interface ConfigError {
  code: ConfigErrorCode
  file: string
  line: number // 0 when the error is not tied to a line (e.g. missing key)
  key: string // '' when none
  value: string // '' when none
  allowed: string // what is allowed, in words ('' when not applicable)
  suggestion: string // nearest valid key, '' when none
  message: string // one line: "file:line: key = value: what is wrong (allowed: ...; did you mean ...?)"
}

export type LoadResult =
  | { ok: true; config: Config; effective: EffectiveEntry[]; warnings: string[] }
  | { ok: false; errors: ConfigError[]; warnings: string[] }
