// Fuzzing in CI (issue 15): a small budget per target; `npm run fuzz` runs 1,000,000
// inputs per target with the same code.
import t from 'tap'
import { SLOW_MS, fuzzTarget } from './run.js'
import { TARGETS } from './targets.js'

const INPUTS = Number(process.env.CARPD_FUZZ_INPUTS ?? 5000)

for (const target of TARGETS) {
  t.test(`${target.name}: ${INPUTS} mutated inputs, no exception, hang or broken property`, async (t) => {
    const r = fuzzTarget(target, INPUTS, 1)
    t.equal(r.inputs, INPUTS)
    t.same(r.failures, [], 'failures print their input in hex')
    t.ok(r.accepted > 0, `the mutations reach the parser: ${r.accepted} decoded as valid`)
    t.ok(r.accepted < r.inputs, 'and many are rejected')
  })
}

t.test('a broken target is caught', async (t) => {
  const r = fuzzTarget({ name: 'broken', seeds: [Buffer.from('x')], check: (b) => {
    if (b.length > 3) throw new Error('boom')
    return { decoded: true, problem: b.length === 0 ? 'empty accepted' : null }
  } }, 500, 1)
  t.ok(r.failures.some((f) => f.problem.startsWith('threw: Error: boom')), 'an exception')
  t.ok(r.failures.some((f) => f.problem === 'empty accepted'), 'a broken property')
})

t.test('a slow input counts only when it is slow every time (a hang), not once (a GC pause, a busy machine)', async (t) => {
  const busy = (ms: number) => {
    const end = performance.now() + ms
    while (performance.now() < end) {
      // spin
    }
  }
  let calls = 0
  const once = fuzzTarget({ name: 'paused once', seeds: [Buffer.from('x')], check: () => (calls++ === 0 && busy(SLOW_MS + 20), { decoded: true, problem: null }) }, 3, 1)
  t.same(once.failures, [], 'slow the first time only: no failure')
  t.ok(once.slowestMs < SLOW_MS, `and the slowest counts its fastest timing (${once.slowestMs.toFixed(1)} ms)`)
  const hang = fuzzTarget({ name: 'always slow', seeds: [Buffer.from('x')], check: () => (busy(SLOW_MS + 20), { decoded: true, problem: null }) }, 1, 1)
  t.match(hang.failures, [{ problem: /^took \d+ ms$/ }], 'slow three times: a failure')
})
