// The state sync engine (pure: no sockets, no timers, no processes). It keeps two
// tables, this board's own flows and the flows its peer reported, and runs a small
// reliable protocol between the two boards over the sync link (SPEC "State sync
// behaviour"; the ideas are pfsync(4)'s, the delivery is TCP's):
//
// - Local changes wait FLUSH_DELAY_MS in a queue keyed by flow, so repeated updates of
//   one flow coalesce into one record, then leave in frames filled up to the MTU.
// - Every frame with content has a sequence number in the sender's session (a random
//   epoch). The receiver applies frames strictly in order, buffers a few that come
//   early, and acknowledges cumulatively (plus selective ranges for the early ones).
//   The sender keeps a window of unacknowledged frames and sends them again after
//   RESEND_MS.
// - The queue is bounded: past MAX_PENDING_CHANGES it is dropped and the whole table
//   goes as a bulk transfer instead, so states are never lost silently.
// - Bulk transfer: bulkStart, every flow as an insert, bulkEnd. The receiver marks what
//   it had as stale at the start and forgets what the transfer did not refresh.
// - Peer gone: nothing valid heard for PEER_TIMEOUT_MS. The sender then drops its queue
//   and window, starts a new session and sends everything as a bulk transfer when the
//   peer is heard again.
//
// Tables hold records as latin1 strings (the 40 wire bytes of an IPv4 flow, keyed by
// its first 16; 88 and 40 for IPv6): 100,000 IPv4 flows take ~13 MB this way, objects
// would take several times that.
//
// The engine's methods take the time and return the actions for the caller (agent-sync.ts)
// to carry out; nextWakeMs() says when tick() wants to run next.

import {
  ACK_DELAY_MS,
  ACK_EVERY_FRAMES,
  DEMOTE_SYNC_BULK,
  DEMOTE_SYNC_GONE,
  FAST_RESEND_MS,
  FLUSH_DELAY_MS,
  KEEPALIVE_MS,
  ECHO_IN_FLIGHT_MS,
  MAX_ORPHAN_ECHOES,
  MAX_PENDING_CHANGES,
  PEER_TIMEOUT_MS,
  RECEIVE_WINDOW_FRAMES,
  RESEND_MS,
  SEND_WINDOW_FRAMES,
  BULK_RETRY_MS,
  GAP_WAIT_MS,
} from './constants.js'
import {
  FLOW_RECORD_LEN,
  recordKey,
  SECTION_HEADER_LEN,
  SYNC_HEADER_LEN,
  SYNC_HMAC_LEN,
  type SyncDecodeError,
  type SyncFrame,
  type SyncSection,
  decodeSyncFrame,
  encodeSyncFrame,
  recordBehind,
} from '../wire/sync.js'
import { idHex as hex } from '../wire/ids.js'
import { FAMILY_IPV6 } from '../wire/flow.js'

export type SyncAction =
  | { type: 'send'; bytes: Buffer }
  | { type: 'log'; message: string }
  /** The demotion state sync asks for changed (0: none). */
  | { type: 'demote'; value: number; why: string }

/** Reasons a sync datagram is dropped, each with its own counter (STYLE: a ladder). */
export type SyncDropReason = SyncDecodeError | 'unknownSender' | 'ownPacket' | 'staleSession' | 'outOfWindow'
export const SYNC_DROP_REASONS: readonly SyncDropReason[] = [
  'unknownSender', 'shortPacket', 'badVersion', 'badFlags', 'badLength', 'oversized', 'badAuth',
  'badSection', 'unknownSection', 'truncatedSection', 'badRecord', 'ownPacket', 'staleSession', 'outOfWindow',
]

export type PeerState = 'unknown' | 'up' | 'gone'
/**
 * Why this board wants its peer's whole table: startup, or changes it missed (both
 * demote a board that serves nothing until the table is in), or an operator's
 * resync (never demotes).
 */
export type BulkReason = 'startup' | 'missed' | 'operator'

/**
 * What the kernel needs when this board starts to serve (SyncEngine.takeCommit):
 * flow keys, whose records are read when each is carried out (they may change
 * meanwhile).
 */
export interface CommitPlan {
  /** Peer flows the kernel has no entry for: inserted. */
  load: string[]
  /**
   * Peer flows the kernel has an entry for that is older than the peer's record (no
   * kernel event of the flow since the record came: left from an earlier time as
   * master): its TCP window is stale and would drop the flow's packets, so the entry
   * is removed and the peer's state inserted.
   */
  replace: string[]
  /**
   * Kernel entries left from an earlier time as master whose flows ended on the
   * peer meanwhile (no longer in its table, untouched here since): removed, else
   * they would linger for days. Each with the local record it had when planned.
   */
  expire: [key: string, record: string][]
}

export interface SyncEngineOptions {
  key: string
  sender: number // this board's id in the frame header (wire/ids.ts senderId)
  maxFrameBytes: number // link MTU less the IPv4 and UDP headers
  bulkTimeoutMs: number // the longest a board stays demoted waiting for its first bulk
  random32(): number
  /** Distinct queued changes before a bulk transfer replaces the queue (tests make it small). */
  maxPending?: number
}

export interface SyncCounters {
  framesSent: number
  framesReceived: number
  changesSent: number // records in update/delete sections
  changesReceived: number
  bulkRecordsSent: number
  resends: number
  duplicates: number // frames received twice (a lost ack); acknowledged again
  outOfOrder: number // frames that came early and waited for a gap to fill
  lostFrames: number // unacknowledged frames dropped when the peer went away (a bulk follows)
  overflows: number // times the queue was full and a bulk transfer replaced it
  sessionResets: number
  bulkRetries: number // bulk requests asked again: no transfer began within BULK_RETRY_MS
  gapsSkipped: number // missing frames given up on after GAP_WAIT_MS (a bulk transfer follows)
  staleRecords: number // peer states an earlier stage of the flow than this kernel's entry: never loaded over it
  ipv6HeldBack: number // IPv6 flow changes not sent: the peer runs a carpd that drops them
}

/** The bulk transfer a board waits for; `askedMs`: when its request last went (null: not yet). */
interface WantedBulk {
  reason: BulkReason
  id: number
  deadlineMs: number
  askedMs: number | null
}

export interface BulkInfo {
  direction: 'in' | 'out'
  id: number
  total: number
  done: number
  ms: number // how long it took (or has taken so far)
  agoMs: number // since it ended (or started)
}

export interface SyncStatus {
  peer: { state: PeerState; heardMsAgo: number | null; epoch: number | null }
  states: { local: number; peer: number }
  lag: { queued: number; unacked: number; oldestUnackedMs: number }
  counters: SyncCounters
  drops: Record<SyncDropReason, number>
  bulk: { wanted: BulkReason | null; receiving: BulkInfo | null; sending: BulkInfo | null; lastIn: BulkInfo | null; lastOut: BulkInfo | null }
}

