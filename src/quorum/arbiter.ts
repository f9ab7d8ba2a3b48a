// Arbitration: may this board be MASTER of a vhid? (SPEC "Split-brain protection")
//
// With a witness configured a board holds a vhid only with 2 of 3 votes: itself plus
// the peer deferring to it, or itself plus an unexpired witness lease. Both votes are
// leases, asked for by the candidate and counted from when it *sent* the request, so
// a delayed answer only shortens them. Each voter promises at most one candidate at a
// time (the witness by its own rule, the peer by the deferral rule below) and every
// candidate needs itself plus one more, so two masters would need one voter to
// promise both: crossed, delayed or replayed messages cannot give both boards two
// votes. A master that loses both the peer and the witness stops renewing and drops
// its VIPs when the last lease runs out.
//
// The peer's deferral: asked for a vote, a board grants it unless it is MASTER itself
// (it then yields first when the candidate can hear it on the LAN and so must have
// been told by CARP to replace it, or when the candidate is less demoted) or it is a
// candidate itself and ranks higher. A board never claims a vhid while a deferral it
// granted for that vhid is still in force. So when the LAN breaks, the backup that
// stops hearing adverts asks the master, which is alive on the sync link or the
// serial line, refuses, and keeps the VIP: a LAN fault, not a dead peer, and no flap.
//
// Without a witness ("two-node mode") there is no vote: plain CARP plus the extra
// paths. A backup that stops hearing the master on the LAN does not claim while the
// peer says on another path that it is MASTER of that vhid, and of two boards that
// both say MASTER, the one that ranks lower (more demoted, then the lower boot epoch)
// yields at once.
//
// Pure: the caller passes the time and carries out the returned actions.

import { type VhidView, betterThan } from '../carp/vhid.js'
import type { Heartbeat, VhidLetter } from '../wire/heartbeat.js'
import { ReplayWindow } from '../wire/replay.js'
import { idHex as hex } from '../wire/ids.js'
import { type VoteMessage, voteCounter } from '../wire/vote.js'
import { surelyOverMs } from './witness.js'
import {
  CLAIM_RETRY_MAX_MS,
  CLAIM_RETRY_MIN_MS,
  FLAG_HEARS_MASTER,
  HANDOVER_RETRY_QUIET_MS,
  YIELD_QUIET_LEASES,
  PENDING_LEASES,
  PENDING_MAX,
  RENEWALS_PER_LEASE,
  ANSWERED_MAX,
  BOOT_RACE_MS,
} from './constants.js'
import { type PathName, PeerPaths, type PathStatus } from './paths.js'

export interface ArbiterParams {
  node: string
  selfId: number // senderId(node)
  epoch: number // boot epoch: also the tie-break rank in CARP adverts
  leaseMs: number // asked of voters, and the longest deferral this board grants
  witness: boolean // a witness is configured: 2 of 3 votes
  pathTimeouts: Partial<Record<PathName, number>>
  random(bytes: number): Buffer
  /** When carpd started: the power-on race's window counts from it... */
  startMs: number
  /** ...if this start is part of a power-on (the kernel booted moments ago), not a restart. */
  powerOn: boolean
}

export type Voter = 'peer' | 'witness'

export const NOT_A_CANDIDATE = 'not a candidate'

export type ArbiterAction =
  | { type: 'toPeer'; msg: VoteMessage; path: PathName | 'all' }
  | { type: 'toWitness'; msg: VoteMessage }
  | { type: 'votes'; vhid: number; held: boolean; reason: string }
  | { type: 'garp'; vhid: number; reason: string }
  | { type: 'lease'; vhid: number; untilMs: number }
  | { type: 'log'; message: string }

export type ArbiterDrop = 'replay' | 'unmatched' | 'notForUs' | 'wrongVoter' | 'unexpectedKind' | 'ownHeartbeat' | 'heartbeatReplay'
export const ARBITER_DROPS: readonly ArbiterDrop[] = ['replay', 'unmatched', 'notForUs', 'wrongVoter', 'unexpectedKind', 'ownHeartbeat', 'heartbeatReplay']

export interface VoteStatus {
  vhid: number
  held: boolean
  why: string
  peerLeaseMs: number // left of the peer's deferral to us (0: none)
  witnessLeaseMs: number
  deferringToPeerMs: number // left of the deferral we granted (0: none)
  lastDeny: Partial<Record<Voter, string>>
  requests: number
  grants: Record<Voter, number>
  denials: Record<Voter, number>
}

export interface ArbiterStatus {
  mode: 'witness' | 'two-node'
  leaseMs: number
  paths: PathStatus[]
  peer: { node: string; heardMsAgo: number; demote: number; vhids: string } | null
  vhids: VoteStatus[]
  drops: Record<ArbiterDrop, number>
}

interface Pending {
  sentAtMs: number
  to: Voter
}

