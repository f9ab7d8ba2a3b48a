import t, { type Test } from 'tap'
import { DROP_REASONS } from '../../src/carp/status.js'
import type { BoardStatus } from '../../src/control/status.js'
import { renderStatus } from '../../src/control/render.js'
import type { WanRuntimeStatus } from '../../src/wan/status.js'
import { dnsAnswer, WanRuntimeHarness, wanConfig } from '../helpers/wan-runtime.js'

const drops = Object.fromEntries(DROP_REASONS.map((r) => [r, 0])) as BoardStatus['drops']

/** A status with nothing but the WAN part to show. */
function agentStatus(wan: WanRuntimeStatus | null): BoardStatus {
  return {
    node: 'router',
    version: '0.1.0',
    uptimeMs: 3000,
    maint: false,
    demote: { total: 0, reasons: {} },
    vhids: [],
    drops,
    sendErrors: 0,
    platformFailures: 0,
    repairs: 0,
    links: {},
    sync: null,
    quorum: null,
    wan,
    bugs: 0,
  }
}

const HEAD = ['carpd router version 0.1.0 up 3.0s', 'demote 0  maint off', 'drops: none', 'send errors: 0  OS command failures: 0  repairs: 0']

/** The `wan:` lines of a rendered status. */
function wanLines(t: Test, text: string): string[] {
  const lines = text.split('\n')
  t.same(lines.slice(0, HEAD.length), HEAD)
  t.equal(lines.at(-1), '', 'the text ends with a newline')
  return lines.slice(HEAD.length, -1)
}

t.test('no WAN part without multi-WAN', async (t) => {
  t.equal(renderStatus(agentStatus(null)), HEAD.join('\n') + '\n')
})

t.test("a running link's status: plan, each WAN, its probes, the loads", async (t) => {
  // wan1 comes up; wan2 has no address, so its rounds all fail; every load fails, so
  // nothing is in the kernel and the plan wanted waits.
  const h = new WanRuntimeHarness({ wans: [wanConfig(1, { weight: 3 }), wanConfig(2)], addresses: { wan1: '203.0.113.2' } })
  h.applier.failLoad = new Error('iptables-restore: line 3 failed')
  await h.link.start()
  await h.step(3000)
  const lines = wanLines(t, renderStatus(agentStatus(h.link.status())))
  t.equal(lines.length, 7)
  t.equal(lines[0], 'wan: new connections: none loaded yet')
  t.equal(lines[1], '  wanted, not loaded yet: tier 1: wan1 x3', 'right under the plan in the kernel')
  t.equal(
    lines[2],
    '  wan1 wan1 203.0.113.2 online for 1.0s: up: 5 good rounds in a row (first time up: no failback hold)',
  )
  t.match(lines[3], /^ {4}loss 0% latency n\/a; probes: rounds 6 \(good 6, failed 0\), queries 7, replies: ok 6$/)
  t.match(lines[4], /^  wan2 wan2 \(no address\) offline for 3\.0s: wan2 has no IPv4 address: probes cannot leave through it$/)
  t.match(lines[5], /^ {4}loss n\/a latency n\/a; probes: rounds 5 \(good 0, failed 5\), queries 7, replies: none$/, 'only the counters, replies by outcome')
  // The first plan failed at 0, the next one at 2020 (its retry is due at 7020).
  t.equal(lines[6], '  rules loaded 0 times, 2 failed; last FAILED (iptables-restore: line 3 failed) 1.0s ago; connections removed from offline WANs: 0; repairs 0')
  t.notMatch(lines[3], /wan 1|need 1/, 'no configuration among the probe counters')
  await h.link.stop()
})

t.test('once a load succeeds the wanted line goes: the plan shown is the one loaded', async (t) => {
  const h = new WanRuntimeHarness({ wans: [wanConfig(1, { weight: 3 }), wanConfig(2)], addresses: { wan1: '203.0.113.2' } })
  h.applier.failLoad = new Error('iptables-restore: line 3 failed')
  await h.link.start()
  await h.step(3000)
  h.applier.failLoad = null
  await h.step(4030) // the retry at 7020
  const lines = wanLines(t, renderStatus(agentStatus(h.link.status())))
  t.equal(lines.length, 6)
  t.equal(lines[0], 'wan: new connections: tier 1: wan1 x3')
  t.match(lines[1], /^ {2}wan1 wan1 203\.0\.113\.2 online for /, 'no wanted line')
  t.equal(lines[5], '  rules loaded 1 times, 2 failed; last ok 0.0s ago; connections removed from offline WANs: 0; repairs 0')
  await h.link.stop()
})

