import t from 'tap'
import type { WanProbeConfig } from '../../src/config/types.js'
import { REASON_STARTING, WanHealth, type HealthVerdict } from '../../src/wan/health.js'
import type { RoundResult } from '../../src/wan/probe.js'

/** The schema's defaults (config/schema.ts). */
const DEFAULTS: WanProbeConfig = {
  intervalMs: 500,
  timeoutMs: 1000,
  window: 10,
  lossDown: 0.2,
  lossUp: 0.05,
  latencyDownMs: 800,
  latencyUpMs: 400,
  downRounds: 3,
  upRounds: 5,
  failbackHoldMs: 10_000,
}

const good = (startedMs: number, latencyMs = 50): RoundResult => ({ startedMs, answered: 2, of: 2, good: true, latencyMs })
const bad = (startedMs: number, answered = 0, of = 2): RoundResult => ({ startedMs, answered, of, good: false, latencyMs: answered > 0 ? 300 : null })

/** A WAN judged round by round on a clock that only moves here: one round per interval. */
class Driver {
  readonly h: WanHealth
  nowMs = 0
  readonly stepMs: number
  readonly window: number
  constructor(cfg: Partial<WanProbeConfig> = {}) {
    const full = { ...DEFAULTS, ...cfg }
    this.h = new WanHealth(full)
    this.stepMs = full.intervalMs
    this.window = full.window
  }
  /** A round started now, judged when it finished (latency later), then time moves on. */
  round(r: (startedMs: number) => RoundResult): HealthVerdict {
    const result = r(this.nowMs)
    const v = this.h.round(result, this.nowMs + (result.latencyMs ?? 0))
    this.nowMs += this.stepMs
    return v
  }
  good(n: number, latencyMs = 50): HealthVerdict[] {
    return Array.from({ length: n }, () => this.round((s) => good(s, latencyMs)))
  }
  bad(n: number): HealthVerdict[] {
    return Array.from({ length: n }, () => this.round((s) => bad(s)))
  }
  /** Brought up at boot and the window filled with good rounds. */
  online(): this {
    this.good(this.window + 5)
    return this
  }
}

const states = (vs: HealthVerdict[]): string[] => vs.map((v) => v.state)
const changes = (vs: HealthVerdict[]): number[] => vs.flatMap((v, i) => (v.changed ? [i] : []))

t.test('starts offline, and comes up the first time without the failback hold', async (t) => {
  const d = new Driver()
  t.match(d.h.status(), { state: 'offline', sinceMs: null, reason: REASON_STARTING, loss: null, latencyMs: null, rounds: 0, everUp: false })
  const first = d.good(4)
  t.same(states(first), ['offline', 'offline', 'offline', 'offline'])
  t.equal(first[3]!.reason, REASON_STARTING)
  t.equal(d.h.status().waiting, '4 of 5 good rounds in a row')
  const up = d.round((s) => good(s, 50))
  t.same(up, {
    state: 'online',
    changed: true,
    reason: 'up: 5 good rounds in a row, loss 0% <= 5%, latency 50 ms <= 400 ms over the last 5 rounds (first time up: no failback hold)',
  })
  t.match(d.h.status(), { state: 'online', sinceMs: 2050, waiting: null, loss: 0, latencyMs: 50, rounds: 5, goodInRow: 5, failedInRow: 0, everUp: true })
  t.ok(d.nowMs - 500 < DEFAULTS.failbackHoldMs, 'well inside 10 s of boot')
})

t.test('boot: a WAN that failed its first probes still comes up without a hold, once its window is clean', async (t) => {
  const d = new Driver()
  t.same(states(d.bad(2)), ['offline', 'offline'])
  const vs = d.good(9)
  t.notOk(vs.some((v) => v.changed), 'the early failures are still in the window')
  t.equal(d.h.status().waiting, 'loss 10% > 5% over the last 10 rounds')
  const up = d.round((s) => good(s))
  t.ok(up.changed)
  t.match(up.reason, /^up: 10 good rounds in a row, .*first time up: no failback hold/)
})

t.test('down: failed rounds in a row', async (t) => {
  // A loss threshold high enough that the run of failures decides.
  const d = new Driver({ lossDown: 0.5 }).online()
  const vs = d.round((s) => bad(s, 1, 2))
  t.same(vs, { state: 'degraded', changed: true, reason: 'loss 10% > 5% over the last 10 rounds' }, 'one failure is only degraded')
  t.same(states(d.bad(1)), ['degraded'])
  const down = d.round((s) => bad(s, 0, 2))
  t.same(down, { state: 'offline', changed: true, reason: '3 probe rounds in a row failed (0 of 2 targets answered)' })
  t.match(d.h.status(), { state: 'offline', failedInRow: 3, goodInRow: 0, loss: 0.3 })
})