interface Unacked {
  frame: SyncFrame
  sentMs: number
}

interface Push {
  id: number
  keys: string[]
  index: number
  sent: number
  started: boolean
  startMs: number
}

interface Receiving {
  id: number
  total: number
  done: number
  startMs: number
  stale: Set<string>
}

/** Selective-ack ranges per frame: a dedicated link rarely has more than one gap. */
const MAX_SACK_RANGES = 4
/**
 * Every frame's ack section carries this range first: "I take IPv6 flows". Seq 0 is
 * never a frame's, so a peer of any version acknowledges nothing by it; an older one
 * (which drops a frame with IPv6 sections as unknownSection, stalling the sync) never
 * sends it, and is sent no IPv6 flow.
 */
const IPV6_CAPABLE: Readonly<{ from: number; to: number }> = { from: 0, to: 0 }
/** Ranges an ack section can hold: the marker and the selective acks. */
const ACK_RANGES = MAX_SACK_RANGES + 1
/** Peer sessions remembered as left (a session changes at a restart or a long outage). */
const MAX_RETIRED_SESSIONS = 32
/** A new session begins past this sequence number (half the 32-bit space). */
const SEQ_ROLL = 2 ** 31

export class SyncEngine {
  readonly local = new Map<string, string>()
  readonly peer = new Map<string, string>()
  private readonly counters: SyncCounters = {
    framesSent: 0, framesReceived: 0, changesSent: 0, changesReceived: 0, bulkRecordsSent: 0,
    resends: 0, duplicates: 0, outOfOrder: 0, lostFrames: 0, overflows: 0, sessionResets: 0, bulkRetries: 0, gapsSkipped: 0, staleRecords: 0, ipv6HeldBack: 0,
  }
  private readonly drops = Object.fromEntries(SYNC_DROP_REASONS.map((r) => [r, 0])) as Record<SyncDropReason, number>
  private out: SyncAction[] = []

  // Sending side: our session, the window, the queue.
  private epoch: number
  private nextSeq = 1
  private readonly unacked = new Map<number, Unacked>()
  /** Flow key → record to send, or '' for a delete; insertion order is send order. */
  private readonly pending = new Map<string, string>()
  private pendingSinceMs: number | null = null
  private control: SyncSection[] = []
  private push: Push | null = null
  /** A transfer asked for before the table was read or the peer heard: its id. */
  private pushWanted: number | null = null
  private lastSentMs = -Infinity
  private localReady = false
  private snapshotSeen: Set<string> | null = null
  private snapshotTouched: Set<string> | null = null
  private nextBulkId = 1

  // Receiving side: the peer's session.
  private peerState: PeerState = 'unknown'
  /** The peer's last frame said it takes IPv6 flows (IPV6_CAPABLE). */
  private peerIpv6 = false
  /** Said once per peer that IPv6 flows are held back from it. */
  private ipv6HeldSaid = false
  private peerEpoch: number | null = null
  private peerHeardMs: number | null = null
  /** Peer sessions left behind during this board's life: never adopted again (replays). */
  private readonly retired: number[] = []
  /**
   * The peer's session when we last declared it gone. The peer may not have lost us
   * (this board was the one paused: a SIGSTOP, an event loop held up for seconds) and
   * go on with it; that one session is taken back, not refused for ever.
   */
  private lostPeerEpoch: number | null = null
  /** The next sequence number we expected of it then: older frames are recordings, not the peer going on. */
  private lostPeerExpected = 0
  private expected = 1
  private readonly early = new Map<number, SyncFrame>()
  /** Since when frames have waited in `early` for the frame `expected` (the gap). */
  private gap: { expected: number; sinceMs: number } | null = null
  private ackDue: number | null = null
  private framesSinceAck = 0
  private receiving: Receiving | null = null

  private wanted: WantedBulk | null = null
  /**
   * The demotion state sync asks for now: DEMOTE_SYNC_GONE while the peer is silent
   * and this board serves nothing, DEMOTE_SYNC_BULK until the wanted bulk transfer
   * is in (or its deadline passes, or this board serves), else 0.
   */
  private demoted = 0
  /** A vhid of this board is MASTER (promoted() and stoppedServing() say so). */
  private serving = false
  /**
   * Peer flows whose record came in after the kernel's last event of that flow here
   * (and after the last commit planned them): where the kernel has an entry, it is
   * older than the peer's. Keys of the peer table only, so bounded by it.
   */
  private readonly peerNewer = new Set<string>()
  /**
   * Records a commit is loading into the kernel: the kernel's event for each is our
   * own load coming back, not a change the kernel made, so it is not newer than a
   * peer record that came in meanwhile. Each waits for its event, across commits and
   * takeovers (an echo of the last term's commit may come after this term's began:
   * simulator seed 303391). An echo outlives the peer's flow too: a peer that
   * replaces its entry reports a delete, then the new record, and our load's event
   * may come between them and the next takeover (simulator seed 7001212: taken for a
   * change of the kernel, the older state loaded was kept over the newer one). Keys
   * of the peer table, plus at most MAX_ORPHAN_ECHOES whose peer flow ended.
   */
  private readonly echoes = new Map<string, { record: string; atMs: number }>()
  /** Keys of echoes whose peer flow ended, oldest first. */
  private readonly orphanEchoes = new Set<string>()
  /** The last records of peer flows that ended, oldest first, at most MAX_ORPHAN_ECHOES (see apply()). */
  private readonly recentlyEnded = new Map<string, string>()
  /** Likewise the entries a commit removes to replace them. */
  private readonly removals = new Set<string>()
  /** Peer records came in since the last commit plan was taken. */
  private newRecords = false
  /**
   * Since this board last served nothing (null while it serves and its commit was
   * taken): local flows the kernel's own events changed (alive here), and local flows
   * the peer said ended (deleted from its table). A kernel entry the peer ended and
   * nothing here touched since is a leftover of an earlier term. Both sets hold only
   * keys of the local table, so they are bounded by it.
   */
  private idle: { touched: Set<string>; ended: Set<string> } | null = { touched: new Set(), ended: new Set() }
  private lastIn: BulkInfo | null = null
  private lastOut: BulkInfo | null = null
  private lastInEndMs = 0
  private lastOutEndMs = 0

  constructor(private readonly opts: SyncEngineOptions) {
    this.epoch = this.newEpoch(0)
  }

  /** Starts: wants the peer's table (demoted until it is in) and says hello. */
  start(now: number): SyncAction[] {
    this.want('startup', now)
    this.sendAckOnly(now)
    return this.take()
  }