interface VhidVotes {
  vhid: number
  view: VhidView
  pending: Map<string, Pending> // by nonce (hex)
  answeredNonces: string[] // nonces of the last answers taken (their copies are expected)
  untilMs: Record<Voter, number> // end of each voter's lease to us, on our clock
  nextRequestMs: number
  /**
   * What we promised the peer: no claim before `untilMs`. `to` 0 is the restart
   * silence: promises made before this record existed (a restart, a reload) may run.
   */
  deferral: { to: number; grantedAtMs: number; untilMs: number } | null
  held: boolean
  why: string
  lastDeny: Partial<Record<Voter, string>>
  peerClaimedMs: number // last time the peer asked while we were MASTER (LAN fault)
  waitLogged: string // the kind of reason a waiting claim last logged
  peerAlsoMaster: boolean // two-node mode: we are MASTER and the peer said so too
  masterSinceMs: number // when this vhid last became MASTER here
  tookOverHeard: boolean // and it replaced a master whose adverts it heard (a preempt)
  bootMaster: boolean // and it did so soon after our start, the peer never seen MASTER since
  /**
   * The boot epoch of the peer whose power-on race we saw while BACKUP, held while the
   * claim it started stands. The boot master yields to our claim and its heartbeats
   * say B from then on, while an advert it sent just before may still come; that
   * advert must not end the claim (board lab: it did, the vhid was free, and the boot
   * master's master-down ran out first).
   */
  bootRaceEpoch: number | null
  handoverYieldMs: number // when a preempt's handover last ended in this board yielding
  yieldedUntilMs: number // we yielded to the peer's claim: no asking of our own before this
  peerAskedMs: number // when the peer last asked us for this vhid's vote
  splitSeen: boolean // the peer said MASTER too well after we took over: a split, not a handover
  requests: number
  grants: Record<Voter, number>
  denials: Record<Voter, number>
}

interface PeerHeartbeat {
  hb: Heartbeat
  atMs: number
}

export class Arbiter {
  private readonly vhids = new Map<number, VhidVotes>()
  private readonly paths: PeerPaths
  private readonly replay: ReplayWindow
  /**
   * Heartbeats, a window per path (a forger on the serial line, which has no key,
   * must not crowd the sync link's sender out of a shared one): each (epoch, seq)
   * once, no going back to an older boot while the sender talks, and a new epoch
   * taken after at most a heartbeat timeout of quiet (a restart after a long outage).
   */
  private readonly heartbeatReplay = new Map<PathName, ReplayWindow>()
  /** Epochs of heartbeats bearing our own name that are not ours: said once each. */
  private readonly sameNameEpochs = new Set<number>()
  private readonly drops = Object.fromEntries(ARBITER_DROPS.map((d) => [d, 0])) as Record<ArbiterDrop, number>
  private peer: PeerHeartbeat | null = null
  /**
   * The peer has been seen MASTER since we started (an advert, or a heartbeat saying
   * M): until then a vhid we take is a boot master (bootMaster()).
   */
  private peerSeenMaster = false
  private seq = 0
  /** The answers to the peer's last requests, for their copies on the other paths. */
  private readonly answered = new Map<string, { msg: VoteMessage; paths: Set<PathName> }>()

  constructor(private readonly params: ArbiterParams) {
    this.paths = new PeerPaths(params.pathTimeouts)
    // A restarted peer (new epoch) is heard once its old epoch has been quiet for a
    // lease: no promise to the old one can outlive that.
    this.replay = new ReplayWindow(params.leaseMs)
  }

  get mode(): 'witness' | 'two-node' {
    return this.params.witness ? 'witness' : 'two-node'
  }

  /** Called after every event of a vhid's CARP machine with what it now is. */
  view(vhid: number, view: VhidView, nowMs: number): ArbiterAction[] {
    let v = this.vhids.get(vhid)
    if (!v) {
      v = newVotes(vhid, view)
      // A deferral granted before this record existed (before a restart, or before a
      // reload re-added the vhid) is forgotten, but may still run: claim nothing
      // until it surely has, as the witness does after its own restart.
      if (this.params.witness) v.deferral = { to: 0, grantedAtMs: -Infinity, untilMs: nowMs + surelyOverMs(this.params.leaseMs) }
      this.vhids.set(vhid, v)
    }
    const wanted = wants(v.view)
    if (view.state === 'MASTER' && v.view.state !== 'MASTER') {
      v.masterSinceMs = nowMs
      v.tookOverHeard = v.view.claiming && v.view.hearsMaster
      v.bootMaster = !this.peerSeenMaster && this.inBootWindow(nowMs)
      v.splitSeen = false
    }
    v.view = view
    // The race is over once the claim it started is (won, given up, link down...).
    if (view.state !== 'BACKUP' || !view.claiming) v.bootRaceEpoch = null
    const actions: ArbiterAction[] = []
    // A new candidate asks at once; a board that stops wanting forgets unanswered asks.
    if (wants(view) && !wanted) v.nextRequestMs = nowMs
    if (!wants(view)) v.pending.clear()
    actions.push(...this.requestIfDue(v, nowMs), ...this.settle(v, nowMs))
    return actions
  }

  /** A vhid left the configuration. */
  forget(vhid: number): void {
    this.vhids.delete(vhid)
  }