t.test('down: failed rounds in a row straight from online, with one target', async (t) => {
  const d = new Driver({ lossDown: 1, lossUp: 1, downRounds: 2 }).online()
  t.same(states(d.bad(1)), ['online'], 'loss within both thresholds')
  t.equal(d.round((s) => bad(s, 0, 1)).reason, '2 probe rounds in a row failed (0 of 1 target answered)')
})

t.test('down: loss over the window, with good rounds between the failures', async (t) => {
  const d = new Driver({ lossDown: 0.3 }).online()
  const vs = [...d.bad(1), ...d.good(1), ...d.bad(1), ...d.good(1), ...d.bad(1)]
  t.same(states(vs), ['degraded', 'degraded', 'degraded', 'degraded', 'offline'])
  t.equal(vs[4]!.reason, 'loss 30% >= 30% over the last 10 rounds')
  t.equal(d.h.status().failedInRow, 1, 'never two in a row')
})

t.test('down: loss with the defaults (2 failures of 10 reach 20% before 3 in a row)', async (t) => {
  const d = new Driver().online()
  const vs = d.bad(2)
  t.same(states(vs), ['degraded', 'offline'])
  t.equal(vs[1]!.reason, 'loss 20% >= 20% over the last 10 rounds')
})

t.test('down: latency, judged only once 3 good rounds are in the window', async (t) => {
  const d = new Driver({ window: 3, upRounds: 3 })
  t.same(changes(d.good(3, 100)), [2])
  const vs = d.good(3, 912)
  t.same(states(vs), ['online', 'degraded', 'offline'])
  t.equal(vs[1]!.reason, 'latency 641.3 ms > 400 ms')
  t.equal(vs[2]!.reason, 'latency 912 ms >= 800 ms')
})

t.test('latency of one or two slow rounds is not judged', async (t) => {
  const d = new Driver({ upRounds: 1 })
  const vs = d.good(3, 2000)
  t.same(states(vs), ['online', 'online', 'offline'], 'up on one good round, down on the third slow one')
  t.equal(vs[2]!.reason, 'latency 2000 ms >= 800 ms')
})

t.test('a window smaller than 3 judges latency over the rounds it has', async (t) => {
  const d = new Driver({ window: 2, upRounds: 1 })
  const vs = d.good(2, 900)
  t.same(states(vs), ['online', 'offline'])
  t.equal(vs[1]!.reason, 'latency 900 ms >= 800 ms')
})

t.test('degraded by loss and back', async (t) => {
  const d = new Driver().online()
  const vs = [...d.bad(1), ...d.good(10)]
  t.same(changes(vs), [0, 10], 'back only when the failure has left the window')
  t.equal(vs[0]!.state, 'degraded')
  t.same(vs[10], { state: 'online', changed: true, reason: 'back within the up thresholds: loss 0% <= 5%, latency 50 ms <= 400 ms over the last 10 rounds' })
  t.equal(vs[5]!.reason, 'loss 10% > 5% over the last 10 rounds', 'an unchanged verdict repeats why')
  t.equal(d.h.status().waiting, null, 'waiting is for offline WANs')
})

t.test('degraded by latency and back', async (t) => {
  const d = new Driver().online()
  // Mean of ten rounds: nine at 50 ms and one at 4000 ms is 445 ms.
  const slow = d.good(1, 4000)
  t.same(slow[0], { state: 'degraded', changed: true, reason: 'latency 445 ms > 400 ms' })
  const vs = d.good(10, 50)
  t.same(changes(vs), [9])
  t.equal(vs[9]!.reason, 'back within the up thresholds: loss 0% <= 5%, latency 50 ms <= 400 ms over the last 10 rounds')
})

t.test('degraded falls to offline by the same rules', async (t) => {
  const d = new Driver({ lossDown: 0.5 }).online()
  t.same(states(d.good(1, 4000)), ['degraded'])
  const vs = d.bad(3)
  t.same(states(vs), ['degraded', 'degraded', 'offline'])
  t.equal(vs[2]!.reason, '3 probe rounds in a row failed (0 of 2 targets answered)')
})

