// Split-brain protection: timing of votes, leases and peer paths (SPEC "Split-brain
// protection").

/**
 * A holder renews its leases this often per lease: SPEC asks for at least three
 * renewals per lease, four leaves one lost datagram and still a spare.
 */
export const RENEWALS_PER_LEASE = 4
/**
 * Two-node mode: after a preempt's handover ended with the old master still MASTER
 * (it does not hear us: a one-way LAN), the next preempt gets no handover for this
 * long: each would be a heartbeat timeout of two masters.
 */
export const HANDOVER_RETRY_QUIET_MS = 30_000
/** A candidate without its votes asks again at least this often. */
export const CLAIM_RETRY_MAX_MS = 250
/** ...and never more often than this, whatever a deny says (no request storm). */
export const CLAIM_RETRY_MIN_MS = 20
/** An unanswered request is forgotten after this many leases (its answer is useless). */
export const PENDING_LEASES = 1
/** At most this many requests wait for an answer per vhid (bounded memory). */
export const PENDING_MAX = 32

/** Answers remembered for the copies of a request that come on the other paths. */
export const ANSWERED_MAX = 16

/** A path comes alive after this many frames in a row, each within the timeout. */
export const PATH_UP_FRAMES = 2

/** Request flags (the body's fourth byte). */
export const FLAG_HEARS_MASTER = 0x01

/**
 * A master that yields to the peer's claim asks for no vote of its own for this many
 * leases (each as long as the witness holds one): enough for the witness's lease to it
 * to run out and go to the peer. Ended early when the peer falls silent.
 */
export const YIELD_QUIET_LEASES = 2

/**
 * Power-on (issue 16: "both boards power on at the same moment and the preferred one
 * becomes master"): a board that takes a vhid this soon after carpd's start, never
 * having seen the peer MASTER since, says so in its heartbeats (a boot master, `P`); a
 * higher-ranked peer whose carpd started within this long too replaces it once,
 * preempt or not. Two boards powered on together start carpd seconds apart (the board
 * lab under emulation: carpd's first line 45 to 57 s after the power-on), the first
 * one's master-down runs out before the other is up, and without this the first carpd
 * up would win. A board whose carpd starts later than this finds the peer an ordinary
 * master and stays backup.
 */
export const BOOT_RACE_MS = 120_000
/**
 * ...and only a carpd that starts this soon after the kernel's boot takes part: one
 * restarted on a board up for longer (an upgrade, a crash) is no power-on, and a
 * returning old master stays backup next to it.
 */
export const POWER_ON_UPTIME_MS = 300_000