  /** A valid CARP advert from the peer: the LAN path is alive. */
  advertHeard(nowMs: number): ArbiterAction[] {
    this.peerSeenMaster = true
    return this.logs(this.paths.heard('lan', nowMs))
  }

  /** A heartbeat from the peer on the sync link or the serial line. */
  heartbeat(hb: Heartbeat, path: PathName, nowMs: number): ArbiterAction[] {
    // Our own name is never the peer's: a heartbeat of ours looped back, or one of an
    // earlier boot of ours replayed (it would say we are MASTER too, and rank higher).
    if (hb.node === this.params.node) {
      if (hb.epoch === this.params.epoch || this.sameNameEpochs.has(hb.epoch) || this.sameNameEpochs.size >= 8) return this.drop('ownHeartbeat')
      // Not ours: a replay of an earlier boot of ours, or a peer configured with our
      // node name (then the sync and serial paths look dead): say it, once an epoch.
      this.sameNameEpochs.add(hb.epoch)
      return [...this.drop('ownHeartbeat'), { type: 'log', message: `heartbeat on ${path} bears this board's node name ${hb.node} with another boot epoch ${hex(hb.epoch)}: dropped (a replay, or is the peer configured with node = ${hb.node} too?)` }]
    }
    // What adverts have: each heartbeat counts once, per path (the same one comes on
    // the sync link and the serial line), and another epoch of the sender is taken
    // only once its current one has gone quiet (a restart), so a recording of an
    // earlier boot can neither speak for a live peer nor bring a dead one back
    // beyond one frame per recorded heartbeat (wire/replay.ts; README "Split-brain").
    const counter = (BigInt(hb.epoch) << 32n) | BigInt(hb.seq)
    let window = this.heartbeatReplay.get(path)
    if (window === undefined) {
      window = new ReplayWindow(this.pathTimeoutMs(path) || Infinity)
      this.heartbeatReplay.set(path, window)
    }
    if (window.check(hb.node, counter, nowMs) !== 'ok') return this.drop('heartbeatReplay')
    if (hb.vhids.some((x) => x.state === 'M')) this.peerSeenMaster = true
    // An ordinary master of a vhid (M, not P) is no boot master to replace.
    for (const x of hb.vhids) {
      const v = this.vhids.get(x.vhid)
      if (v && x.state === 'M' && x.boot !== true && v.bootRaceEpoch === hb.epoch) v.bootRaceEpoch = null
    }
    const actions = this.logs(this.paths.heard(path, nowMs))
    if (this.peer && this.peer.hb.node === hb.node && this.peer.hb.epoch === hb.epoch && hb.seq <= this.peer.hb.seq && nowMs - this.peer.atMs < this.pathTimeoutMs(path)) {
      // Older than what we have (it came on the slower path): keep the newer one.
      return actions
    }
    this.peer = { hb, atMs: nowMs }
    for (const v of this.vhids.values()) actions.push(...this.settle(v, nowMs))
    return actions
  }

  /** An authenticated vote message; `from` says which socket or line it came by. */
  receive(msg: VoteMessage, from: Voter, path: PathName | null, nowMs: number): ArbiterAction[] {
    switch (msg.kind) {
      case 'request':
        if (from !== 'peer') return this.drop('unexpectedKind')
        return this.onRequest(msg, path, nowMs)
      case 'grant':
      case 'deny':
        return this.onAnswer(msg, from, nowMs)
      case 'heartbeat':
        // Heartbeats are decoded by the caller (their text is a serial frame).
        return this.drop('unexpectedKind')
      default: {
        const never: never = msg
        throw new Error(`unknown vote kind ${JSON.stringify(never)}`)
      }
    }
  }

  /** Renewals, retries, expiries and path timeouts due by now. */
  tick(nowMs: number): ArbiterAction[] {
    const actions = this.logs(this.paths.tick(nowMs))
    for (const v of this.vhids.values()) actions.push(...this.requestIfDue(v, nowMs), ...this.settle(v, nowMs))
    return actions
  }

  /** When tick() next has something to do. */
  nextWakeMs(nowMs: number): number {
    let next = this.paths.nextWakeMs()
    for (const v of this.vhids.values()) {
      if (this.params.witness && wants(v.view)) {
        next = Math.min(next, this.yielding(v, nowMs) ? Math.min(v.yieldedUntilMs, v.peerAskedMs + this.lanHealQuietMs()) : Math.max(v.nextRequestMs, this.silenceHoldsAskUntil(v, nowMs)))
      }
      for (const until of [v.untilMs.peer, v.untilMs.witness, v.deferral?.untilMs ?? -Infinity]) {
        if (until > nowMs) next = Math.min(next, until)
      }
      const healMs = v.peerClaimedMs + this.lanHealQuietMs()
      if (healMs > nowMs) next = Math.min(next, healMs)
      const handoverEndMs = v.masterSinceMs + this.heartbeatTimeoutMs()
      if (v.tookOverHeard && handoverEndMs > nowMs) next = Math.min(next, handoverEndMs)
    }
    // Two-node mode decides on the peer's last heartbeat: look again when it goes stale.
    const staleMs = this.peer ? this.peer.atMs + this.heartbeatTimeoutMs() + 1 : -Infinity
    if (staleMs > nowMs) next = Math.min(next, staleMs)
    return next
  }