t.test('failback hold: a WAN that was up waits, healthy, before it carries traffic again', async (t) => {
  const d = new Driver().online()
  d.bad(2)
  t.equal(d.h.status().state, 'offline')
  const firstGoodMs = d.nowMs
  let vs = d.good(5, 0)
  t.notOk(vs.some((v) => v.changed))
  t.equal(d.h.status().waiting, 'loss 20% > 5% over the last 10 rounds', 'five good in a row, the window not clean yet')
  vs = d.good(5, 0)
  t.notOk(vs.some((v) => v.changed))
  t.equal(d.h.status().waiting, 'failback hold: healthy for 4.5s of 10.0s', 'the 10th good round started 4.5 s after the first')
  t.equal(vs[4]!.reason, 'loss 20% >= 20% over the last 10 rounds', 'still offline for the reason it fell')
  // Good rounds until 10 s have passed since the first of them started.
  let up: HealthVerdict | undefined
  while (up === undefined) {
    const v = d.round((s) => good(s, 0))
    if (v.changed) up = v
  }
  t.same(up, { state: 'online', changed: true, reason: 'recovered: 21 good rounds in a row, healthy for 10.0s' })
  t.equal(d.h.status().sinceMs! - firstGoodMs, 10_000)
})

t.test('failback hold: a failure during the hold starts it again', async (t) => {
  const d = new Driver({ window: 5, lossUp: 0.2, lossDown: 0.8, downRounds: 1, upRounds: 2, intervalMs: 1000 }).online()
  t.same(states(d.bad(1)), ['offline'])
  d.good(5, 0)
  t.equal(d.h.status().waiting, 'failback hold: healthy for 4.0s of 10.0s', 'clean window, hold from the first good round')
  t.same(states(d.bad(1)), ['offline'])
  t.equal(d.h.status().waiting, '0 of 2 good rounds in a row', 'the run starts again')
  d.good(1, 0)
  t.equal(d.h.status().waiting, '1 of 2 good rounds in a row')
  const vs = d.good(10, 0)
  t.same(changes(vs), [9], 'ten seconds from the first good round after the failure')
  t.equal(vs[9]!.reason, 'recovered: 11 good rounds in a row, healthy for 10.0s')
})

t.test('failback hold: the reason as the spec words it', async (t) => {
  // Rounds every 2.5 s, a window of 5: five good rounds in a row span exactly 10 s.
  const d = new Driver({ window: 5, intervalMs: 2500, downRounds: 1 })
  d.good(5)
  t.equal(d.h.status().state, 'online')
  d.bad(1)
  t.equal(d.h.status().state, 'offline')
  const vs = d.round((s) => good(s, 0))
  t.notOk(vs.changed)
  const rest = [...d.good(3, 0), d.round((s) => good(s, 0))]
  t.same(rest[3], { state: 'online', changed: true, reason: 'recovered: 5 good rounds in a row, healthy for 10.0s' })
})

t.test('failback hold of 0: back as soon as the window is clean', async (t) => {
  const d = new Driver({ failbackHoldMs: 0 }).online()
  d.bad(2)
  const vs = d.good(10, 0)
  t.same(changes(vs), [9])
  t.equal(vs[9]!.reason, 'recovered: 10 good rounds in a row, healthy for 4.5s')
})

t.test('an offline WAN does not come back while too slow', async (t) => {
  const d = new Driver({ failbackHoldMs: 0 }).online()
  d.bad(2)
  const vs = d.good(20, 500)
  t.notOk(vs.some((v) => v.changed))
  t.equal(d.h.status().waiting, 'latency 500 ms > 400 ms')
  t.same(states(d.good(1, 0)), ['offline'], 'mean (9 x 500 + 0) / 10 = 450 ms: still too slow')
  const back = d.good(1, 0)[0]!
  t.same(back.state, 'online', '(8 x 500 + 0 + 0) / 10 = 400 ms: at the up threshold is good enough')
  t.equal(back.reason, 'recovered: 22 good rounds in a row, healthy for 10.5s')
})

t.test('status is a snapshot with loss and latency over the window', async (t) => {
  const d = new Driver()
  d.good(3, 100)
  d.bad(1)
  t.same(d.h.status(), {
    state: 'offline',
    sinceMs: null,
    reason: REASON_STARTING,
    waiting: '0 of 5 good rounds in a row',
    loss: 0.25,
    latencyMs: 100,
    rounds: 4,
    goodInRow: 0,
    failedInRow: 1,
    everUp: false,
  })
})

t.test('the configuration is copied: changing the object later changes nothing', async (t) => {
  const cfg = { ...DEFAULTS, upRounds: 1 }
  const h = new WanHealth(cfg)
  cfg.upRounds = 100
  t.ok(h.round(good(0), 50).changed)
})
