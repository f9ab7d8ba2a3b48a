// State sync timing and limits (SPEC "State sync behaviour"; pfsync(4) for the ideas:
// batched updates, acknowledged bulk transfers, carp demotion until the bulk is in).

/** UDP port of the sync link when sync.peer names none; both boards use the same one. */
export const SYNC_PORT_DEFAULT = 8242
/** A frame fills at most the link MTU less the IPv4 and UDP headers. */
export const IP_UDP_HEADER_BYTES = 28
export const SYNC_MTU_DEFAULT = 1500
/** Socket receive buffer asked for on the sync link: a bulk transfer arrives in bursts. */
export const SYNC_RECV_BUFFER_BYTES = 1 << 20

/**
 * Frames sent and not yet acknowledged; the sender waits when this many are out.
 * 48 frames (70 KB) fit a default Linux socket receive buffer (208 KB of kernel
 * memory, ~2.3 KB each): a window of 128 overflowed it on loopback and every loss
 * cost a resend.
 */
export const SEND_WINDOW_FRAMES = 48
/** Frames further ahead than this of the next expected one are dropped, not buffered. */
export const RECEIVE_WINDOW_FRAMES = 256
/** An unacknowledged frame is sent again after this long (a dedicated link answers in < 1 ms). */
export const RESEND_MS = 200
/**
 * A frame the receiver reports missing (it acknowledged later ones selectively) is
 * sent again at once, but not twice within this time.
 */
export const FAST_RESEND_MS = 10
/** A missing frame is given up on (and the whole table asked for) after this long: ten resends. */
export const GAP_WAIT_MS = 10 * RESEND_MS
/**
 * A change waits this long for others to share its frame. Repeated updates of one
 * flow inside it coalesce into one record; a failover within it loses only this much.
 */
export const FLUSH_DELAY_MS = 10
/** The receiver acknowledges after this delay, or at once after ACK_EVERY_FRAMES frames. */
export const ACK_DELAY_MS = 5
export const ACK_EVERY_FRAMES = 16
/** An idle link carries a keepalive (an ack-only frame) this often... */
export const KEEPALIVE_MS = 1000
/** ...and the peer is gone after this long without any valid frame (3.5 keepalives). */
export const PEER_TIMEOUT_MS = 3500
/**
 * Distinct flows waiting to be sent. Past this the queue is dropped and the whole
 * table goes as a bulk transfer instead: nothing is lost, the peer just gets it all.
 */
export const MAX_PENDING_CHANGES = 100_000
/**
 * Expected echoes of a commit's loads kept after the peer's flow ended (a peer that
 * replaces an entry reports a delete, then the new record): the oldest beyond this
 * are forgotten, so a load that never echoes (it failed) cannot pile up.
 */
export const MAX_ORPHAN_ECHOES = 4096
/**
 * How long after a commit loaded a record its kernel event may still be on the way
 * (the event reader lags the load; a 100,000-flow load takes seconds): a key the
 * kernel table lacks whose echo is younger is taken to be in the kernel already.
 */
export const ECHO_IN_FLIGHT_MS = 10_000
/**
 * A bulk request whose transfer has not begun after this long is asked again (a
 * request can be lost with a session the peer refused). pfsync(4) retries every 5 s.
 */
export const BULK_RETRY_MS = 5000
/** Demotion while a board waits for its first bulk transfer (pfsync(4) uses 32 too). */
export const DEMOTE_SYNC_BULK = 32
/**
 * Demotion of a board that serves nothing while its peer is silent on the sync link:
 * its copy of the peer's table falls behind. Small (pfsync(4) adds 1 while its link
 * is down), so a master that loses a link (DEMOTE_LINK, 20) is still replaced.
 */
export const DEMOTE_SYNC_GONE = 1
/** Demotion while the state table cannot be read or loaded (the peer can serve better). */
export const DEMOTE_SYNC_BACKEND = 10
/** The backend's failure demotion clears after this long without a new failure. */
export const BACKEND_FAIL_HOLD_MS = 60_000
/**
 * A takeover's commit is run again when the peer's records came in while it ran (the
 * old master's last changes, late on the link), at most this many times.
 */
export const COMMIT_FOLLOW_UPS = 3
/** How long a takeover's commit waits for the kernel's events of its loads before looking again. */
export const COMMIT_SETTLE_MS = 100
/**
 * Peer records that come in this long after a promotion are committed too: the old
 * master keeps forwarding for its release grace (carp VIP_RELEASE_GRACE_MS, 250 ms)
 * and its changes cross the sync link after that; a margin for a loaded link.
 */
export const LATE_COMMIT_WINDOW_MS = 3000