  /** When the last of this board's votes for a vhid runs out (-Infinity: none). */
  leaseEndMs(vhid: number): number {
    const v = this.vhids.get(vhid)
    return v ? Math.max(v.untilMs.peer, v.untilMs.witness) : -Infinity
  }

  /** The peer's state of a vhid as its last fresh heartbeat says, if any path is alive. */
  peerSays(vhid: number, nowMs: number): VhidLetter | null {
    if (!this.peer || !this.peerFresh(nowMs)) return null
    return this.peer.hb.vhids.find((x) => x.vhid === vhid)?.state ?? null
  }

  /**
   * Power-on: we took this vhid soon after our start, the peer never seen MASTER of
   * anything since (a power-on race: the first master-down to run out won it), and are
   * still within that window. Our heartbeats say so (`P`), and a higher-ranked
   * peer that has just started too replaces us once (constants.ts BOOT_RACE_MS).
   */
  bootMaster(vhid: number, nowMs: number): boolean {
    const v = this.vhids.get(vhid)
    return v !== undefined && v.bootMaster && v.view.state === 'MASTER' && this.inBootWindow(nowMs)
  }

  /**
   * The other side of bootMaster: the peer's fresh heartbeat says so, we started within
   * the window too, and the heartbeat is of the boot epoch whose advert we just took
   * (a recorded `P` alone does not do; a recording of both an advert and a heartbeat
   * of one earlier boot, played to a board that has just started, can still cause
   * that one handover). Seen while BACKUP, it holds for that epoch while the claim
   * it starts stands (bootRaceEpoch).
   */
  bootRace(vhid: number, epoch: number, nowMs: number): boolean {
    const v = this.vhids.get(vhid)
    if (!v || !this.inBootWindow(nowMs)) return false
    if (v.view.state === 'BACKUP' && this.peer !== null && this.peer.hb.epoch === epoch && this.peerFresh(nowMs) && this.peer.hb.vhids.some((x) => x.vhid === vhid && x.boot === true)) v.bootRaceEpoch = epoch
    return v.bootRaceEpoch === epoch
  }

  private inBootWindow(nowMs: number): boolean {
    return this.params.powerOn && nowMs - this.params.startMs < BOOT_RACE_MS
  }

  /** The peer's WAN health from its last fresh heartbeat (null: unknown or stale). */
  peerWans(nowMs: number): { wan: number; state: 'U' | 'G' | 'D' }[] | null {
    if (!this.peer || !this.peerFresh(nowMs)) return null
    return this.peer.hb.wans ?? null
  }

  alivePaths(nowMs: number): PathName[] {
    return this.paths.alivePaths(nowMs)
  }

  status(nowMs: number): ArbiterStatus {
    return {
      mode: this.mode,
      leaseMs: this.params.leaseMs,
      paths: this.paths.status(nowMs),
      peer: this.peer && {
        node: this.peer.hb.node,
        heardMsAgo: Math.round(nowMs - this.peer.atMs),
        demote: this.peer.hb.demote,
        vhids: this.peer.hb.vhids.map((x) => `${x.vhid}:${x.boot ? 'P' : x.state}`).join(',') || '-',
      },
      vhids: [...this.vhids.values()].map((v) => ({
        vhid: v.vhid,
        held: v.held,
        why: v.why,
        peerLeaseMs: Math.max(0, Math.round(v.untilMs.peer - nowMs)),
        witnessLeaseMs: Math.max(0, Math.round(v.untilMs.witness - nowMs)),
        deferringToPeerMs: v.deferral ? Math.max(0, Math.round(v.deferral.untilMs - nowMs)) : 0,
        lastDeny: { ...v.lastDeny },
        requests: v.requests,
        grants: { ...v.grants },
        denials: { ...v.denials },
      })),
      drops: { ...this.drops },
    }
  }

  // -------------------------------------------------------------------------------
  // Votes asked of us

  private onRequest(msg: Extract<VoteMessage, { kind: 'request' }>, path: PathName | null, nowMs: number): ArbiterAction[] {
    if (msg.sender === this.params.selfId && msg.epoch === this.params.epoch) return this.drop('notForUs')
    const key = `${msg.sender}:${msg.nonce.toString('hex')}`
    if (this.replay.check(`peer ${msg.sender}`, voteCounter(msg), nowMs) !== 'ok') {
      // The same request comes on every path; each copy gets the first copy's answer
      // on its own path, so one path broken one way loses nothing. Anything else is
      // a replay.
      const first = this.answered.get(key)
      if (!first || path === null || first.paths.has(path)) return this.drop('replay')
      first.paths.add(path)
      return [{ type: 'toPeer', msg: first.msg, path }]
    }
    const actions = this.decideRequest(msg, path, nowMs)
    const answer = actions.find((a) => a.type === 'toPeer')
    if (answer && path !== null) {
      this.answered.set(key, { msg: answer.msg, paths: new Set([path]) })
      if (this.answered.size > ANSWERED_MAX) this.answered.delete(this.answered.keys().next().value!)
    }
    return actions
  }

