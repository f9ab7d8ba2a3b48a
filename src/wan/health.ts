// Health of one WAN with hysteresis (SPEC "Multi-WAN", STYLE habit 7): probe rounds
// in, a state out, and a reason an operator can read on the console.
//
//   online / degraded -- downRounds failed in a row ------------------> offline (dead)
//   online   -- loss >= lossDown or latency >= latencyDownMs, over the window --> degraded
//   degraded -- loss <= lossUp and latency <= latencyUpMs, over the window -----> online
//   offline  -- upRounds good in a row, alive for failbackHoldMs
//               (not the first time) ------------------------> online / degraded
//
// Two questions, two time scales. "Is it dead?" must be answered in seconds, and only
// failed rounds in a row answer it: a dead uplink fails every round. "Is it lossy or
// slow?" needs many rounds to answer at all: with 10 rounds, a line that loses 10 %
// shows 0-30 % (two failures of ten already read as 20 %), so thresholds 10 points
// apart cannot tell 10 % from 20 % and the WAN flaps. Over the default window of 240
// rounds (60 s, dpinger's) the same line reads 10 % +- 1.9 (one standard deviation),
// and it is judged only once half the window is in. A lossy or slow WAN is degraded:
// it keeps carrying traffic, at half its weight (policy.ts), and its connections stay;
// only death takes it offline, and only death drains it (runtime.ts).
//
// The rounds of a dead stretch are not loss of a working line: the run of failures
// that killed a WAN and the rounds while it is offline stay out of the window, and it
// comes back as it was before (degraded or online) unless its window says otherwise.
// The failback hold counts from the first good round since the last death; a lost
// round of a lossy line does not start it again.
//
// Pure: the caller passes each finished round and the monotonic time.

import type { WanProbeConfig } from '../config/types.js'
import type { RoundResult } from './probe.js'
import type { WanState } from './types.js'

/**
 * Good rounds the window must hold before its mean latency is judged: one slow answer
 * (a resolver's cache miss, a retransmit) is not yet a slow link. Capped at the window
 * so a window of 1 or 2 still judges latency.
 */
export const LATENCY_MIN_GOOD_ROUNDS = 3
/**
 * Loss and latency are judged once the window holds this share of its rounds: at 1 %
 * loss, 20 rounds read 5 % one time in six, 120 rounds one time in 600.
 */
export const JUDGE_MIN_WINDOW_SHARE = 0.5
/**
 * The failback hold starts again when more than this share of the rounds since it
 * began failed (and more than 2): a line losing a third of its rounds or more is not
 * let back only to die again and be drained (review: at 40 % loss a WAN died and came
 * back 20-25 times an hour), while one losing 10 % passes.
 */
export const HOLD_MAX_LOSS = 0.25
/** The reason a WAN gives before it has ever been judged. */
export const REASON_STARTING = 'starting: waiting for its first healthy probe rounds'

const MS_PER_S = 1000

/** What one round did to the WAN. `reason` says why it is in `state` (the last change's cause). */
export interface HealthVerdict {
  state: WanState
  changed: boolean
  reason: string
}

export interface WanHealthStatus {
  state: WanState
  sinceMs: number | null // monotonic ms of the last change; null: never changed since start
  reason: string // why it is in this state
  waiting: string | null // offline only: what it still waits for before it comes back
  loss: number | null // fraction 0..1 over the window; null before the first round
  latencyMs: number | null // mean of the good rounds in the window; null until enough are there
  rounds: number // rounds in the window
  goodInRow: number
  failedInRow: number
  everUp: boolean // false until the first time up (the boot case: no failback hold)
}

interface Sample {
  good: boolean
  latencyMs: number | null
}

interface Measure {
  rounds: number
  loss: number
  latencyMs: number | null // null: fewer good rounds than the minimum to judge
  judged: boolean // enough rounds in the window to judge loss and latency
}

const pct = (fraction: number): string => `${+(fraction * 100).toFixed(1)}%`
const ms = (value: number): string => `${+value.toFixed(1)} ms`
const seconds = (valueMs: number): string => `${(valueMs / MS_PER_S).toFixed(1)}s`
const plural = (n: number, word: string): string => `${n} ${word}${n === 1 ? '' : 's'}`