  // --- the local table, fed by the backend ------------------------------------

  /** A flow of this board's table was created or changed (its record, latin1: 40 bytes, 88 for IPv6). */
  localUpsert(record: string, now: number): SyncAction[] {
    const key = recordKey(record)
    this.snapshotTouched?.add(key)
    this.idle?.touched.add(key)
    if (this.echoes.get(key)?.record === record) {
      // Our load of the peer's record: newer than the peer's only if the peer has
      // not moved on since (simulator: a record that came in during the commit was
      // then taken for older than the stale one just loaded).
      this.echoes.delete(key)
      this.orphanEchoes.delete(key)
      if (this.peer.get(key) === record) this.peerNewer.delete(key)
    } else {
      // A change of the kernel is newer than the peer's record, except before this
      // run's first read of the table has ended: until then an event may be a load
      // that the previous run of carpd started before it died, coming back after this
      // run began (simulator seed 310010255: slow commands and a crash in the middle
      // of a commit; taken for traffic here, the older states it loaded were kept over
      // the peer's newer ones at the next takeover). A board starting serves nothing
      // yet: traffic through it in that moment is rare, and a commit replaces at worst
      // with the peer's last record of the flow.
      if (this.localReady) this.peerNewer.delete(key)
    }
    this.setLocal(key, record, now)
    return this.take()
  }

  /** A flow of this board's table is gone (its key, latin1: 16 bytes, 40 for IPv6). */
  localDelete(key: string, now: number): SyncAction[] {
    this.snapshotTouched?.add(key)
    // Our own removal of a stale entry (a commit replacing it) says nothing new.
    if (!this.removals.delete(key)) this.peerNewer.delete(key)
    this.deleteLocal(key, now)
    return this.take()
  }

  /**
   * One flow of a full read (between snapshotBegin and snapshotEnd). An event about
   * the same flow during the read is newer than the read's line: the line is ignored.
   */
  snapshotUpsert(record: string, now: number): SyncAction[] {
    const key = recordKey(record)
    this.snapshotSeen?.add(key)
    if (!this.snapshotTouched?.has(key)) this.setLocal(key, record, now)
    return this.take()
  }

  private setLocal(key: string, record: string, now: number): void {
    if (this.local.get(key) === record) return
    this.local.set(key, record)
    this.queue(key, record, now)
  }

  private deleteLocal(key: string, now: number): void {
    if (!this.local.delete(key)) return
    this.idle?.touched.delete(key)
    this.idle?.ended.delete(key)
    this.queue(key, '', now)
  }

  /**
   * A full read of the table begins: upserts follow, and snapshotEnd() deletes what
   * the read did not list. Used at start and whenever events may have been lost.
   */
  snapshotBegin(): void {
    this.snapshotSeen = new Set()
    this.snapshotTouched = new Set()
  }

  snapshotEnd(now: number): SyncAction[] {
    const seen = this.snapshotSeen ?? new Set<string>()
    // Flows the events created or changed during the read are current, listed or not.
    for (const key of this.snapshotTouched ?? []) if (this.local.has(key)) seen.add(key)
    this.snapshotSeen = null
    this.snapshotTouched = null
    if (seen.size === 0 && this.local.size > 0) {
      // The table was flushed: one clear says it better than a delete per flow.
      this.local.clear()
      this.pending.clear()
      this.control.push({ type: 'clear' })
    } else {
      for (const key of [...this.local.keys()]) if (!seen.has(key)) this.deleteLocal(key, now)
    }
    this.localReady = true
    if (this.pushWanted !== null) this.startPush(this.pushWanted, now)
    this.pump(now, false)
    return this.take()
  }

  // --- operator and status -----------------------------------------------------

  /**
   * A vhid of this board became MASTER. If it was still waiting for its first bulk
   * transfer, nobody better was serving: its own table is the one that counts, and
   * staying demoted would only let the peer preempt it the moment the peer's own
   * transfer ends first (found by the lab: both boards started within a second,
   * the one serving lost its VIPs to the one without states). It still wants the
   * peer's table, without the demotion.
   */
  promoted(): SyncAction[] {
    this.serving = true
    if (this.wanted?.reason === 'startup') this.wanted.reason = 'missed'
    this.undemote('sync: MASTER with its own table, no longer waiting to be preferred')
    return this.take()
  }

  /**
   * No vhid of this board is MASTER any more: its kernel entries of synced flows go
   * stale from now on (the peer serves them), and a bulk transfer it needs demotes it.
   */
  stoppedServing(): SyncAction[] {
    this.serving = false
    this.idle ??= { touched: new Set(), ended: new Set() }
    if (this.peerState === 'gone') this.waitForReturn()
    else if (this.wanted !== null && this.wanted.reason !== 'operator') this.setDemote(DEMOTE_SYNC_BULK, "sync: waiting for the peer's table")
    return this.take()
  }

  /**
   * This board serves (again): what the kernel needs to hold the newest state of
   * every synced flow. Every peer flow the kernel lacks is loaded (so one a commit
   * failed to load goes again at the next); a kernel entry older than the peer's
   * record is replaced, once; leftovers of flows the peer ended meanwhile are
   * removed. A kernel entry the peer never knew is left alone: it may be a flow this
   * board carried while carpd was restarting.
   */
  takeCommit(now: number): CommitPlan {
    this.newRecords = false
    const plan: CommitPlan = { load: [], replace: [], expire: [] }
    for (const [key, record] of this.peer) {
      if (this.local.has(key)) continue
      // A recent commit's load of an older record whose kernel event has not come
      // yet: the entry is there, an insert would be refused as "there already" and
      // leave the older state (simulator, seed 200005318: a second promotion's
      // commit planned before the first one's events): replaced instead. An older
      // echo is a load that never went in (failed, or refused): a plain load then,
      // not a removal that scans the kernel's table for nothing.
      const echo = this.echoes.get(key)
      if (echo !== undefined && echo.record !== record && now - echo.atMs <= ECHO_IN_FLIGHT_MS) plan.replace.push(key)
      else plan.load.push(key)
    }
    // Keys the kernel lacks stay: a read still running may list an older entry yet.
    for (const key of this.peerNewer) {
      if (!this.local.has(key)) continue
      if (this.replaceable(key)) plan.replace.push(key)
      this.peerNewer.delete(key)
    }
    for (const key of this.idle?.ended ?? []) {
      const record = this.local.get(key)
      if (record !== undefined && !this.peer.has(key) && !this.idle!.touched.has(key)) plan.expire.push([key, record])
    }
    this.idle = this.serving ? null : { touched: new Set(), ended: new Set() }
    return plan
  }

