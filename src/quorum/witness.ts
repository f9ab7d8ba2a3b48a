// The witness's core (SPEC "Split-brain protection"): it grants leases on vhids to the
// boards of a pair, one holder at a time per vhid, and never grants a vhid to a second
// board before the first one's lease has surely run out. With the witness as the third
// voter, a board needs its own vote plus the peer's deferral or a witness lease to be
// MASTER; since this voter promises at most one board at a time, two masters would
// need the peer to defer to both, which it does not.
//
// Pure: decoded messages and the witness's monotonic time (ms) in, a reply and an
// optional console line out. quorum/witness-server.ts does the socket, the epoch file and signals.

import { ReplayWindow } from '../wire/replay.js'
import { idHex as hex } from '../wire/ids.js'
import { type VoteDecodeError, type VoteMessage, voteCounter } from '../wire/vote.js'

/**
 * How much slower a board's clock may run than the witness's, as a fraction of a lease
 * (a slow clock makes the board hold its lease longer in real time). Quartz crystals
 * are off by ~100 ppm (0.0001) at worst over temperature; 1 % is a hundred times that,
 * which also covers a clock slewed by NTP (at most 500 ppm), and costs only 30 ms on a
 * 3 s lease.
 */
export const WITNESS_DRIFT_RATIO = 0.01
/**
 * Added to every lease before another board may get its vhid: covers the time between
 * the witness timestamping a grant and the board acting on it (scheduling delay,
 * garbage collection pauses, a busy 500 MHz board), which the drift ratio does not.
 */
export const WITNESS_MARGIN_MS = 250
/** The witness's UDP port when witness.listen names none (SPEC's example, 8241). */
export const WITNESS_PORT_DEFAULT = 8241

const U32_MAX = 0xffffffff
const NO_HOLDER = 0 // on the wire: "promised to nobody"

/**
 * Why a message got no reply; each one is a named counter in the status. Decode
 * errors are counted here too (the socket reports them with drop()), and sendError
 * counts replies the OS refused.
 */
export type WitnessDropReason = VoteDecodeError | 'unexpectedKind' | 'replay' | 'epochSwitch' | 'seqExhausted' | 'sendError'

const DROP_REASONS: readonly WitnessDropReason[] = [
  'shortPacket',
  'oversized',
  'badVersion',
  'badKind',
  'badLength',
  'badVhid',
  'badAuth',
  'badText',
  'unexpectedKind',
  'replay',
  'epochSwitch',
  'seqExhausted',
  'sendError',
]

export interface WitnessOptions {
  epoch: number // u32, this run's epoch (persisted, one more than the last run's)
  maxLeaseMs: number // the longest lease granted; longer requests are cut to it
  startMs: number // monotonic ms at which this run started (begins the restart silence)
  senderId: number // u32, senderId(node) of the witness
}

/** Per vhid: whom the witness has promised, and since when. */
interface VhidLease {
  holder: number | null // sender id; null: never granted in this run
  grantedAtMs: number // when the last grant or renewal to holder was sent
  leaseMs: number // what that grant gave
  /**
   * From this time on the holder's lease has surely expired, even on a fast board
   * clock. A renewal may only push it later: a shorter renewal whose reply is lost
   * must not cut a longer lease the holder is still counting on.
   */
  freeAtMs: number
  grants: number // leases given to a board that did not hold a running one
  renewals: number // leases extended for the current holder
  denials: number
}

export interface WitnessVhidStatus {
  vhid: number
  holder: string | null // 8 hex digits, null: never granted in this run
  remainingMs: number // of the lease as granted, on the witness's clock (0 when over)
  freeInMs: number // until another board may be granted the vhid (0: now)
  grants: number
  renewals: number
  denials: number
}