  private decideRequest(msg: Extract<VoteMessage, { kind: 'request' }>, path: PathName | null, nowMs: number): ArbiterAction[] {
    const v = this.vhids.get(msg.vhid)
    if (v) v.peerAskedMs = nowMs
    const leaseMs = Math.min(msg.leaseMs, this.params.leaseMs)
    const cand = { demote: msg.demote, advbase: msg.advbase, advskew: msg.advskew, rank: msg.epoch }
    const answer = (kind: 'grant' | 'deny', holder: number, ms: number): ArbiterAction => ({
      type: 'toPeer',
      path: path ?? 'all',
      msg: { kind, vhid: msg.vhid, nonce: msg.nonce, holder, leaseMs: Math.max(0, Math.round(ms)), ...this.header() },
    })
    // Our VIPs must be off the interface before we promise them to the peer: a grant
    // given on stepping down, while `ip addr del` was still running, once let both
    // boards hold the VIP for a second (found by the simulator, seed 18). Ask again soon.
    if (v?.view.releasing) return [answer('deny', this.params.selfId, CLAIM_RETRY_MIN_MS)]
    if (!v || v.view.state === 'INIT') return [answer('grant', msg.sender, leaseMs), ...(v ? this.promise(v, msg.sender, leaseMs, nowMs) : [])]
    const mine = { demote: v.view.demote, advbase: v.view.advbase, advskew: v.view.advskew, rank: this.params.epoch }
    if (v.view.state === 'MASTER') {
      const hears = (msg.flags & FLAG_HEARS_MASTER) !== 0
      if (hears || cand.demote < mine.demote) {
        // The candidate hears our adverts and CARP told it to replace us (preempt, a
        // demoted master), or it is simply healthier: step down now and say yes to
        // its next ask (denied with 0 ms: "ask again at once", which it does after
        // CLAIM_RETRY_MIN_MS), so our VIPs are gone before it adds them. That grant
        // also releases the candidate from a deferral it gave us.
        const why = hears ? `peer ${hex(msg.sender)} hears us and claims (preempt or demoted master)` : `peer ${hex(msg.sender)} is less demoted (${cand.demote} < ${mine.demote})`
        // Nor ask again while the peer takes over: hearing no master for a moment,
        // we would renew the witness's lease and keep the peer from holding it, and
        // yield again on its next advert, forever (simulator, seed 100494).
        v.yieldedUntilMs = nowMs + YIELD_QUIET_LEASES * surelyOverMs(this.params.leaseMs)
        return [...this.setHeld(v, false, `yielding: ${why}`), answer('deny', this.params.selfId, 0)]
      }
      // It cannot hear us on the LAN but we hear it on another path: a LAN fault. The
      // master keeps the VIP; remember it, to announce the VIPs again when it heals.
      if (v.peerClaimedMs === -Infinity) {
        v.peerClaimedMs = nowMs
        const deny = answer('deny', this.params.selfId, this.heldLeftMs(v, nowMs))
        return [deny, { type: 'log', message: `vhid=${v.vhid} peer ${hex(msg.sender)} no longer hears our adverts (LAN fault): keeping the VIPs` }]
      }
      v.peerClaimedMs = nowMs
      return [answer('deny', this.params.selfId, this.heldLeftMs(v, nowMs))]
    }
    if (v.view.claiming && betterThan(mine, cand) && (!this.deferring(v, nowMs) || this.peerSays(msg.vhid, nowMs) !== 'M')) {
      // Both want it; the higher-ranked one asks on. The witness may still pick the
      // other one, which is fine: each voter promises one candidate only. This holds
      // while we still defer to that candidate, unless it is MASTER: granting it again
      // would stretch our deferral with every ask, and a preferred board that makes
      // the peer yield (it hears the peer's advert) would never hold while the peer,
      // hearing no master, asks every master-down interval (simulator, seed 100494).
      // The deferral already given runs out as promised. A MASTER peer we defer to
      // keeps our vote: we claim because we hear no adverts, a LAN fault, and it
      // must keep the VIPs even with the witness away (review).
      return [answer('deny', this.params.selfId, CLAIM_RETRY_MIN_MS)]
    }
    return [answer('grant', msg.sender, leaseMs), ...this.promise(v, msg.sender, leaseMs, nowMs)]
  }