  /** The commit is about to load this peer record into the kernel. */
  expectEcho(key: string, record: string, now: number): void {
    this.echoes.set(key, { record, atMs: now })
    this.orphanEchoes.delete(key)
  }

  /** The commit is about to remove this stale entry, to load the peer's record instead. */
  expectRemoval(key: string): void {
    this.removals.add(key)
  }

  /**
   * Peer records came in since the last commit plan was taken: asked as that commit
   * ends, while it ran (the old master's last changes, late on the sync link).
   */
  get newDuringCommit(): boolean {
    return this.newRecords
  }

  /** The records that came in since the last plan need no commit (the kernel has them): not new any more. */
  newRecordsSeen(): void {
    this.newRecords = false
  }

  /** A vhid of this board is MASTER (promoted() and stoppedServing() say so). */
  get isServing(): boolean {
    return this.serving
  }

  /**
   * After a commit (and its echoes): peer records came in while it ran, or a peer
   * record is newer than the kernel's entry (one came in after its flow was planned):
   * one more commit has something to do.
   */
  moreToCommit(): boolean {
    if (!this.serving) return false // it stepped down meanwhile: the peer serves
    if (this.staleWhileServing()) return true
    for (const key of this.peer.keys()) if (!this.local.has(key)) return true
    return false
  }

  /**
   * A serving board's table read found entries older than the peer's records (it
   * became MASTER before its first read ended: its commit could not know them).
   */
  staleWhileServing(): boolean {
    if (!this.serving) return false
    for (const key of this.peerNewer) if (this.replaceable(key)) return true
    return false
  }

  /**
   * A peer record came in after the kernel's last event of its flow here: newer, unless
   * it is an earlier stage of the flow than the kernel's entry (a restarted peer sends
   * what its kernel kept from an earlier term: simulator seed 303391, where those
   * entries replaced live ones at the next takeover). Counted, and never loaded over ours.
   */
  private markNewer(key: string, record: string): void {
    const own = this.local.get(key)
    if (own !== undefined && recordBehind(record, own)) {
      this.counters.staleRecords++
      this.peerNewer.delete(key)
    } else {
      this.peerNewer.add(key)
    }
  }

  /** A kernel entry the peer's record should replace (a read may have listed a later stage since it came in). */
  private replaceable(key: string): boolean {
    const own = this.local.get(key)
    const record = this.peer.get(key)
    return own !== undefined && record !== undefined && !recordBehind(record, own)
  }

  /** Stale entries a commit could not remove: the next commit replaces them. */
  replaceAgain(keys: Iterable<string>): void {
    for (const key of keys) if (this.peer.has(key) && this.local.has(key)) this.peerNewer.add(key)
  }

  /** `carpd ctl resync`: both tables again, both ways; no demotion. */
  resync(now: number): SyncAction[] {
    this.want('operator', now)
    this.startPush(0, now)
    this.pump(now, true)
    return this.take()
  }

  status(now: number): SyncStatus {
    let oldest = now
    for (const u of this.unacked.values()) oldest = Math.min(oldest, u.sentMs)
    const r = this.receiving
    const p = this.push
    return {
      peer: { state: this.peerState, heardMsAgo: this.peerHeardMs === null ? null : Math.round(now - this.peerHeardMs), epoch: this.peerEpoch },
      states: { local: this.local.size, peer: this.peer.size },
      lag: { queued: this.pending.size, unacked: this.unacked.size, oldestUnackedMs: Math.round(now - oldest) },
      counters: { ...this.counters },
      drops: { ...this.drops },
      bulk: {
        wanted: this.wanted?.reason ?? null,
        receiving: r && { direction: 'in', id: r.id, total: r.total, done: r.done, ms: Math.round(now - r.startMs), agoMs: 0 },
        sending: p && { direction: 'out', id: p.id, total: p.keys.length, done: p.sent, ms: Math.round(now - p.startMs), agoMs: 0 },
        lastIn: this.lastIn && { ...this.lastIn, agoMs: Math.round(now - this.lastInEndMs) },
        lastOut: this.lastOut && { ...this.lastOut, agoMs: Math.round(now - this.lastOutEndMs) },
      },
    }
  }

  // --- the wire ------------------------------------------------------------------

  /**
   * One datagram from the sync socket. `fromPeer` says it came from the configured
   * peer's address and port; anything else is dropped before it is even decoded.
   */
  receive(bytes: Buffer, fromPeer: boolean, now: number): SyncAction[] {
    if (!fromPeer) return this.drop('unknownSender')
    // Nothing longer than our own frames is ours: no HMAC work for it.
    if (bytes.length > this.opts.maxFrameBytes) return this.drop('oversized')
    const decoded = decodeSyncFrame(bytes, this.opts.key)
    if (!decoded.ok) return this.drop(decoded.error)
    const frame = decoded.frame
    // Our own frames reflected back (or a peer configured with our node name).
    if (frame.sender === this.opts.sender) return this.drop('ownPacket')
    if (!this.acceptSession(frame, now)) return this.drop('staleSession')
    const ahead = frame.seq - this.expected
    if (!frame.ackOnly && ahead >= RECEIVE_WINDOW_FRAMES) return this.drop('outOfWindow')
    if (frame.ackOnly) this.applyEarly(now) // a taken-back session may start at a kept frame

    this.counters.framesReceived++
    this.heard(now)
    const ipv6 = frame.sections.some((x) => x.type === 'ack' && x.ranges.some((r) => r.from === IPV6_CAPABLE.from && r.to === IPV6_CAPABLE.to))
    if (ipv6 !== this.peerIpv6) this.ipv6HeldSaid = false
    this.peerIpv6 = ipv6
    if (frame.ackEpoch === this.epoch) this.acked(frame, now)

    if (!frame.ackOnly) {
      if (ahead < 0) {
        // Our ack was lost and the peer sent it again: acknowledge at once.
        this.counters.duplicates++
        this.ackDue = now
      } else if (ahead > 0) {
        if (!this.early.has(frame.seq)) this.counters.outOfOrder++
        this.early.set(frame.seq, frame)
        this.ackDue = now
      } else {
        this.apply(frame, now)
        this.applyEarly(now)
        this.framesSinceAck++
        if (this.framesSinceAck >= ACK_EVERY_FRAMES) this.ackDue = now
        else this.ackDue ??= now + ACK_DELAY_MS
      }
    }
    this.pump(now, false)
    if (this.ackDue !== null && this.ackDue <= now) this.sendAckOnly(now)
    return this.take()
  }

