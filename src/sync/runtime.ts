// Wires the state sync engine (sync/engine.ts, pure) to the world: the sync link's
// UDP socket, the firewall backend (platform/conntrack.ts on Linux), the clock and
// the agent's demotion counter.
//
// The backup keeps its peer's flows in memory and loads them into the kernel only
// when one of its vhids becomes MASTER (conntrackd's way, not pfsync's): see the
// README's "State sync" for the measurements behind that choice.

import type { Endpoint } from '../config/types.js'
import type { Clock, TimerHandle } from '../io/clock.js'
import type { Logger } from '../io/log.js'
import type { Transport } from '../io/transport.js'
import { BACKEND_FAIL_HOLD_MS, COMMIT_FOLLOW_UPS, COMMIT_SETTLE_MS, DEMOTE_SYNC_BACKEND, LATE_COMMIT_WINDOW_MS } from './constants.js'
import type { FlowChange, SyncBackend } from './backend.js'
import { type CommitPlan, type SyncAction, SyncEngine } from './engine.js'
import type { CommitInfo, SyncRuntimeStatus } from './status.js'
import { FAMILY_IPV6, type Flow } from '../wire/flow.js'
import { isIpv6, isIpv6LinkLocal } from '../wire/ip.js'
import { senderId } from '../wire/ids.js'
import { decodeFlowRecord, encodeFlowRecord, encodeKeyRecord } from '../wire/sync.js'

/** A snapshot that failed is tried again after this long. */
const SNAPSHOT_RETRY_MS = 5000
/**
 * After events were lost the table is read this long later, not at once. The event
 * reader goes on with events the kernel queued before the loss, and they reach us
 * through its stdout while the loss comes on its stderr: read at once, such an old
 * event landed during the read, counted as newer than the read's line and kept a
 * flow at its handshake state (the lab: SYN_SENT synced for an established stream,
 * which the backup then loaded and dropped at every failover, 1 run in ~20).
 */
export const SNAPSHOT_AFTER_LOSS_MS = 250
/**
 * Reads after lost events start at most this often. A kernel that drops events once
 * keeps dropping them under the same load (the lab: `conntrack -E` hit ENOBUFS every
 * 10-20 s at 1,000 new UDP flows/s, with an 8 or a 128 MiB socket buffer alike), and
 * a read of 30,000 flows took 0.8 s of the board's CPU: the master spent a third of
 * its time reading its own table again. conntrackd's NetlinkOverrunResync waits 30 s
 * for the same reason (conntrackd.conf(5)).
 */
export const LOSS_READ_GAP_MS = 30_000
/**
 * Stale entries are replaced this many at a time (removed, then the peer's states
 * inserted), so a flow is without an entry only while its own chunk is removed:
 * each `conntrack -D` reads the whole table (~35 ms per flow at 20,000 flows).
 */
const REPLACE_CHUNK_FLOWS = 64

export interface SyncRuntimeDeps {
  node: string
  key: string
  peer: Endpoint // address and port, resolved
  maxFrameBytes: number
  bulkTimeoutMs: number
  clock: Clock
  transport: Transport // bound to this board's address on the sync link
  backend: SyncBackend
  log: Logger
  random(bytes: number): Buffer
  /** The agent's demotion counter, by reason. */
  demote(reason: string, value: number, why: string): void
  /**
   * Addresses whose flows are not synced: this board's own interface addresses and
   * the peer's sync address (adverts, the sync link itself, ssh to the board mean
   * nothing on the other board; conntrackd calls this IgnoreTrafficFor).
   */
  ignoreAddresses: readonly string[]
  /**
   * Asked once per commit: why a peer connection is not loaded, or null to load it
   * (null for none: nothing to leave out). Multi-WAN answers for one marked for a WAN
   * that is dead on this board (it could only hang, and the WAN's drain removes what
   * is loaded of it).
   */
  leaveOut?: () => ((flow: Flow) => string | null) | null
}

export class SyncRuntime {
  private readonly engine: SyncEngine
  private timer: TimerHandle | null = null
  private timerAt = Infinity
  private running = false
  private sendErrors = 0
  private snapshots = 0
  private unsyncable = 0
  private snapshotFailures = 0
  private snapshotting: Promise<void> | null = null
  private snapshotAgain = false
  private backendHold: TimerHandle | null = null
  private retryTimer: TimerHandle | null = null
  private lossTimer: TimerHandle | null = null
  /** When the last read after lost events started (LOSS_READ_GAP_MS). */
  private lossReadMs = -Infinity
  private lateTimer: TimerHandle | null = null
  private promotedMs = -Infinity
  private commitQueue: Promise<void> = Promise.resolve()
  private lastCommit: (CommitInfo & { endMs: number }) | null = null
  /** A commit since the last promotion said that it left everything it had out. */
  private leftOutSaid = false