  /**
   * Records a deferral. The promise runs from when we send the grant, which is after
   * the candidate sent its request, so it always outlasts the candidate's count.
   */
  private promise(v: VhidVotes, to: number, leaseMs: number, nowMs: number): ArbiterAction[] {
    const fresh = !v.deferral || v.deferral.to !== to || v.deferral.untilMs <= nowMs
    // As the witness does, hold the promise until the candidate's lease has surely
    // run out on its clock too (drift, a late event loop, `ip addr del`).
    v.deferral = { to, grantedAtMs: nowMs, untilMs: Math.max(v.deferral?.untilMs ?? 0, nowMs + surelyOverMs(leaseMs)) }
    const actions: ArbiterAction[] = fresh ? [{ type: 'log', message: `vhid=${v.vhid} deferring to peer ${hex(to)} for ${leaseMs} ms` }] : []
    return [...actions, ...this.settle(v, nowMs)]
  }

  // -------------------------------------------------------------------------------
  // Votes we ask for

  private onAnswer(msg: Extract<VoteMessage, { kind: 'grant' | 'deny' }>, from: Voter, nowMs: number): ArbiterAction[] {
    const v = this.vhids.get(msg.vhid)
    const key = msg.nonce.toString('hex')
    const p = v?.pending.get(key)
    // The peer answers each copy of a request (one per path): the later copies are
    // expected, not dropped.
    if (v && !p && v.answeredNonces.includes(key)) return []
    if (!v || !p) return this.drop('unmatched')
    if (p.to !== from) return this.drop('wrongVoter')
    v.pending.delete(key)
    v.answeredNonces.push(key)
    if (v.answeredNonces.length > PENDING_MAX) v.answeredNonces.shift()
    if (msg.kind === 'grant') {
      if (msg.holder !== this.params.selfId) return this.drop('notForUs')
      v.grants[from]++
      delete v.lastDeny[from]
      const actions: ArbiterAction[] = []
      if (from === 'peer' && v.deferral?.to === msg.sender && this.deferring(v, nowMs) && p.sentAtMs > v.deferral.grantedAtMs) {
        // The board we promised has stepped down and now promises us: our promise
        // protected its mastership, which it gave up, so it is released. Only if we
        // asked after our last promise to it: of two grants that cross, at most one
        // side can release (each grant answers a request sent before the other's
        // grant), so both cannot end up holding the other's vote.
        v.deferral = null
        actions.push({ type: 'log', message: `vhid=${v.vhid} peer ${hex(msg.sender)} stepped down and released our deferral` })
      }
      // Counted from when we sent the request: delay only shortens the lease.
      v.untilMs[from] = Math.max(v.untilMs[from], p.sentAtMs + Math.min(msg.leaseMs, this.params.leaseMs))
      actions.push({ type: 'lease', vhid: v.vhid, untilMs: this.leaseEndMs(v.vhid) })
      return [...actions, ...this.settle(v, nowMs)]
    }
    v.denials[from]++
    v.lastDeny[from] = msg.holder === 0 ? `${from} grants nothing for ${msg.leaseMs} ms (restarted)` : `${from} promised ${msg.holder === this.params.selfId ? 'us, in another role' : hex(msg.holder)} for ${msg.leaseMs} ms`
    if (msg.holder === this.params.selfId && from === 'peer') v.lastDeny[from] = `peer keeps the vhid for ${msg.leaseMs} ms`
    // A deny says when asking again makes sense: then, within bounds.
    if (wants(v.view) && !v.held) {
      v.nextRequestMs = Math.min(v.nextRequestMs, nowMs + clamp(msg.leaseMs, CLAIM_RETRY_MIN_MS, CLAIM_RETRY_MAX_MS))
    }
    return this.settle(v, nowMs)
  }

  /**
   * Asking a master we hear makes it yield at once; during our restart silence we could
   * not hold the vhid, and it would be nobody's until the silence ends (review). So such
   * a claim asks from the end of the silence (-Infinity: no hold).
   */
  private silenceHoldsAskUntil(v: VhidVotes, nowMs: number): number {
    return v.view.hearsMaster && v.deferral?.to === 0 && this.deferring(v, nowMs) ? v.deferral.untilMs : -Infinity
  }

  private requestIfDue(v: VhidVotes, nowMs: number): ArbiterAction[] {
    if (!this.params.witness || !wants(v.view) || nowMs < v.nextRequestMs || this.yielding(v, nowMs)) return []
    if (nowMs < this.silenceHoldsAskUntil(v, nowMs)) return []
    for (const [key, p] of v.pending) if (nowMs - p.sentAtMs > PENDING_LEASES * this.params.leaseMs) v.pending.delete(key)
    v.requests++
    const flags = v.view.hearsMaster ? FLAG_HEARS_MASTER : 0
    const actions: ArbiterAction[] = []
    for (const to of ['peer', 'witness'] as const) {
      const nonce = this.params.random(8)
      if (v.pending.size >= PENDING_MAX) v.pending.delete(v.pending.keys().next().value!)
      v.pending.set(nonce.toString('hex'), { sentAtMs: nowMs, to })
      const msg: VoteMessage = {
        kind: 'request',
        vhid: v.vhid,
        nonce,
        leaseMs: this.params.leaseMs,
        demote: v.view.demote,
        advbase: v.view.advbase,
        advskew: v.view.advskew,
        flags,
        ...this.header(),
      }
      actions.push(to === 'peer' ? { type: 'toPeer', msg, path: 'all' } : { type: 'toWitness', msg })
    }
    const renewMs = this.params.leaseMs / RENEWALS_PER_LEASE
    v.nextRequestMs = nowMs + (v.held ? renewMs : Math.min(renewMs, CLAIM_RETRY_MAX_MS))
    return actions
  }