  /** Runs whatever is due: flush, acks, resends, keepalive, peer timeout, bulk timeout. */
  tick(now: number): SyncAction[] {
    if (this.wanted && now >= this.wanted.deadlineMs) {
      this.wanted = null
      this.log(`no bulk transfer from the peer within ${this.opts.bulkTimeoutMs / 1000}s: going on with ${this.peer.size} peer states`)
      this.undemote('sync: gave up waiting for the bulk transfer')
    }
    if (this.bulkAskDueMs() <= now) {
      // A request can be lost for good: sent in frames of a session the peer then
      // refused (simulator, seed 100628: the board waited out the whole timeout, demoted).
      // pfsync(4) asks again likewise, every 5 s.
      this.counters.bulkRetries++
      this.askBulk(this.wanted!, now)
    }
    // Sequence numbers are 32 bits: a new session long before they run out (the
    // peer adopts it at once, its frames acknowledge ours).
    if (this.nextSeq > SEQ_ROLL && this.unacked.size === 0) {
      this.log(`sequence numbers at ${this.nextSeq}: starting a new session`)
      this.epoch = this.newEpoch(this.epoch)
      this.nextSeq = 1
    }
    if (this.peerState === 'up' && this.peerHeardMs !== null && now - this.peerHeardMs >= PEER_TIMEOUT_MS) this.peerGone(now)
    this.watchGap(now)
    for (const [seq, u] of this.unacked) {
      if (now - u.sentMs < RESEND_MS) continue
      u.sentMs = now
      this.counters.resends++
      this.transmit(u.frame, now, seq)
    }
    const flushDue = this.pendingSinceMs !== null && now >= this.pendingSinceMs + FLUSH_DELAY_MS
    this.pump(now, flushDue)
    if ((this.ackDue !== null && now >= this.ackDue) || now - this.lastSentMs >= KEEPALIVE_MS) this.sendAckOnly(now)
    return this.take()
  }

  /** When tick() next has something to do. */
  nextWakeMs(): number {
    let at = this.lastSentMs + KEEPALIVE_MS
    if (this.ackDue !== null) at = Math.min(at, this.ackDue)
    // A full window waits for an ack (which pumps), not for the clock: else it spins.
    const room = this.unacked.size < SEND_WINDOW_FRAMES
    if (this.pendingSinceMs !== null && this.peerState === 'up' && room) at = Math.min(at, this.pendingSinceMs + FLUSH_DELAY_MS)
    for (const u of this.unacked.values()) at = Math.min(at, u.sentMs + RESEND_MS)
    if (this.peerState === 'up' && this.peerHeardMs !== null) at = Math.min(at, this.peerHeardMs + PEER_TIMEOUT_MS)
    if (this.wanted) at = Math.min(at, this.wanted.deadlineMs, this.bulkAskDueMs())
    if (this.gap) at = Math.min(at, this.gap.sinceMs + GAP_WAIT_MS)
    return at
  }

  // --- receiving -------------------------------------------------------------------

  /**
   * Is the frame part of the peer's current session? Another session (the peer
   * restarted, or lost us and began anew) is adopted only when its frame
   * acknowledges this board's own current session, which only the live peer can
   * have heard, or when there is no session to lose (first contact). A session once
   * left is never adopted again. So a replayed recording can neither cut a live
   * session off nor hold a dead one against the peer's new one. Joining a session
   * in its middle means frames were missed: the whole table is asked for.
   */
  private acceptSession(frame: SyncFrame, now: number): boolean {
    if (frame.epoch === this.peerEpoch) return true
    if (this.peerEpoch === null && frame.epoch === this.lostPeerEpoch) {
      // Older than where we were: a recording of it, not the peer going on (first
      // contact must not adopt it either: its gap would never be filled).
      // An ack-only frame carries the last seq used: it stands for the one after.
      if ((frame.ackOnly ? frame.seq + 1 : frame.seq) < this.lostPeerExpected) return false
      // Found by the simulator (seed 1067): after a 3 s pause of one board, each side
      // refused the other's session for good and sync never came back.
      this.log(`peer went on with its session (epoch ${hex(frame.epoch)}) after our silence`)
      this.lostPeerEpoch = null
      this.peerEpoch = frame.epoch
      this.expected = frame.ackOnly ? frame.seq + 1 : frame.seq
      // Frames of this session that came early are kept: we acknowledged them, so the
      // peer never sends them again (simulator, seed 100977: a gap that never filled).
      for (const seq of this.early.keys()) if (seq < this.expected) this.early.delete(seq)
      this.framesSinceAck = 0
      this.askAgain('missed', now)
      return true
    }
    if (this.retired.includes(frame.epoch)) return false
    if (this.peerEpoch !== null && frame.ackEpoch !== this.epoch) return false
    const first = frame.ackOnly ? frame.seq + 1 : frame.seq
    if (this.peerEpoch !== null) {
      this.log(`peer started a new session (epoch ${hex(frame.epoch)})`)
      this.retire(this.peerEpoch)
    }
    if (this.lostPeerEpoch !== null) this.retire(this.lostPeerEpoch)
    this.lostPeerEpoch = null
    this.peerEpoch = frame.epoch
    this.expected = first
    this.early.clear()
    this.framesSinceAck = 0
    if (first > 1) this.askAgain('missed', now)
    return true
  }

  private retire(epoch: number): void {
    this.retired.push(epoch)
    if (this.retired.length > MAX_RETIRED_SESSIONS) this.retired.shift()
  }

  private heard(now: number): void {
    this.peerHeardMs = now
    if (this.peerState === 'up') return
    const back = this.peerState === 'gone'
    this.log(back ? 'peer is back on the sync link' : 'peer heard on the sync link')
    this.peerState = 'up'
    // Whatever the peer missed while we could not reach it, it gets whole; and what
    // it changed meanwhile we want whole too (a board back from a link loss must not
    // preempt with the table it had before: pfsync(4) demotes for its bulk likewise).
    // An operator's resync asked while the peer was gone becomes a demoting wait;
    // so does first contact after the startup wait gave up (no table yet).
    if (back || (this.wanted === null && this.lastIn === null)) this.want(this.wanted?.reason === 'startup' ? 'startup' : 'missed', now)
    else if (this.wanted) this.askBulk(this.wanted, now)
    this.startPush(this.pushWanted ?? 0, now)
  }

