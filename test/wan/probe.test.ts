import t from 'tap'
import { DNS_TYPE_A, encodeQuery } from '../../src/wire/dns.js'
import { PROBE_LATE_MEMORY_ROUNDS, PROBE_OPEN_ROUNDS_MAX, WanProber, type ProbeQuery } from '../../src/wan/probe.js'

const A = '203.0.113.53'
const B = '198.51.100.53'
const C = '192.0.2.53'

/** Random bytes that hand out the given 16-bit ids in turn, then count up from 0x1000. */
function ids(...list: number[]): (n: number) => Buffer {
  let next = 0x1000
  return (n: number) => {
    const b = Buffer.alloc(n)
    b.writeUInt16BE(list.length > 0 ? list.shift()! : next++, 0)
    return b
  }
}

/** The resolver's answer to a query: the query with QR and RA set and an rcode. */
function answer(q: ProbeQuery, rcode = 0): Buffer {
  const b = Buffer.from(q.bytes)
  b.writeUInt16BE(0x8180 | rcode, 2)
  return b
}

function prober(targets = [A, B], need = 1, random = ids()): WanProber {
  return new WanProber({ wan: 1, targets, need, timeoutMs: 1000, random })
}

t.test('a round asks every target once, with random ids', async (t) => {
  const p = prober([A, B], 1, ids(0x1234, 0xbeef))
  const qs = p.startRound(5000)
  t.same(
    qs.map((q) => [q.target, q.id]),
    [
      [A, 0x1234],
      [B, 0xbeef],
    ],
  )
  t.same(qs[0]!.bytes, encodeQuery(0x1234), "the root's NS records")
  t.equal(p.nextWakeMs(), 6000, 'the deadline')
  t.same(p.tick(5999), [], 'nothing finished yet')
})

t.test('every target answered: the round finishes at once, latency is the mean', async (t) => {
  const p = prober()
  const [qa, qb] = p.startRound(1000)
  t.equal(p.reply(A, answer(qa!), 1030), 'ok')
  t.equal(p.nextWakeMs(), 2000, 'one still out')
  t.equal(p.reply(B, answer(qb!), 1050), 'ok')
  t.equal(p.nextWakeMs(), 1050, 'a finished round waits for tick()')
  t.same(p.tick(1050), [{ startedMs: 1000, answered: 2, of: 2, good: true, latencyMs: 40 }])
  t.same(p.tick(1060), [], 'handed out once')
  t.equal(p.nextWakeMs(), Infinity, 'nothing in flight')
})

t.test('any rcode is an answer: a resolver that refuses recursion still proves the path', async (t) => {
  const p = prober([A])
  const [q] = p.startRound(0)
  t.equal(p.reply(A, answer(q!, 5), 20), 'ok')
  t.same(p.tick(20), [{ startedMs: 0, answered: 1, of: 1, good: true, latencyMs: 20 }])
})

t.test('k of n', async (t) => {
  const p = prober([A, B, C], 2)
  let [qa, qb] = p.startRound(0)
  p.reply(A, answer(qa!), 10)
  p.reply(B, answer(qb!), 30)
  t.same(p.tick(999), [], 'C may still answer')
  t.same(p.tick(1000), [{ startedMs: 0, answered: 2, of: 3, good: true, latencyMs: 20 }], '2 of 3 with need 2: good')
  ;[qa] = p.startRound(1000)
  p.reply(A, answer(qa!), 1100)
  t.same(p.tick(2000), [{ startedMs: 1000, answered: 1, of: 3, good: false, latencyMs: 100 }], '1 of 3: failed')
  p.startRound(2000)
  t.same(p.tick(3500), [{ startedMs: 2000, answered: 0, of: 3, good: false, latencyMs: null }], 'none: no latency')
  t.match(p.status(), { rounds: 3, goodRounds: 1, failedRounds: 2, sent: 9 })
})

