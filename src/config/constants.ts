// Limits and defaults of the configuration file (SPEC "Configuration file").
// The per-key defaults live in schema.ts; these are the numbers the rows and the
// cross-key checks share.

/** carp.N: N is the vhid, one octet on the wire; 0 is not a valid vhid (carp(4)). */
/** Interface names: Linux's and the BSDs' IFNAMSIZ is 16 bytes with the trailing NUL. */
export const IFNAME_MAX = 15
export const VHID_MIN = 1
export const VHID_MAX = 255

/** The macvlan of a vhid with carp.N.vmac (platform/vmac.ts makes it): short enough for IFNAMSIZ with any vhid. */
export function vmacName(vhid: number): string {
  return `carp${vhid}`
}

/** wan.N: enough uplinks for any board with a handful of ports and VLANs. */
export const WAN_MIN = 1
export const WAN_MAX = 32

/** advbase is one octet of whole seconds; 0 is OpenBSD's sub-second mode. */
export const ADVBASE_MAX_S = 255
/** advskew is one octet in 1/256 s; 255 is reserved for a demoted/bowing-out master. */
export const ADVSKEW_MAX = 254

export const PORT_MIN = 1
export const PORT_MAX = 65535

export const IPV4_PREFIX_MAX = 32
export const IPV6_PREFIX_MAX = 128

/** SPEC: the serial heartbeat times out only after at least 2 missed frames. */
export const HEARTBEAT_TIMEOUT_MIN_INTERVALS = 2

export const MS_PER_S = 1000
export const MS_PER_MIN = 60 * MS_PER_S
export const MS_PER_H = 60 * MS_PER_MIN

/** Standard serial line rates a null-modem heartbeat cable is run at. */
export const SERIAL_BAUD_RATES = ['1200', '2400', '4800', '9600', '19200', '38400', '57600', '115200'] as const

/** Shown instead of a secret's value, everywhere. */
export const SECRET_MASK = '********'

/** A node name is sent in every heartbeat frame (wire/heartbeat.ts allows 1..32 characters). */
export const NODE_NAME_MAX_CHARS = 32

/** carpd's version: `carpd version`, the start line and `carpd status`. */
export const VERSION = '0.1.0'

/** carpd's exit codes (every command, SPEC "Command line"): 0 ok, 1 bad config or usage, 2 runtime failure. */
export const EXIT_OK = 0
export const EXIT_USAGE = 1
export const EXIT_RUNTIME = 2

/** CARP: advskew is in units of 1/256 s. */
export const SKEW_UNIT_MS = 1000 / 256
/** CARP: a backup declares the master down after this many advertisement intervals. */
export const MASTER_DOWN_INTERVALS = 3