  private peerGone(now: number): void {
    this.peerState = 'gone'
    this.log(`peer silent on the sync link for ${PEER_TIMEOUT_MS / 1000}s: ${this.unacked.size} frames and ${this.pending.size} queued changes dropped, all states go again when it is back`)
    if (!this.serving) this.waitForReturn()
    this.counters.lostFrames += this.unacked.size
    this.counters.sessionResets++
    this.unacked.clear()
    this.pending.clear()
    this.pendingSinceMs = null
    this.control = []
    this.push = null
    this.epoch = this.newEpoch(this.epoch)
    this.nextSeq = 1
    // Its session is over for us too, unless the peer goes on with it (it may not
    // have noticed the silence); a transfer cut off in the middle is asked for again
    // when it is back. Any other session it used before stays refused.
    if (this.lostPeerEpoch !== null) this.retire(this.lostPeerEpoch)
    this.lostPeerEpoch = this.peerEpoch
    this.lostPeerExpected = this.expected
    this.peerEpoch = null
    if (this.receiving) {
      this.receiving = null
      this.askAgain('missed', now)
    }
    this.sendAckOnly(now)
  }

  private acked(frame: SyncFrame, now: number): void {
    for (const seq of this.unacked.keys()) {
      if (seq <= frame.ack) this.unacked.delete(seq)
    }
    let highest = 0
    const ranges = frame.sections.flatMap((section) => (section.type === 'ack' ? section.ranges : []))
    if (ranges.length > 0) {
      // Over the window (at most SEND_WINDOW_FRAMES), never over the ranges' span.
      for (const seq of this.unacked.keys()) {
        if (ranges.some((r) => seq >= r.from && seq <= r.to)) this.unacked.delete(seq)
      }
      for (const r of ranges) highest = Math.max(highest, Math.min(r.to, this.nextSeq - 1))
    }
    // Frames below one the receiver has are lost, not late: send them again now
    // rather than after RESEND_MS.
    for (const [seq, u] of this.unacked) {
      if (seq > highest || now - u.sentMs < FAST_RESEND_MS) continue
      u.sentMs = now
      this.counters.resends++
      this.transmit(u.frame, now, seq)
    }
  }

  /**
   * A frame that never comes while later ones wait: the peer no longer has it to send
   * (it took it for acknowledged). Left alone, the receive window fills and sync stops
   * for good with the peer up. So after GAP_WAIT_MS (many resends) the gap is skipped
   * and the whole table asked for, which repairs whatever the missing frames carried.
   */
  private watchGap(now: number): void {
    if (this.early.size === 0) {
      this.gap = null
      return
    }
    // The gap ripens only while the peer talks: a silent link fills no gap.
    const talking = this.peerState === 'up' && this.peerHeardMs !== null && now - this.peerHeardMs <= KEEPALIVE_MS
    if (this.gap === null || this.gap.expected !== this.expected || !talking) {
      this.gap = { expected: this.expected, sinceMs: now }
      return
    }
    if (now - this.gap.sinceMs < GAP_WAIT_MS) return
    const next = Math.min(...this.early.keys())
    this.log(`frames ${this.expected}..${next - 1} of the peer never came: going on from ${next} and asking for its whole table`)
    this.counters.gapsSkipped++
    this.gap = null
    // A transfer the gap cut is not whole: its end must not count as one (review).
    this.receiving = null
    this.expected = next
    this.applyEarly(now)
    this.askAgain('missed', now)
  }

  /** Applies the frames that waited for the one just applied. */
  private applyEarly(now: number): void {
    for (let next = this.early.get(this.expected); next; next = this.early.get(this.expected)) {
      this.early.delete(this.expected)
      this.apply(next, now)
    }
  }

  /** Applies one in-order frame of the peer's session to the peer table. */
  private apply(frame: SyncFrame, now: number): void {
    this.expected = frame.seq + 1
    for (const section of frame.sections) {
      switch (section.type) {
        case 'insert':
        case 'update':
          for (const rec of section.records) {
            const record = rec.toString('latin1')
            const key = recordKey(record)
            // Only a changed record is news: the same one again (a bulk transfer, or a
            // peer that replaced its entry with what it had: a delete, then the same
            // record) says nothing about the kernel's entry here, which may have moved
            // on since (simulator seed 30001546: a paused board's own newer state was
            // replaced by the peer's copy of its older one).
            const before = this.peer.get(key) ?? this.recentlyEnded.get(key)
            this.peer.set(key, record)
            this.recentlyEnded.delete(key)
            this.orphanEchoes.delete(key)
            if (before !== record) this.markNewer(key, record)
            this.newRecords = true
            this.receiving?.stale.delete(key)
          }
          this.counters.changesReceived += section.records.length
          if (this.receiving) this.receiving.done += section.records.length
          break
        case 'delete':
          // Only the copy goes now. A backup's own kernel entry of the flow (left from
          // a time it was master) is removed when it serves again (takeCommit):
          // conntrack -D scans the whole table for each flow (0.35 s at 100,000), far
          // too dear per delete, and a backup that never serves again loses nothing.
          for (const k of section.keys) {
            const key = k.toString('latin1')
            this.peerEnded(key)
            this.receiving?.stale.delete(key)
          }
          this.counters.changesReceived += section.keys.length
          break
        case 'clear':
          for (const key of this.peer.keys()) this.peerEnded(key)
          this.receiving?.stale.clear()
          this.log('peer cleared its state table')
          break
        case 'bulkRequest': {
          // One transfer answers any number of requests: the last id is the one.
          const id = section.ids[section.ids.length - 1]
          if (id !== undefined) this.startPush(id, now)
          break
        }
        case 'bulkStart': {
          const item = section.items[section.items.length - 1]
          if (item === undefined) break
          this.receiving = { id: item.id, total: item.total, done: 0, startMs: now, stale: new Set(this.peer.keys()) }
          this.log(`bulk transfer ${item.id} from the peer: ${item.total} states coming`)
          break
        }
        case 'bulkEnd':
          for (const { id, count } of section.items) this.bulkReceived(id, count, now)
          break
        case 'ack':
          break // handled with the header's ack
        default:
          assertNever(section)
      }
    }
  }

  /** The peer no longer has this flow (it ended there, or its table was flushed). */
  private peerEnded(key: string): void {
    const record = this.peer.get(key)
    if (record === undefined || !this.peer.delete(key)) return
    this.recentlyEnded.set(key, record)
    if (this.recentlyEnded.size > MAX_ORPHAN_ECHOES) this.recentlyEnded.delete(this.recentlyEnded.keys().next().value as string)
    this.peerNewer.delete(key)
    if (this.echoes.has(key)) this.orphanEcho(key)
    // A removal of ours still in flight stays expected: its kernel event is ours, not
    // a change of the kernel (simulator seed 280009506: a peer that replaced its entry
    // (a delete, then the new record) while our replace ran; the delete forgot the
    // removal, its event then dropped the peer's new record as older than the kernel,
    // and our insert of the older record stayed).
    if (this.idle && this.local.has(key)) this.idle.ended.add(key)
  }