t.test('a reply after the timeout is late, with or without a tick in between', async (t) => {
  const p = prober()
  const [qa, qb] = p.startRound(0)
  t.equal(p.reply(A, answer(qa!), 1000), 'late', 'at the deadline, no tick yet')
  t.same(p.tick(1000), [{ startedMs: 0, answered: 0, of: 2, good: false, latencyMs: null }], 'the late answer did not count')
  t.equal(p.reply(B, answer(qb!), 4000), 'late', 'long after')
  t.equal(p.status().replies.late, 2)
})

t.test('duplicate replies count once', async (t) => {
  const p = prober([A, B])
  const [qa] = p.startRound(0)
  t.equal(p.reply(A, answer(qa!), 10), 'ok')
  t.equal(p.reply(A, answer(qa!), 11), 'duplicate', 'while the round is open')
  t.same(p.tick(1000), [{ startedMs: 0, answered: 1, of: 2, good: true, latencyMs: 10 }])
  t.equal(p.reply(A, answer(qa!), 1500), 'duplicate', 'after it closed')
  t.equal(p.status().replies.duplicate, 2)
})

t.test('a reply from the wrong address does not count', async (t) => {
  const p = prober([A, B])
  const [qa, qb] = p.startRound(0)
  t.equal(p.reply('192.0.2.66', answer(qa!), 10), 'wrongTarget', 'a stranger with our id')
  t.equal(p.reply(B, answer(qa!), 10), 'wrongTarget', "B with A's id")
  t.equal(p.reply(B, answer(qb!), 20), 'ok')
  t.same(p.tick(1000), [{ startedMs: 0, answered: 1, of: 2, good: true, latencyMs: 20 }], 'A stays unanswered')
  t.equal(p.status().replies.wrongTarget, 2)
})

t.test('ids it never sent, questions it never asked, and bytes that are not DNS', async (t) => {
  const p = prober([A], 1, ids(0x1111))
  const [q] = p.startRound(0)
  t.equal(p.reply(A, answer({ ...q!, bytes: encodeQuery(0x2222) }), 10), 'unknownId')
  const otherQuestion = Buffer.from(encodeQuery(0x1111, 'example.com', DNS_TYPE_A))
  otherQuestion.writeUInt16BE(0x8180, 2)
  t.equal(p.reply(A, otherQuestion, 10), 'badQuestion', 'our id, another name')
  const otherType = Buffer.from(encodeQuery(0x1111, '.', DNS_TYPE_A))
  otherType.writeUInt16BE(0x8180, 2)
  t.equal(p.reply(A, otherType, 10), 'badQuestion', 'our id, another type')
  t.equal(p.reply(A, Buffer.from('hi'), 10), 'short')
  t.equal(p.reply(A, q!.bytes, 10), 'notResponse', 'our own query looped back')
  t.equal(p.reply(A, answer(q!), 10), 'ok', 'the real answer still counts')
  t.same(p.status().replies, { ok: 1, unknownId: 1, wrongTarget: 0, late: 0, duplicate: 0, short: 1, notResponse: 1, badQuestion: 2, badName: 0 })
})

t.test('rounds overlap when the interval is shorter than the timeout', async (t) => {
  // The defaults: a round every 500 ms, each probe has 1 s. An answer after 700 ms is
  // on time even though the next round has started.
  const p = prober([A])
  const [q0] = p.startRound(0)
  const [q1] = p.startRound(500)
  t.equal(p.status().openRounds, 2)
  t.equal(p.nextWakeMs(), 1000)
  t.equal(p.reply(A, answer(q0!), 700), 'ok', 'round 0, 700 ms')
  t.same(p.tick(700), [{ startedMs: 0, answered: 1, of: 1, good: true, latencyMs: 700 }])
  t.equal(p.nextWakeMs(), 1500)
  t.same(p.tick(1500), [{ startedMs: 500, answered: 0, of: 1, good: false, latencyMs: null }])
  t.equal(p.reply(A, answer(q1!), 1600), 'late')
})

t.test('results come out in the order the rounds finished', async (t) => {
  const p = prober([A])
  p.startRound(0)
  const [q1] = p.startRound(500)
  p.reply(A, answer(q1!), 520)
  t.same(
    p.tick(1000).map((r) => [r.startedMs, r.good]),
    [
      [500, true],
      [0, false],
    ],
  )
})

