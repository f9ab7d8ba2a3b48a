// Fuzzing in CI (issue 15): a small budget per target; `npm run fuzz` runs 1,000,000
// inputs per target with the same code.
import t from 'tap'
import { fuzzTarget } from './run.js'
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