  /** Keeps an expected echo whose peer flow ended; the oldest beyond MAX_ORPHAN_ECHOES go. */
  private orphanEcho(key: string): void {
    this.orphanEchoes.add(key)
    if (this.orphanEchoes.size <= MAX_ORPHAN_ECHOES) return
    const oldest = this.orphanEchoes.values().next().value as string
    this.orphanEchoes.delete(oldest)
    this.echoes.delete(oldest)
  }

  private bulkReceived(id: number, count: number, now: number): void {
    const r = this.receiving
    // An end without its start (we joined in the middle, or lost the peer during
    // the transfer) is not a whole table: ask for one.
    if (!r || r.id !== id) return this.askAgain('missed', now)
    for (const key of r.stale) this.peerEnded(key)
    const ms = Math.round(now - r.startMs)
    this.lastIn = { direction: 'in', id, total: r.total, done: count, ms, agoMs: 0 }
    this.lastInEndMs = now
    this.receiving = null
    this.log(`bulk transfer ${id} from the peer done: ${count} states in ${ms} ms, ${r.stale.size} stale states forgotten`)
    this.wanted = null
    this.undemote('sync: bulk transfer done')
  }

  private undemote(why: string): void {
    this.setDemote(0, why)
  }

  private setDemote(value: number, why: string): void {
    if (value === this.demoted) return
    this.demoted = value
    this.out.push({ type: 'demote', value, why })
  }

  // --- sending ---------------------------------------------------------------------

  /** Wants the peer's whole table; the request goes now if the peer is up, else when it is heard. */
  private want(reason: BulkReason, now: number): void {
    const id = this.nextBulkId++
    // While the peer is gone, the wait has no end (waitForReturn); it starts once it is back.
    const waitsForReturn = this.peerState === 'gone' && !this.serving
    this.wanted = { reason, id, deadlineMs: waitsForReturn ? Infinity : now + this.opts.bulkTimeoutMs, askedMs: null }
    if (this.peerState === 'up') this.askBulk(this.wanted, now)
    // A board that does not serve waits for the table before it may be preferred (a
    // master keeps serving: demoting it would hand the VIPs to a peer that waits too).
    // An operator's resync changes nobody's role.
    if (reason !== 'operator' && !this.serving && !waitsForReturn) {
      const why = reason === 'startup' ? 'sync: waiting for the bulk transfer from the peer' : "sync: waiting for the peer's table after missing its changes"
      this.setDemote(DEMOTE_SYNC_BULK, why)
    }
  }

  /**
   * The peer is silent on the sync link and this board does not serve: whatever the
   * peer changes now, this board's copy lacks. It stays demoted for as long as the
   * peer is gone (no deadline: CARP adverts come back on a returning link well before
   * the sync link's next keepalive, and a preempt in between would serve with the old
   * copy), then by DEMOTE_SYNC_BULK until the peer's table is in. While gone, only by
   * DEMOTE_SYNC_GONE (pfsync(4) adds 1 while its link is down): a master that loses
   * a link (20) must still be replaced by this board. A peer that is really dead is
   * replaced by CARP's master-down, which demotion does not delay.
   */
  private waitForReturn(): void {
    this.wanted = { reason: this.wanted?.reason ?? 'missed', id: this.wanted?.id ?? 0, deadlineMs: Infinity, askedMs: null }
    this.setDemote(DEMOTE_SYNC_GONE, "sync: peer silent on the sync link: this board's copy of its table is out of date")
  }

  /** Frames were missed: a new request, whatever was asked before (that one may be lost). */
  private askBulk(wanted: WantedBulk, now: number): void {
    wanted.askedMs = now
    // One request waiting to go is enough (a full send window holds them back).
    this.control = this.control.filter((c) => c.type !== 'bulkRequest')
    this.control.push({ type: 'bulkRequest', ids: [wanted.id] })
  }

  /** When the wanted transfer's request goes again: it was asked, the peer is up, and no transfer began. */
  private bulkAskDueMs(): number {
    const w = this.wanted
    if (w === null || w.askedMs === null || this.peerState !== 'up' || this.receiving !== null) return Infinity
    return w.askedMs + BULK_RETRY_MS
  }

  private askAgain(reason: BulkReason, now: number): void {
    this.want(this.wanted?.reason ?? reason, now)
  }

  private queue(key: string, record: string, now: number): void {
    if (this.peerState !== 'up') return // the bulk transfer on its return carries it
    const max = this.opts.maxPending ?? MAX_PENDING_CHANGES
    if (this.pending.size >= max && !this.pending.has(key)) {
      this.counters.overflows++
      this.log(`sync queue full (${max} changes): sending the whole table instead`)
      this.pending.clear()
      this.pendingSinceMs = null
      this.startPush(0, now)
      return
    }
    // Re-inserting moves the flow to the end: its newest value goes, once.
    this.pending.delete(key)
    this.pending.set(key, record)
    this.pendingSinceMs ??= now
    if (this.pending.size >= this.recordsPerFrame()) this.pump(now, false)
  }

  private startPush(id: number, now: number): void {
    if (!this.localReady || this.peerState !== 'up') {
      this.pushWanted = id
      return
    }
    this.pushWanted = null
    if (this.push) this.log(`bulk transfer ${this.push.id} to the peer restarted as ${id}`)
    this.push = { id, keys: [], index: 0, sent: 0, started: false, startMs: now }
  }

  private recordsPerFrame(): number {
    return Math.floor((this.opts.maxFrameBytes - SYNC_HEADER_LEN - SYNC_HMAC_LEN - 2 * SECTION_HEADER_LEN - 8 * ACK_RANGES) / FLOW_RECORD_LEN)
  }

  /**
   * Sends frames while the window has room. Changes alone wait for a full frame
   * unless `flush` (their delay is over); control messages and bulk transfers go at once.
   */
  private pump(now: number, flush: boolean): void {
    while (this.peerState === 'up' && this.unacked.size < SEND_WINDOW_FRAMES) {
      const urgent = this.control.length > 0 || this.push !== null
      if (!urgent && this.pending.size === 0) break
      if (!urgent && !flush && this.pending.size < this.recordsPerFrame()) break
      const frame = this.buildFrame(now)
      if (frame.sections.length === 0) break
      this.transmit(frame, now, frame.seq)
      this.unacked.set(frame.seq, { frame, sentMs: now })
    }
  }