t.test('too many open rounds: the oldest closes as far as it got', async (t) => {
  const p = prober([A, B])
  const [qa] = p.startRound(0)
  p.reply(A, answer(qa!), 1)
  for (let i = 1; i < PROBE_OPEN_ROUNDS_MAX; i++) p.startRound(0)
  t.equal(p.status().openRounds, PROBE_OPEN_ROUNDS_MAX)
  t.same(p.tick(0), [])
  p.startRound(0)
  t.equal(p.status().openRounds, PROBE_OPEN_ROUNDS_MAX)
  t.same(p.tick(0), [{ startedMs: 0, answered: 1, of: 2, good: true, latencyMs: 1 }])
})

t.test('replies to long-forgotten rounds are unknown', async (t) => {
  const p = prober([A])
  const [old] = p.startRound(0)
  for (let i = 1; i <= PROBE_LATE_MEMORY_ROUNDS; i++) p.startRound(i * 2000)
  p.tick(PROBE_LATE_MEMORY_ROUNDS * 2000 + 1000)
  t.equal(p.reply(A, answer(old!), 20_000), 'unknownId', `${PROBE_LATE_MEMORY_ROUNDS} newer rounds closed since`)
})

t.test('an id is not reused for a target while a probe with it may still be answered', async (t) => {
  const p = prober([A], 1, ids(0x0505, 0x0505, 0x0606))
  const [q0] = p.startRound(0)
  const [q1] = p.startRound(500)
  t.equal(q1!.id, 0x0606, 'drew again')
  t.equal(p.reply(A, answer(q0!), 600), 'ok')
  t.equal(p.reply(A, answer(q1!), 610), 'ok')
})

t.test('a broken random source does not hang the prober; the newest probe wins', async (t) => {
  const constant = (n: number): Buffer => Buffer.alloc(n, 7)
  const p = prober([A], 1, constant)
  const [q0] = p.startRound(0)
  const [q1] = p.startRound(500)
  t.equal(q0!.id, q1!.id)
  t.equal(p.reply(A, answer(q1!), 600), 'ok')
  t.same(p.tick(600), [{ startedMs: 500, answered: 1, of: 1, good: true, latencyMs: 100 }])
  t.equal(p.reply(A, answer(q0!), 650), 'duplicate', 'the same bytes again')
})

t.test('a target listed twice is asked twice, with two ids', async (t) => {
  const p = prober([A, A], 2, ids(0x0101, 0x0101, 0x0202))
  const [q1, q2] = p.startRound(0)
  t.not(q1!.id, q2!.id)
  t.equal(p.reply(A, answer(q2!), 10), 'ok')
  t.equal(p.reply(A, answer(q1!), 30), 'ok')
  t.same(p.tick(30), [{ startedMs: 0, answered: 2, of: 2, good: true, latencyMs: 20 }])
})

t.test('status', async (t) => {
  const p = prober([A, B], 2)
  const [qa] = p.startRound(0)
  p.reply(A, answer(qa!), 5)
  t.same(p.status(), {
    wan: 1,
    targets: [A, B],
    need: 2,
    openRounds: 1,
    rounds: 0,
    goodRounds: 0,
    failedRounds: 0,
    sent: 2,
    replies: { ok: 1, unknownId: 0, wrongTarget: 0, late: 0, duplicate: 0, short: 0, notResponse: 0, badQuestion: 0, badName: 0 },
  })
  p.status().targets.push('x')
  t.same(p.status().targets, [A, B], 'a copy')
})

t.test('options config/load.ts never produces are bugs', async (t) => {
  const make = (targets: string[], need: number, timeoutMs = 1000) => () => new WanProber({ wan: 2, targets, need, timeoutMs, random: ids() })
  t.throws(make([], 1), RangeError)
  t.throws(make([A], 0), RangeError)
  t.throws(make([A], 2), RangeError)
  t.throws(make([A], 1.5), RangeError)
  t.throws(make([A], 1, 0), RangeError)
  t.throws(make([A], 1, NaN), RangeError)
  t.doesNotThrow(make([A, B], 2))
})