export class WanHealth {
  private cfg: WanProbeConfig
  private readonly samples: Sample[] = []
  private state: WanState = 'offline'
  private sinceMs: number | null = null
  private reason = REASON_STARTING
  private waiting: string | null = null
  private goodInRow = 0
  private failedInRow = 0
  /**
   * startedMs of the first good round since the WAN last died (down.rounds failed in
   * a row): the failback hold counts from it. A lost round of a lossy line does not
   * start it again, a new death does (review: at 20 % loss a hold that restarted at
   * every failure kept a WAN offline for hours after one short outage).
   */
  private holdFromMs: number | null = null
  /** Rounds since the hold began, and how many of them failed (HOLD_MAX_LOSS). */
  private holdRounds = 0
  private holdFailed = 0
  /** What the WAN was before it died: it comes back so, unless its window says otherwise. */
  private beforeDeath: WanState = 'online'
  private everUp = false

  constructor(cfg: WanProbeConfig) {
    this.cfg = { ...cfg }
  }

  /**
   * New thresholds (a reload): the state, its reason and the rounds seen so far stay,
   * so a WAN keeps carrying traffic; the next round is judged by the new numbers.
   */
  reconfigure(cfg: WanProbeConfig): void {
    this.cfg = { ...cfg }
    while (this.samples.length > cfg.window) this.samples.shift()
  }


  /** One finished probe round of this WAN. */
  round(r: RoundResult, nowMs: number): HealthVerdict {
    if (r.good) {
      this.goodInRow++
      this.failedInRow = 0
    } else {
      this.failedInRow++
      this.goodInRow = 0
    }
    if (this.state === 'offline') {
      // A dead stretch is not loss of a working line: its rounds stay out of the window.
      if (this.holdFromMs !== null) {
        this.holdRounds++
        if (!r.good) this.holdFailed++
      }
      if (this.failedInRow >= this.cfg.downRounds || this.holdFailed > Math.max(2, HOLD_MAX_LOSS * this.holdRounds)) this.holdFromMs = null
      if (r.good && this.holdFromMs === null) [this.holdFromMs, this.holdRounds, this.holdFailed] = [r.startedMs, 1, 0]
      return this.recover(nowMs)
    }
    this.samples.push({ good: r.good, latencyMs: r.latencyMs })
    if (this.samples.length > this.cfg.window) this.samples.shift()
    if (this.failedInRow >= this.cfg.downRounds) {
      // The run that killed it leaves the window too; what came before stays.
      this.samples.splice(Math.max(0, this.samples.length - this.failedInRow))
      this.beforeDeath = this.state
      this.holdFromMs = null
      return this.change('offline', `${this.failedInRow} probe rounds in a row failed (${r.answered} of ${plural(r.of, 'target')} answered)`, nowMs)
    }
    return this.judge(nowMs)
  }

  /** An online or degraded WAN against its window (hysteresis: back only below the up thresholds). */
  private judge(nowMs: number): HealthVerdict {
    const m = this.measure()
    if (!m.judged) return this.stay()
    if (this.state === 'online') {
      const poor = this.degradedReason(m)
      return poor === null ? this.stay() : this.change('degraded', poor, nowMs)
    }
    return this.withinUp(m) ? this.change('online', `back within the up thresholds: ${this.withinUpText(m)}`, nowMs) : this.stay()
  }

  /**
   * An answer came after its round had been counted as failed: the line is slow, not
   * dead. The round stays lost (loss, and the failback hold of an offline WAN), but
   * the failures in a row start again, so a line whose round trips pass the timeout
   * (a saturated uplink) is degraded, never taken for dead and drained.
   */
  alive(): void {
    if (this.state !== 'offline') this.failedInRow = 0
  }

  status(): WanHealthStatus {
    // An offline WAN's window is of the line before it died: no numbers of now.
    const m = this.samples.length === 0 || this.state === 'offline' ? null : this.measure()
    return {
      state: this.state,
      sinceMs: this.sinceMs,
      reason: this.reason,
      waiting: this.state === 'offline' ? this.waiting : null,
      loss: m === null ? null : m.loss,
      latencyMs: m === null ? null : m.latencyMs,
      rounds: this.samples.length,
      goodInRow: this.goodInRow,
      failedInRow: this.failedInRow,
      everUp: this.everUp,
    }
  }