t.test('reply outcomes other than ok show up among the probe counters', async (t) => {
  const h = new WanRuntimeHarness({ wans: [wanConfig(1)] })
  await h.link.start()
  await h.settle() // the first plan loaded: no wanted line
  const s = h.sockets.get(1)!
  s.receive(dnsAnswer(s.sent[0]!.bytes), '192.0.2.99')
  const lines = wanLines(t, renderStatus(agentStatus(h.link.status())))
  t.match(lines[2], /wrongTarget 1/, 'a forged answer is visible in `carpd status`')
  await h.link.stop()
})

t.test('a WAN before its first round has no probe counters yet', async (t) => {
  const h = new WanRuntimeHarness({ wans: [wanConfig(1)] })
  const lines = wanLines(t, renderStatus(agentStatus(h.link.status())))
  t.same(lines.slice(0, 2), ['wan: new connections: none loaded yet', '  wan1 wan1 203.0.113.2 offline for 0.0s: no probe round yet'], 'no plan wanted yet either')
  t.match(lines[2], /^ {4}loss n\/a latency n\/a; probes: /)
  t.equal(lines[2], '    loss n/a latency n/a; probes: none yet', 'nothing counted yet')
  t.equal(lines[3], '  rules loaded 0 times, 0 failed; none yet; connections removed from offline WANs: 0; repairs 0')
})

t.test('rounding, a degraded WAN, the last load ok, connections removed', async (t) => {
  const probes = {
    wan: 1,
    targets: ['198.18.1.53'],
    need: 1,
    openRounds: 1,
    rounds: 9,
    goodRounds: 6,
    failedRounds: 3,
    sent: 10,
    replies: { ok: 0, unknownId: 0, wrongTarget: 0, late: 0, duplicate: 0, short: 0, notResponse: 0, badQuestion: 0, badName: 0 },
  }
  const w: WanRuntimeStatus = {
    plan: 'tier 1: wan1 x1',
    wanted: 'tier 1: wan1 x1, wan2 x1',
    wans: [
      { wan: 1, interface: 'eth1', address: '203.0.113.2', state: 'degraded', forMs: 75_000, reason: 'latency 300.4 ms > 250 ms', loss: 1 / 3, latencyMs: 300.4, probes },
      { wan: 2, interface: 'eth2', address: null, state: 'offline', forMs: 500, reason: 'no probe round yet', loss: null, latencyMs: 20.6, probes: { ...probes, wan: 2, rounds: 0, goodRounds: 0, failedRounds: 0, sent: 1 } },
    ],
    loads: 7,
    loadFailures: 1,
    lastLoad: { ok: true, agoMs: 2500, error: null },
    flushed: 13,
    repairs: 2,
  }
  const lines = wanLines(t, renderStatus(agentStatus(w)))
  t.equal(lines.length, 7)
  t.equal(lines[0], 'wan: new connections: tier 1: wan1 x1')
  t.equal(lines[1], '  wanted, not loaded yet: tier 1: wan1 x1, wan2 x1')
  t.equal(lines[2], '  wan1 eth1 203.0.113.2 degraded for 1m15s: latency 300.4 ms > 250 ms')
  t.match(lines[3], /^ {4}loss 33% latency 300 ms; probes: rounds 9 \(good 6, failed 3\), queries 10, replies: /)
  t.equal(lines[4], '  wan2 eth2 (no address) offline for 0.5s: no probe round yet')
  t.match(lines[5], /^ {4}loss n\/a latency 21 ms; probes: rounds 0 \(good 0, failed 0\), queries 1, replies: /)
  t.equal(lines[6], '  rules loaded 7 times, 1 failed; last ok 2.5s ago; connections removed from offline WANs: 13; repairs 2')

  const none = wanLines(t, renderStatus(agentStatus({ ...w, wanted: null })))
  t.same(none, lines.filter((_, i) => i !== 1), 'wanted null: no such line, nothing else changes')
})