  // -------------------------------------------------------------------------------
  // The decision

  /** Recomputes whether this board may hold the vhid; acts only on a change. */
  private settle(v: VhidVotes, nowMs: number): ArbiterAction[] {
    const actions: ArbiterAction[] = []
    if (v.peerClaimedMs > -Infinity && (v.view.state !== 'MASTER' || nowMs - v.peerClaimedMs >= this.lanHealQuietMs())) {
      // The peer stopped claiming while we kept the vhid: it hears our adverts again.
      if (v.view.state === 'MASTER') actions.push({ type: 'garp', vhid: v.vhid, reason: 'LAN fault healed: the peer hears our adverts again' })
      v.peerClaimedMs = -Infinity
    }
    const [held, why] = this.decide(v, nowMs)
    if (!wants(v.view)) v.waitLogged = ''
    if (!this.params.witness && v.view.state === 'MASTER' && held) {
      // Two-node mode: the peer, also MASTER a moment ago, no longer says so.
      // Neighbours may have followed it: announce the VIPs again. Right after a
      // takeover (a preempt, a failover) the old master says MASTER until it hears
      // our first advert: that is a handover, and is called one; a split is the
      // peer still MASTER once a handover would long be over.
      const says = this.peerSays(v.vhid, nowMs)
      const peerMaster = says === 'M'
      if (peerMaster && nowMs - v.masterSinceMs >= this.lanHealQuietMs()) v.splitSeen = true
      if (v.peerAlsoMaster && !peerMaster) {
        const reason =
          says === null
            ? 'the peer, MASTER too a moment ago, fell silent on every other path'
            : v.splitSeen
              ? 'split healed: the peer is no longer MASTER'
              : `handover done: the peer stepped down ${Math.round(nowMs - v.masterSinceMs)} ms after this board took over`
        actions.push({ type: 'garp', vhid: v.vhid, reason })
        v.splitSeen = false
      }
      v.peerAlsoMaster = peerMaster
    } else {
      v.peerAlsoMaster = false
    }
    if (held === v.held) {
      v.why = why
      // A claim that waits says why on the console, once per kind of reason (the
      // times in it change with every tick).
      const kind = why.replace(/\d+ ms/g, 'N ms')
      if (!held && wants(v.view) && kind !== v.waitLogged) {
        v.waitLogged = kind
        actions.push({ type: 'log', message: `vhid=${v.vhid} claim waits: ${why}` })
      }
      return actions
    }
    v.waitLogged = ''
    if (!held && v.view.state === 'MASTER' && v.tookOverHeard) v.handoverYieldMs = nowMs
    return [...actions, ...this.setHeld(v, held, why)]
  }

  private setHeld(v: VhidVotes, held: boolean, why: string): ArbiterAction[] {
    v.why = why
    if (held === v.held) return []
    v.held = held
    return [{ type: 'votes', vhid: v.vhid, held, reason: why }]
  }

  private decide(v: VhidVotes, nowMs: number): [boolean, string] {
    if (!wants(v.view)) return [false, NOT_A_CANDIDATE]
    if (this.params.witness) {
      if (this.yielding(v, nowMs)) {
        return [false, `yielded to the peer's claim: it takes over (asking again in ${Math.round(v.yieldedUntilMs - nowMs)} ms)`]
      }
      if (this.deferring(v, nowMs)) {
        const left = Math.round(v.deferral!.untilMs - nowMs)
        if (v.deferral!.to === 0) return [false, `restart silence: a deferral granted before this start may still run (${left} ms)`]
        return [false, `deferring to peer ${hex(v.deferral!.to)} for ${left} ms`]
      }
      const votes = (['peer', 'witness'] as const).filter((w) => v.untilMs[w] > nowMs)
      if (votes.length > 0) return [true, `votes: self+${votes.join('+')}`]
      const denies = (['peer', 'witness'] as const).map((w) => `${w}: ${v.lastDeny[w] ?? 'no answer'}`)
      return [false, `1 vote of 2 needed (${denies.join('; ')})`]
    }
    const says = this.peerSays(v.vhid, nowMs)
    if (says !== 'M') return [true, 'two-node mode: peer is not MASTER on any other path']
    const paths = this.paths.alivePaths(nowMs).filter((p) => p !== 'lan')
    if (v.view.state === 'MASTER' && this.inHandover(v, nowMs)) {
      // We just replaced the master we heard (a preempt): the old master steps down
      // on our first advert, and its next heartbeat says so. The LAN path may not
      // count as alive yet (a link just back hears a few adverts first), but it
      // carried that advert: yielding now would only flap the vhid.
      return [true, `peer ${this.peer!.hb.node} says MASTER still; it steps down on our adverts (handover)`]
    }
    if (v.view.state === 'MASTER' && this.paths.isAlive('lan', nowMs)) {
      // We hear its adverts: CARP settles two masters on the LAN with the full
      // priority (and the peer's heartbeat may just be older than its step-down).
      return [true, `peer ${this.peer!.hb.node} says MASTER too; CARP settles it on the LAN`]
    }
    if (v.view.state === 'MASTER') {
      // Both say MASTER (a split healing): the lower-ranked one yields at once.
      const peer = { demote: this.peer!.hb.demote, advbase: 0, advskew: 0, rank: this.peer!.hb.epoch }
      const self = { demote: v.view.demote, advbase: 0, advskew: 0, rank: this.params.epoch }
      if (betterThan(peer, self)) return [false, `peer ${this.peer!.hb.node} is MASTER too (on ${paths.join(',')}) and ranks higher`]
      return [true, `peer ${this.peer!.hb.node} is MASTER too but ranks lower`]
    }
    if (v.view.hearsMaster) return [true, 'CARP replaces the master it hears']
    return [false, `LAN fault: no advert, but peer ${this.peer!.hb.node} is MASTER and alive on ${paths.join(',')}`]
  }