  private buildFrame(now: number): SyncFrame {
    const b = new Budget(this.opts.maxFrameBytes)
    const sections: SyncSection[] = []
    while (this.control.length > 0 && b.fits(this.control[0]!)) sections.push(b.take(this.control.shift()!))

    // Live changes, in order; consecutive ones of a kind share a section.
    // A section holds records of one family (IPv6 ones are longer): a change of family
    // begins a section too.
    let open: Buffer[] | null = null
    let openKind = ''
    for (const [key, record] of this.pending) {
      if (this.heldBack(key)) {
        this.pending.delete(key)
        continue
      }
      const kind = record === '' ? 'delete' : 'update'
      const bytes = record === '' ? key.length : record.length
      const fresh = `${kind}${bytes}` !== openKind
      if (!b.room(bytes, fresh)) break
      if (fresh) {
        open = []
        openKind = `${kind}${bytes}`
        sections.push(kind === 'delete' ? { type: 'delete', keys: open } : { type: 'update', records: open })
      }
      open!.push(Buffer.from(kind === 'delete' ? key : record, 'latin1'))
      this.pending.delete(key)
      this.counters.changesSent++
    }
    if (this.pending.size === 0) this.pendingSinceMs = null

    const p = this.push
    if (p) {
      if (!p.started && b.room(8, true)) {
        // The table is listed when bulkStart leaves, not when the transfer was asked
        // for: a change sent in between would otherwise be marked stale by the
        // receiver and then missing from the transfer.
        p.keys = [...this.local.keys()]
        sections.push({ type: 'bulkStart', items: [{ id: p.id, total: p.keys.length }] })
        p.started = true
      }
      if (p.started) {
        let inserts: Buffer[] = []
        let insertsLength = 0 // of the open section's records (one family's); 0: none open
        while (p.index < p.keys.length) {
          const record = this.local.get(p.keys[p.index]!)
          if (record === undefined || this.heldBack(p.keys[p.index]!)) {
            p.index++ // deleted since the transfer began, or IPv6 for an older peer: costs no room
            continue
          }
          const fresh = record.length !== insertsLength
          if (!b.room(record.length, fresh)) break
          p.index++
          if (fresh) {
            insertsLength = record.length
            inserts = []
            sections.push({ type: 'insert', records: inserts })
          }
          inserts.push(Buffer.from(record, 'latin1'))
          p.sent++
          this.counters.bulkRecordsSent++
        }
        if (p.index >= p.keys.length && b.room(8, true)) {
          sections.push({ type: 'bulkEnd', items: [{ id: p.id, count: p.sent }] })
          this.lastOut = { direction: 'out', id: p.id, total: p.keys.length, done: p.sent, ms: Math.round(now - p.startMs), agoMs: 0 }
          this.lastOutEndMs = now
          this.log(`bulk transfer ${p.id} to the peer sent: ${p.sent} states`)
          this.push = null
        }
      }
    }
    return { ackOnly: false, sender: this.opts.sender, epoch: this.epoch, seq: sections.length > 0 ? this.nextSeq++ : 0, ackEpoch: 0, ack: 0, sections }
  }

  /** An IPv6 flow's change for a peer that does not take them (an older carpd): said once, not sent. */
  private heldBack(key: string): boolean {
    if (this.peerIpv6 || key.charCodeAt(0) !== FAMILY_IPV6) return false
    if (!this.ipv6HeldSaid) this.log('the peer runs a carpd without IPv6 flows: they are not sent to it (upgrade it)')
    this.ipv6HeldSaid = true
    this.counters.ipv6HeldBack++
    return true
  }

  /** Encodes a frame with the current acknowledgement and hands it out. */
  private transmit(frame: SyncFrame, now: number, seq: number): void {
    const sections = [...frame.sections, this.sackSection()]
    const bytes = encodeSyncFrame({ ...frame, seq, ackEpoch: this.peerEpoch ?? 0, ack: this.expected - 1, sections }, this.opts.key)
    this.out.push({ type: 'send', bytes })
    this.counters.framesSent++
    this.lastSentMs = now
    this.ackDue = null
    this.framesSinceAck = 0
  }

  private sendAckOnly(now: number): void {
    const frame: SyncFrame = { ackOnly: true, sender: this.opts.sender, epoch: this.epoch, seq: this.nextSeq - 1, ackEpoch: 0, ack: 0, sections: [] }
    this.transmit(frame, now, frame.seq)
  }

  /** The IPv6 marker, then ranges of early frames, so the sender resends only the gap. */
  private sackSection(): SyncSection {
    const seqs = [...this.early.keys()].sort((a, b) => a - b)
    const ranges: { from: number; to: number }[] = [{ ...IPV6_CAPABLE }]
    for (const seq of seqs) {
      const last = ranges[ranges.length - 1]
      if (ranges.length > 1 && last && last.to + 1 === seq) last.to = seq
      else if (ranges.length < ACK_RANGES) ranges.push({ from: seq, to: seq })
    }
    return { type: 'ack', ranges }
  }

  private newEpoch(old: number): number {
    for (;;) {
      const epoch = this.opts.random32() >>> 0
      if (epoch !== 0 && epoch !== old) return epoch
    }
  }

  private drop(reason: SyncDropReason): SyncAction[] {
    this.drops[reason]++
    return this.take()
  }

  private log(message: string): void {
    this.out.push({ type: 'log', message })
  }

  private take(): SyncAction[] {
    if (this.out.length === 0) return NONE
    const out = this.out
    this.out = []
    return out
  }
}

const NONE: SyncAction[] = []

/** Bytes left in a frame being built; room is kept for the selective acks added at send time. */
class Budget {
  private used = SYNC_HEADER_LEN + SYNC_HMAC_LEN + SECTION_HEADER_LEN + 8 * ACK_RANGES
  constructor(private readonly max: number) {}

  /** Is there room for one record of `bytes`, with a section header if `fresh`? Takes it if so. */
  room(bytes: number, fresh: boolean): boolean {
    const need = bytes + (fresh ? SECTION_HEADER_LEN : 0)
    if (this.used + need > this.max) return false
    this.used += need
    return true
  }

  fits(section: SyncSection): boolean {
    return this.used + sectionBytes(section) <= this.max
  }

  take(section: SyncSection): SyncSection {
    this.used += sectionBytes(section)
    return section
  }
}

function sectionBytes(section: SyncSection): number {
  switch (section.type) {
    case 'clear':
      return SECTION_HEADER_LEN
    case 'bulkRequest':
      return SECTION_HEADER_LEN + 4 * section.ids.length
    case 'bulkStart':
    case 'bulkEnd':
      return SECTION_HEADER_LEN + 8 * section.items.length
    case 'ack':
      return SECTION_HEADER_LEN + 8 * section.ranges.length
    case 'delete':
      return section.keys.reduce((sum, key) => sum + key.length, SECTION_HEADER_LEN)
    case 'insert':
    case 'update':
      return section.records.reduce((sum, record) => sum + record.length, SECTION_HEADER_LEN)
    default:
      return assertNever(section)
  }
}

function assertNever(x: never): never {
  throw new Error(`unexpected ${JSON.stringify(x)}`)
}