export interface WitnessStatus {
  epoch: number
  senderId: string // 8 hex digits
  maxLeaseMs: number
  silentForMs: number // restart silence left; 0 when the witness grants
  vhids: WitnessVhidStatus[] // sorted by vhid
  drops: Record<WitnessDropReason, number>
  seq: number // replies sent in this epoch
}

export interface WitnessResult {
  reply: VoteMessage | null // a grant or a deny for the request; null: dropped
  log: string | null // a console line when the holder of a vhid changed
}

export class WitnessCore {
  private readonly epoch: number
  private readonly maxLeaseMs: number
  private readonly senderId: number
  private readonly silentUntilMs: number
  private readonly leases = new Map<number, VhidLease>()
  private readonly replay: ReplayWindow
  private readonly drops = Object.fromEntries(DROP_REASONS.map((r) => [r, 0])) as Record<WitnessDropReason, number>
  private seq = 0

  constructor(opts: WitnessOptions) {
    this.epoch = opts.epoch
    this.maxLeaseMs = opts.maxLeaseMs
    this.senderId = opts.senderId
    // Requests come in bursts (only while a board claims or holds a vhid): a board
    // that restarted after a long quiet must not wait 1.5 of that quiet to be heard.
    this.replay = new ReplayWindow(surelyOverMs(opts.maxLeaseMs))
    // A restarted witness cannot know what it granted before: any lease it gave may
    // still run for up to the longest lease it grants (plus drift and margin). Until
    // then it promises nobody, so it never grants a vhid twice. (Lowering
    // witness.lease across a restart shortens this below older grants: raise first.)
    this.silentUntilMs = opts.startMs + surelyOverMs(opts.maxLeaseMs)
  }

  /** Counts a datagram dropped before it reached receive() (decode errors, send errors). */
  drop(reason: WitnessDropReason): void {
    this.drops[reason]++
  }

  /** One authenticated message at the witness's time `nowMs`. */
  receive(msg: VoteMessage, nowMs: number): WitnessResult {
    // Only boards ask; a grant, deny or heartbeat sent here is misdirected or reflected.
    if (msg.kind !== 'request') return this.dropped('unexpectedKind')
    // After authentication, so forged datagrams cannot move the window. A replayed
    // request gets no answer: answering would show a recorded nonce a fresh reply.
    const verdict = this.replay.check(hex(msg.sender), voteCounter(msg), nowMs)
    if (verdict !== 'ok') return this.dropped(verdict)
    // Replies carry increasing sequence numbers; wrapping would make them look like
    // replays to the boards, so an exhausted epoch stops answering (restart renews it).
    if (this.seq >= U32_MAX) return this.dropped('seqExhausted')

    const lease = this.leaseOf(msg.vhid)
    if (nowMs < this.silentUntilMs) {
      lease.denials++
      return { reply: this.answer(msg, 'deny', NO_HOLDER, Math.ceil(this.silentUntilMs - nowMs)), log: null }
    }
    // The current holder is preferred: it renews whenever it asks, whatever its epoch
    // (a board that restarted is still the same board). Anyone else waits until the
    // holder's lease has surely expired.
    const isHolder = lease.holder === msg.sender
    if (!isHolder && lease.holder !== null && nowMs < lease.freeAtMs) {
      lease.denials++
      return { reply: this.answer(msg, 'deny', lease.holder, Math.ceil(lease.freeAtMs - nowMs)), log: null }
    }
    const leaseMs = Math.min(msg.leaseMs, this.maxLeaseMs)
    const running = isHolder && nowMs < lease.freeAtMs
    const before = lease.holder
    let log: string | null = null
    if (!isHolder) {
      const why = before === null ? 'no holder yet' : `${hex(before)} silent ${Math.round(nowMs - lease.grantedAtMs)}ms, its ${lease.leaseMs}ms lease surely over`
      log = `vhid=${msg.vhid} lease ${before === null ? 'none' : hex(before)} -> ${hex(msg.sender)} granted ${leaseMs}ms reason="${why}"`
    }
    if (running) lease.renewals++
    else lease.grants++
    lease.holder = msg.sender
    lease.grantedAtMs = nowMs
    lease.leaseMs = leaseMs
    lease.freeAtMs = Math.max(running ? lease.freeAtMs : 0, nowMs + surelyOverMs(leaseMs))
    return { reply: this.answer(msg, 'grant', msg.sender, leaseMs), log }
  }