  private readonly ignore: ReadonlySet<string>

  constructor(private readonly deps: SyncRuntimeDeps) {
    this.ignore = new Set(deps.ignoreAddresses)
    this.engine = new SyncEngine({
      key: deps.key,
      sender: senderId(deps.node),
      maxFrameBytes: deps.maxFrameBytes,
      bulkTimeoutMs: deps.bulkTimeoutMs,
      random32: () => deps.random(4).readUInt32BE(0),
    })
    deps.transport.onPacket((payload, from) => {
      if (!this.running) return
      const fromPeer = from.address === deps.peer.address && from.port === deps.peer.port
      this.carryOut(this.engine.receive(payload, fromPeer, deps.clock.now()))
      if (this.engine.isServing && this.engine.newDuringCommit) this.commitLate()
    })
  }

  start(): void {
    this.running = true
    const { peer } = this.deps
    this.deps.log.event('sync', `starting: peer ${peer.address}:${peer.port}, frames up to ${this.deps.maxFrameBytes} bytes`)
    this.carryOut(this.engine.start(this.deps.clock.now()))
    this.deps.backend.watch(
      (change) => this.localChange(change),
      (why) => {
        if (this.lossTimer !== null) return
        const now = this.deps.clock.now()
        const atMs = Math.max(now + SNAPSHOT_AFTER_LOSS_MS, this.lossReadMs + LOSS_READ_GAP_MS)
        const when = atMs - now > SNAPSHOT_AFTER_LOSS_MS ? `in ${((atMs - now) / 1000).toFixed(1)} s (one such read per ${LOSS_READ_GAP_MS / 1000} s at most)` : 'again'
        this.deps.log.event('sync', `state events lost (${why}): reading the whole table ${when}`)
        this.lossTimer = this.deps.clock.at(atMs, () => {
          this.lossTimer = null
          this.lossReadMs = this.deps.clock.now()
          if (this.running) void this.snapshot()
        })
      },
    )
    void this.snapshot()
  }

  async stop(): Promise<void> {
    this.running = false
    this.timer?.cancel()
    this.backendHold?.cancel()
    this.retryTimer?.cancel()
    this.lossTimer?.cancel()
    this.lateTimer?.cancel()
    this.deps.backend.stop()
    await this.commitQueue
  }

  /**
   * A vhid became MASTER: the kernel is made to hold the newest state of every synced
   * flow (see commit()). Each call queues one commit; a commit after another finds
   * only what changed in between.
   */
  promoted(): Promise<void> {
    this.promotedMs = this.deps.clock.now()
    this.leftOutSaid = false
    this.carryOut(this.engine.promoted())
    return this.queueCommit()
  }

  /**
   * Peer records came in while this board serves, after its takeover's commits: the
   * old master still forwards during its release grace (VIP_RELEASE_GRACE_MS), and
   * what its kernel changed then is newer than ours (simulator seed 10001359: a flow
   * that became ESTABLISHED there stayed SYN_SENT here). One more commit, a
   * COMMIT_SETTLE_MS after the first such record, loads them, within
   * LATE_COMMIT_WINDOW_MS of the promotion.
   */
  private commitLate(): void {
    const now = this.deps.clock.now()
    // Only around a takeover: a master that serves alone hears no records, and the
    // backup's own flows (its DNS, NTP) are never this board's to load.
    if (this.lateTimer !== null || now - this.promotedMs > LATE_COMMIT_WINDOW_MS) return
    this.lateTimer = this.deps.clock.at(now + COMMIT_SETTLE_MS, () => {
      this.lateTimer = null
      if (!this.running) return
      if (this.engine.moreToCommit()) void this.queueCommit()
      else this.engine.newRecordsSeen()
    })
  }

  private queueCommit(): Promise<void> {
    this.commitQueue = this.commitQueue
      .then(() => this.commitWithFollowUps())
      .catch((err: Error) => this.backendFailed(`loading peer states: ${err.message}`))
    return this.commitQueue
  }