  /**
   * A preempt's handover: at most one heartbeat timeout (the old master's next
   * heartbeat says BACKUP well within it), and not again soon after one that ended
   * with the old master still MASTER (a one-way LAN: it never hears us, and each
   * hold would be a heartbeat timeout of two masters).
   */
  private inHandover(v: VhidVotes, nowMs: number): boolean {
    return v.tookOverHeard && nowMs - v.masterSinceMs < this.heartbeatTimeoutMs() && nowMs - v.handoverYieldMs >= HANDOVER_RETRY_QUIET_MS
  }

  /**
   * We yielded to the peer's claim a moment ago and it still claims: let it take
   * over. Over for good once the peer falls silent or stops asking (a claiming peer
   * asks at least every CLAIM_RETRY_MAX_MS): a peer that crashed or lost its link
   * must not keep us from the vhid, nor its next boot take back what we then held.
   */
  private yielding(v: VhidVotes, nowMs: number): boolean {
    if (nowMs >= v.yieldedUntilMs) return false
    if (!this.peerFresh(nowMs) || nowMs - v.peerAskedMs >= this.lanHealQuietMs()) {
      v.yieldedUntilMs = -Infinity
      return false
    }
    return true
  }

  private deferring(v: VhidVotes, nowMs: number): boolean {
    return v.deferral !== null && v.deferral.untilMs > nowMs
  }

  private heldLeftMs(v: VhidVotes, nowMs: number): number {
    return Math.max(0, v.untilMs.peer - nowMs, v.untilMs.witness - nowMs)
  }

  private peerFresh(nowMs: number): boolean {
    return this.peer !== null && nowMs - this.peer.atMs <= this.heartbeatTimeoutMs() && this.paths.alivePaths(nowMs).some((p) => p !== 'lan')
  }

  private heartbeatTimeoutMs(): number {
    return Math.max(this.params.pathTimeouts.sync ?? 0, this.params.pathTimeouts.serial ?? 0)
  }

  private pathTimeoutMs(path: PathName): number {
    return this.params.pathTimeouts[path] ?? 0
  }

  /** The peer asks every CLAIM_RETRY_MAX_MS while it claims; this much quiet means it stopped. */
  private lanHealQuietMs(): number {
    return 4 * CLAIM_RETRY_MAX_MS
  }

  private header(): { sender: number; epoch: number; seq: number } {
    this.seq = (this.seq + 1) >>> 0
    return { sender: this.params.selfId, epoch: this.params.epoch, seq: this.seq }
  }

  private logs(lines: string[]): ArbiterAction[] {
    return lines.map((message) => ({ type: 'log', message }))
  }

  private drop(reason: ArbiterDrop): ArbiterAction[] {
    this.drops[reason]++
    return []
  }
}

function newVotes(vhid: number, view: VhidView): VhidVotes {
  return {
    vhid,
    view,
    pending: new Map(),
    answeredNonces: [],
    untilMs: { peer: -Infinity, witness: -Infinity },
    nextRequestMs: -Infinity,
    deferral: null,
    held: false,
    why: NOT_A_CANDIDATE,
    lastDeny: {},
    peerClaimedMs: -Infinity,
    waitLogged: '',
    peerAlsoMaster: false,
    masterSinceMs: -Infinity,
    tookOverHeard: false,
    bootMaster: false,
    bootRaceEpoch: null,
    handoverYieldMs: -Infinity,
    yieldedUntilMs: -Infinity,
    peerAskedMs: -Infinity,
    splitSeen: false,
    requests: 0,
    grants: { peer: 0, witness: 0 },
    denials: { peer: 0, witness: 0 },
  }
}

function wants(view: VhidView): boolean {
  return view.state === 'MASTER' || view.claiming
}

function clamp(x: number, lo: number, hi: number): number {
  return Math.min(hi, Math.max(lo, x))
}