  status(nowMs: number): WitnessStatus {
    const vhids = [...this.leases.entries()]
      .sort(([a], [b]) => a - b)
      .map(([vhid, l]) => ({
        vhid,
        holder: l.holder === null ? null : hex(l.holder),
        remainingMs: l.holder === null ? 0 : Math.max(0, Math.ceil(l.grantedAtMs + l.leaseMs - nowMs)),
        freeInMs: Math.max(0, Math.ceil(l.freeAtMs - nowMs)),
        grants: l.grants,
        renewals: l.renewals,
        denials: l.denials,
      }))
    return {
      epoch: this.epoch,
      senderId: hex(this.senderId),
      maxLeaseMs: this.maxLeaseMs,
      silentForMs: Math.max(0, Math.ceil(this.silentUntilMs - nowMs)),
      vhids,
      drops: { ...this.drops },
      seq: this.seq,
    }
  }

  /** When the restart silence ends (monotonic ms), for a "now granting" console line. */
  get silentUntil(): number {
    return this.silentUntilMs
  }

  private leaseOf(vhid: number): VhidLease {
    let lease = this.leases.get(vhid)
    if (!lease) {
      // At most 255 entries: the decoder admits vhids 1..255 only.
      lease = { holder: null, grantedAtMs: 0, leaseMs: 0, freeAtMs: 0, grants: 0, renewals: 0, denials: 0 }
      this.leases.set(vhid, lease)
    }
    return lease
  }

  private answer(req: VoteMessage & { kind: 'request' }, kind: 'grant' | 'deny', holder: number, leaseMs: number): VoteMessage {
    this.seq++
    return {
      kind,
      sender: this.senderId,
      epoch: this.epoch,
      seq: this.seq,
      vhid: req.vhid,
      nonce: req.nonce,
      holder,
      leaseMs: Math.min(leaseMs, U32_MAX),
    }
  }

  private dropped(reason: WitnessDropReason): WitnessResult {
    this.drops[reason]++
    return { reply: null, log: null }
  }
}

/**
 * How long after a grant of `leaseMs` the lease has surely expired on the board too:
 * the board times it from before the witness's grant, on a clock that may run up to
 * WITNESS_DRIFT_RATIO slower, and may act on it up to WITNESS_MARGIN_MS late.
 */
export function surelyOverMs(leaseMs: number): number {
  return Math.ceil(leaseMs * (1 + WITNESS_DRIFT_RATIO)) + WITNESS_MARGIN_MS
}

/** Console lines for `status` (SIGUSR1): one header, one per vhid, one of drops. */
export function renderWitnessStatus(s: WitnessStatus): string[] {
  const lines = [
    `witness ${s.senderId} epoch=${s.epoch} max lease ${s.maxLeaseMs}ms ` +
      (s.silentForMs > 0 ? `restart silence: granting nothing for ${s.silentForMs}ms` : 'granting'),
  ]
  for (const v of s.vhids) {
    const holder = v.holder === null ? 'holder none' : `holder ${v.holder} lease ${v.remainingMs}ms left, free in ${v.freeInMs}ms`
    lines.push(`vhid ${v.vhid} ${holder} grants=${v.grants} renewals=${v.renewals} denials=${v.denials}`)
  }
  const drops = Object.entries(s.drops).filter(([, n]) => n > 0)
  lines.push(`drops ${drops.length === 0 ? 'none' : drops.map(([r, n]) => `${r}=${n}`).join(' ')}`)
  return lines
}

/** A board's sender id as printed: 8 hex digits. */