  /**
   * A commit, then again while the peer's records came in during the last one (the
   * old master's final changes arrive late on a lossy link), at most COMMIT_FOLLOW_UPS
   * times: those are newer than what the kernel was just given.
   */
  private async commitWithFollowUps(): Promise<void> {
    for (let i = 0; ; i++) {
      await this.commit()
      if (i === COMMIT_FOLLOW_UPS || !this.running || !this.engine.newDuringCommit) return
      // The kernel's events of what was just loaded come back first.
      await new Promise<void>((resolve) => this.deps.clock.at(this.deps.clock.now() + COMMIT_SETTLE_MS, resolve))
      if (!this.engine.moreToCommit()) return
    }
  }

  /** Resolves once no commit is queued or running (tests, and the simulator's check). */
  async commitsDone(): Promise<void> {
    let q: Promise<void> | null = null
    while (q !== this.commitQueue) {
      q = this.commitQueue
      await q
    }
  }

  /** No vhid of this board is MASTER any more: its kernel entries of synced flows go stale. */
  stoppedServing(): void {
    this.carryOut(this.engine.stoppedServing())
  }

  /** `carpd ctl resync`. */
  resync(): void {
    this.deps.log.event('sync', 'operator asked for a full resync')
    this.carryOut(this.engine.resync(this.deps.clock.now()))
  }

  status(): SyncRuntimeStatus {
    const now = this.deps.clock.now()
    const c = this.lastCommit
    return {
      ...this.engine.status(now),
      peerAddress: `${this.deps.peer.address}:${this.deps.peer.port}`,
      backend: { ...this.deps.backend.counters, snapshots: this.snapshots, snapshotFailures: this.snapshotFailures, unsyncable: this.unsyncable },
      sendErrors: this.sendErrors,
      lastCommit: c && { loaded: c.loaded, replaced: c.replaced, expired: c.expired, skipped: c.skipped, failed: c.failed, leftOut: c.leftOut, ms: c.ms, agoMs: Math.round(now - c.endMs) },
    }
  }

  /**
   * Flows of the boards themselves, multicast (CARP adverts) and IPv6 link-local ones
   * (never forwarded: neighbour discovery, adverts from fe80::) stay local.
   */
  private ignored(flow: Flow): boolean {
    const { src, dst } = flow.orig
    return this.ignore.has(src) || this.ignore.has(dst) || isMulticast(dst) || (flow.family === FAMILY_IPV6 && (isIpv6LinkLocal(src) || isIpv6LinkLocal(dst)))
  }

  private localChange(change: FlowChange): void {
    if (!this.running || this.ignored(change.flow)) return
    const now = this.deps.clock.now()
    if (change.op === 'delete') {
      const key = this.encode(encodeKeyRecord, change.flow)
      if (key !== null) this.carryOut(this.engine.localDelete(key, now))
    } else {
      this.upsert(change.flow)
    }
  }

  private upsert(flow: Flow, fromSnapshot = false): void {
    const record = this.encode(encodeFlowRecord, flow)
    if (record === null) return
    const now = this.deps.clock.now()
    this.carryOut(fromSnapshot ? this.engine.snapshotUpsert(record, now) : this.engine.localUpsert(record, now))
  }

  /**
   * A flow the wire cannot carry (the codec refuses what its decoder would refuse) is
   * counted and skipped: one odd entry must not stop the table from syncing.
   */
  private encode(codec: (flow: Flow) => Buffer, flow: Flow): string | null {
    try {
      return codec(flow).toString('latin1')
    } catch {
      this.unsyncable++
      return null
    }
  }

  /** Reads the whole table; one read at a time, and one more if asked meanwhile. */
  private snapshot(): Promise<void> {
    if (this.snapshotting) {
      this.snapshotAgain = true
      return this.snapshotting
    }
    this.snapshotting = (async () => {
      do {
        this.snapshotAgain = false
        this.engine.snapshotBegin()
        const started = this.deps.clock.now()
        try {
          await this.deps.backend.snapshot((flow) => this.ignored(flow) || this.upsert(flow, true))
          this.snapshots++
          this.carryOut(this.engine.snapshotEnd(this.deps.clock.now()))
          const ms = Math.round(this.deps.clock.now() - started)
          this.deps.log.event('sync', `state table read: ${this.engine.local.size} flows in ${ms} ms`)
          // MASTER before this read ended (a slow read at start): its commit did not
          // know these entries, older than the peer's records. (Simulator.)
          if (this.engine.staleWhileServing()) void this.queueCommit()
        } catch (err) {
          if (!this.running) break // stopped in the middle: not a failure
          this.snapshotFailures++
          this.backendFailed(`cannot read the state table: ${(err as Error).message}`)
          await new Promise<void>((resolve) => {
            this.retryTimer = this.deps.clock.at(this.deps.clock.now() + SNAPSHOT_RETRY_MS, resolve)
          })
          this.retryTimer = null
          this.snapshotAgain = this.running
        }
      } while (this.snapshotAgain && this.running)
      this.snapshotting = null
    })()
    return this.snapshotting
  }