  private measure(): Measure {
    const good = this.samples.filter((s) => s.good && s.latencyMs !== null)
    const failed = this.samples.filter((s) => !s.good).length
    const enough = good.length >= Math.min(LATENCY_MIN_GOOD_ROUNDS, this.cfg.window)
    return {
      rounds: this.samples.length,
      loss: failed / this.samples.length,
      latencyMs: enough ? good.reduce((sum, s) => sum + s.latencyMs!, 0) / good.length : null,
      judged: this.samples.length >= Math.max(1, Math.ceil(this.cfg.window * JUDGE_MIN_WINDOW_SHARE)),
    }
  }

  /** Why an online WAN is degraded now (past a down threshold over the window), or null. */
  private degradedReason(m: Measure): string | null {
    const cfg = this.cfg
    if (m.loss >= cfg.lossDown) return `loss ${pct(m.loss)} >= ${pct(cfg.lossDown)} over the last ${plural(m.rounds, 'round')}`
    if (m.latencyMs !== null && m.latencyMs >= cfg.latencyDownMs) return `latency ${ms(m.latencyMs)} >= ${ms(cfg.latencyDownMs)} over the last ${plural(m.rounds, 'round')}`
    return null
  }

  /** Which up threshold a degraded WAN is still past, or null when within both. */
  private outsideUpText(m: Measure): string | null {
    const cfg = this.cfg
    if (m.loss > cfg.lossUp) return `loss ${pct(m.loss)} > ${pct(cfg.lossUp)} over the last ${plural(m.rounds, 'round')}`
    if (m.latencyMs !== null && m.latencyMs > cfg.latencyUpMs) return `latency ${ms(m.latencyMs)} > ${ms(cfg.latencyUpMs)} over the last ${plural(m.rounds, 'round')}`
    return null
  }

  private withinUp(m: Measure): boolean {
    return this.outsideUpText(m) === null
  }

  private withinUpText(m: Measure): string {
    const latency = m.latencyMs === null ? '' : `, latency ${ms(m.latencyMs)} <= ${ms(this.cfg.latencyUpMs)}`
    return `loss ${pct(m.loss)} <= ${pct(this.cfg.lossUp)}${latency} over the last ${plural(m.rounds, 'round')}`
  }

  /** An offline WAN: does it come back with this round? */
  private recover(nowMs: number): HealthVerdict {
    const cfg = this.cfg
    if (this.goodInRow < cfg.upRounds) return this.wait(`${this.goodInRow} of ${plural(cfg.upRounds, 'good round')} in a row`)
    // A board that boots must not sit 10 s without uplinks: the hold guards against
    // flapping back onto a link that failed, and a link that never ran has not failed.
    if (!this.everUp) return this.change('online', `up: ${plural(this.goodInRow, 'good round')} in a row (first time up: no failback hold)`, nowMs)
    const healthyMs = nowMs - (this.holdFromMs ?? nowMs)
    if (healthyMs < cfg.failbackHoldMs) return this.wait(`failback hold: alive for ${seconds(healthyMs)} of ${seconds(cfg.failbackHoldMs)}`)
    // Back as it was before it died (a lossy line is degraded again at once, not
    // online for half a window first), unless its window now says otherwise.
    const m = this.measure()
    const poor = !m.judged ? null : this.beforeDeath === 'degraded' ? this.outsideUpText(m) : this.degradedReason(m)
    return this.change(poor === null ? 'online' : 'degraded', `recovered: ${plural(this.goodInRow, 'good round')} in a row, alive for ${seconds(healthyMs)}${poor === null ? '' : `; still ${poor}`}`, nowMs)
  }

  private wait(what: string): HealthVerdict {
    this.waiting = what
    return this.stay()
  }

  private stay(): HealthVerdict {
    return { state: this.state, changed: false, reason: this.reason }
  }

  /** The one place the state changes: it records when and why together. */
  private change(state: WanState, reason: string, nowMs: number): HealthVerdict {
    this.state = state
    this.sinceMs = nowMs
    this.reason = reason
    this.waiting = null
    if (state !== 'offline') this.everUp = true
    return { state, changed: true, reason }
  }
}