  /**
   * Makes the kernel hold the newest state of every synced flow (conntrackd's commit,
   * which also replaces what the kernel holds): peer states it lacks are loaded first
   * (the fastest part, and most flows of a failover), then entries older than the
   * peer's are replaced, then leftovers of flows that ended meanwhile are removed.
   * The VIPs go up meanwhile: a packet of a flow not yet loaded is dropped as INVALID
   * (not reset) and TCP sends it again. A flow that could not be loaded, or a stale
   * entry that could not be removed, is tried again at the next commit, and a commit
   * that mostly failed demotes the board so that the peer, which has the states,
   * serves.
   */
  private async commit(): Promise<void> {
    const plan = this.engine.takeCommit(this.deps.clock.now())
    const left = this.leaveOut(plan)
    const total = plan.load.length + plan.replace.length + plan.expire.length
    if (total === 0) {
      if (left.count > 0) {
        this.lastCommit = { loaded: 0, replaced: 0, expired: 0, skipped: 0, failed: 0, leftOut: left.count, ms: 0, agoMs: 0, endMs: this.deps.clock.now() }
        // Once per takeover: the late commits after it would say the same again.
        if (!this.leftOutSaid) this.deps.log.event('sync', `MASTER: nothing to load of ${this.engine.peer.size} peer flows${left.text}`)
        this.leftOutSaid = true
      } else if (this.engine.peer.size > 0) this.deps.log.event('sync', `MASTER: the kernel holds the newest state of all ${this.engine.peer.size} peer flows already`)
      return
    }
    const started = this.deps.clock.now()
    const backend = this.deps.backend
    const loadResult = await backend.load(this.peerFlows(plan.load))
    let replaced = 0
    let replaceFailed = 0
    let skipped = loadResult.skipped
    // Replaces of entries an earlier commit's load put in, whose kernel events have
    // not come yet (SyncEngine.takeCommit): the table does not list them.
    const inFlight = new Set(plan.replace.filter((key) => !this.engine.local.has(key)))
    for (let i = 0; i < plan.replace.length; i += REPLACE_CHUNK_FLOWS) {
      let chunk = plan.replace.slice(i, i + REPLACE_CHUNK_FLOWS)
      for (const key of chunk) this.engine.expectRemoval(key)
      try {
        await backend.remove(this.peerFlows(chunk, false))
      } catch (err) {
        // Entries not removed stay (the insert below finds them "there already"): the
        // next commit replaces them again. One in flight is not inserted over: its
        // event must still be known for our own load, not taken for a kernel change
        // newer than the peer's record (the next commit replaces it then).
        this.deps.log.event('sync', `MASTER: removing stale states failed: ${(err as Error).message}`)
        this.engine.replaceAgain(chunk)
        chunk = chunk.filter((key) => !inFlight.has(key))
      }
      // One the kernel made again meanwhile (a packet of the flow, with loose pickup)
      // is there already: counted so, not as a failure.
      const r = await backend.load(this.peerFlows(chunk))
      replaced += r.loaded
      skipped += r.skipped
      replaceFailed += r.failed
    }
    const ended = { count: 0 }
    let expired = 0
    if (plan.expire.length > 0) {
      try {
        await backend.remove(this.endedFlows(plan.expire, ended))
        expired = ended.count
      } catch (err) {
        this.deps.log.event('sync', `MASTER: removing ended flows failed: ${(err as Error).message}`)
      }
    }
    // A peer state that could not be loaded is not in the kernel: the next commit
    // finds it missing and loads it again.
    const failed = loadResult.failed + replaceFailed
    const ms = Math.round(this.deps.clock.now() - started)
    this.lastCommit = { loaded: loadResult.loaded, replaced, expired, skipped, failed, leftOut: left.count, ms, agoMs: 0, endMs: this.deps.clock.now() }
    this.deps.log.event(
      'sync',
      `MASTER: kernel table made current in ${ms} ms: ${loadResult.loaded} peer states loaded, ${replaced} stale entries replaced by the peer's, ` +
        `${expired} entries of ended flows removed (${skipped} there already, ${failed} failed)${left.text}`,
    )
    // A few refusals are normal under traffic (a flow the kernel made meanwhile);
    // a load that mostly failed means this board cannot serve the connections.
    const attempted = plan.load.length + plan.replace.length
    if (failed > attempted - failed) this.backendFailed(`${failed} of ${attempted} peer states could not be loaded`)
  }

  /**
   * Takes the peer flows this board must not load out of the plan's loads and
   * replaces (deps.leaveOut): they stay the peer's, and every later commit asks again.
   */
  private leaveOut(plan: CommitPlan): { count: number; text: string } {
    const ask = this.deps.leaveOut?.()
    if (!ask) return { count: 0, text: '' }
    const why = new Map<string, number>()
    const keep = (key: string): boolean => {
      const record = this.engine.peer.get(key)
      const decoded = record === undefined ? null : decodeFlowRecord(Buffer.from(record, 'latin1'))
      const reason = decoded?.ok ? ask(decoded.flow) : null
      if (reason !== null) why.set(reason, (why.get(reason) ?? 0) + 1)
      return reason === null
    }
    plan.load = plan.load.filter(keep)
    // The engine counts a planned replace as done: one left out is planned again.
    const replace = plan.replace
    plan.replace = replace.filter(keep)
    if (plan.replace.length < replace.length) {
      const kept = new Set(plan.replace)
      this.engine.replaceAgain(replace.filter((key) => !kept.has(key)))
    }
    let count = 0
    for (const n of why.values()) count += n
    return { count, text: count === 0 ? '' : `; ${count} left out (${[...why].map(([reason, n]) => `${n}: ${reason}`).join(', ')})` }
  }

  /**
   * The peer's current records of these flows, lazily (one may be gone meanwhile);
   * to load them (`echo`: their kernel events are our own), or to remove the kernel's
   * entries of them (no echo is expected).
   */
  private *peerFlows(keys: string[], echo = true): Iterable<Flow> {
    for (const key of keys) {
      const record = this.engine.peer.get(key)
      if (record === undefined) continue
      if (echo) this.engine.expectEcho(key, record, this.deps.clock.now())
      yield* flowsOf([record])
    }
  }

  /** Leftover entries still as planned: one the kernel changed since is alive here, and stays. */
  private *endedFlows(expire: CommitPlan['expire'], ended: { count: number }): Iterable<Flow> {
    for (const [key, record] of expire) {
      if (this.engine.local.get(key) !== record || this.engine.peer.has(key)) continue
      ended.count++
      yield* flowsOf([record])
    }
  }

  private carryOut(actions: SyncAction[]): void {
    for (const action of actions) {
      switch (action.type) {
        case 'send':
          this.deps.transport.send(action.bytes, this.deps.peer).catch(() => {
            this.sendErrors++
          })
          break
        case 'log':
          this.deps.log.event('sync', action.message)
          break
        case 'demote':
          this.deps.demote('sync', action.value, action.why)
          break
        default: {
          const never: never = action
          throw new Error(`unknown sync action ${JSON.stringify(never)}`)
        }
      }
    }
    this.arm()
  }

  /** One timer for the engine, moved only when it must fire earlier. */
  private arm(): void {
    if (!this.running) return
    const at = this.engine.nextWakeMs()
    if (at >= this.timerAt) return
    this.timer?.cancel()
    this.timerAt = at
    this.timer = this.deps.clock.at(at, () => {
      this.timer = null
      this.timerAt = Infinity
      if (!this.running) return
      this.carryOut(this.engine.tick(this.deps.clock.now()))
    })
  }

  /** The table cannot be read or loaded: demote so that the peer, which can, serves. */
  private backendFailed(why: string): void {
    if (!this.running) return
    this.deps.log.event('sync', `backend failure: ${why}`)
    this.deps.demote('syncBackend', DEMOTE_SYNC_BACKEND, `sync backend failing: ${why}`)
    this.backendHold?.cancel()
    this.backendHold = this.deps.clock.at(this.deps.clock.now() + BACKEND_FAIL_HOLD_MS, () => {
      this.deps.demote('syncBackend', 0, `no sync backend failure for ${BACKEND_FAIL_HOLD_MS / 1000}s`)
    })
  }
}

/** Records back to flows, lazily: 100,000 Flow objects at once would cost memory. */
function* flowsOf(records: string[]): Iterable<Flow> {
  for (const record of records) {
    const decoded = decodeFlowRecord(Buffer.from(record, 'latin1'))
    if (decoded.ok) yield decoded.flow
  }
}

/** 224.0.0.0/4, or ff00::/8 (the backend gives IPv6 in RFC 5952 text: a full first group). */
function isMulticast(address: string): boolean {
  if (isIpv6(address)) return /^ff[0-9a-f]{2}:/.test(address)
  const first = Number(address.slice(0, address.indexOf('.')))
  return first >= 224 && first <= 239
}
