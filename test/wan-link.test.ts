import t, { type Test } from 'tap'
import { iptablesHooks, renderWanSet, routeCommands } from '../src/wan/rules/index.js'
import type { WanPlan } from '../src/wan/types.js'
import { dnsAnswer, WanLinkHarness, type WanLinkHarnessOptions, wanConfig } from './helpers/wan-link.js'

const T1 = '198.18.1.53' // wan1's resolver
const T2 = '198.18.2.53' // wan2's resolver
const ALL_DOWN_3_1 = 'every WAN is offline: spreading new connections over all of them (wan1 x3, wan2 x1)'
const UP_FIRST_TIME = 'up: 5 good rounds in a row, loss 0% <= 10%, latency 20 ms <= 250 ms over the last 5 rounds (first time up: no failback hold)'

/** Two WANs in tier 1, weights 3 and 1, resolvers answering in 20 ms. */
function pair(over: Omit<WanLinkHarnessOptions, 'wans'> = {}): WanLinkHarness {
  return new WanLinkHarness({ ...over, wans: [wanConfig(1, { weight: 3 }), wanConfig(2)] })
}

const normal = (tier: number, ...active: [number, number][]): WanPlan => ({ mode: 'normal', tier, active: active.map(([wan, weight]) => ({ wan, weight })) })

/** Steps until a console line matches `re` (at most `maxMs`), and returns it. */
async function until(t: Test, h: WanLinkHarness, re: RegExp, maxMs = 20_000): Promise<string> {
  const from = h.lines.length
  for (let waited = 0; waited < maxMs; waited += 10) {
    const hit = h.lines.slice(from).find((l) => re.test(l))
    if (hit !== undefined) return hit
    await h.step(10)
  }
  t.fail(`no line matching ${re} within ${maxMs} ms`)
  return ''
}

t.test('start loads the routes, then the first plan: every WAN offline, new connections over all of them', async (t) => {
  const h = pair()
  await h.link.start()
  await h.settle()
  t.same(h.applier.summary(), ['routes', 'load iptables'], 'routes first, then the rules')
  t.same(h.applier.calls[0]!.cmds, routeCommands(h.specs()), 'the routes of every WAN, with its own address')
  const load = h.applier.calls[1]!
  const allDown: WanPlan = { mode: 'allDown', tier: null, active: [{ wan: 1, weight: 3 }, { wan: 2, weight: 1 }] }
  t.equal(load.text, renderWanSet('iptables', h.specs(), allDown).text)
  t.same(load.hooks, iptablesHooks())
  t.same(h.lines, [`wan new connections: ${ALL_DOWN_3_1}`])
  t.equal(h.rounds, 1, 'the first round ran at once')
  for (const [wan, target, address] of [[1, T1, '203.0.113.2'], [2, T2, '203.0.113.18']] as const) {
    const s = h.sockets.get(wan)!
    t.equal(s.address, address, `wan${wan}'s socket is bound to its own address`)
    t.same(s.sent.map((p) => p.to), [{ address: target, port: 53 }], `wan${wan} asked its resolver, on port 53`)
  }
  t.same(h.link.states(), [
    { wan: 1, state: 'offline' },
    { wan: 2, state: 'offline' },
  ])
  const s = h.link.status()
  t.equal(s.plan, ALL_DOWN_3_1)
  t.match(s, { loads: 1, loadFailures: 0, lastLoad: { ok: true, agoMs: 0, error: null }, flushed: 0 })
  t.match(s.wans[1], { wan: 2, interface: 'wan2', address: '203.0.113.18', state: 'offline', forMs: 0, reason: 'no probe round yet', loss: null, latencyMs: null })
  t.match(s.wans[1]!.probes, { wan: 2, targets: [T2], need: 1, openRounds: 1, rounds: 0, sent: 1 })
  await h.link.stop()
})

t.test('status before start says there is no plan yet', async (t) => {
  const h = pair()
  const s = h.link.status()
  t.equal(s.plan, 'none yet')
  t.equal(s.lastLoad, null)
  t.equal(s.loads, 0)
  t.equal(h.clock.armed, 0, 'nothing runs before start')
})

t.test('WANs come online after their good rounds and the plan follows them', async (t) => {
  const h = pair()
  await h.link.start()
  // Rounds every 500 ms, answered in 20 ms: the 5th round (started at 2000) is answered at 2020.
  await h.step(2010)
  t.same(h.link.states().map((w) => w.state), ['offline', 'offline'], '4 good rounds are not enough')
  t.equal(h.link.status().wans[0]!.reason, 'no probe round yet', 'a WAN keeps its reason until it changes')
  t.equal(h.applier.summary().filter((c) => c.startsWith('load')).length, 1)
  await h.step(10)
  t.same(h.link.states().map((w) => w.state), ['online', 'online'])
  t.same(h.grep(/offline->online/), [`wan wan1 wan1 offline->online reason="${UP_FIRST_TIME}"`, `wan wan2 wan2 offline->online reason="${UP_FIRST_TIME}"`])
  t.equal(h.grep(/new connections/).at(-1), 'wan new connections: tier 1: wan1 x3, wan2 x1')
  const loads = h.applier.calls.filter((c) => c.what === 'loadRules')
  t.equal(loads.at(-1)!.text, renderWanSet('iptables', h.specs(), normal(1, [1, 3], [2, 1])).text, 'the rules for the new plan are loaded')
  const s = h.link.status()
  t.equal(s.plan, 'tier 1: wan1 x3, wan2 x1')
  t.equal(s.loads, loads.length)
  t.match(s.wans[0], { state: 'online', forMs: 0, reason: UP_FIRST_TIME, loss: 0, latencyMs: 20 })
  t.match(s.wans[0]!.probes, { rounds: 5, goodRounds: 5, failedRounds: 0, sent: 5, replies: { ok: 5 } })
  await h.step(1000)
  t.equal(h.link.status().wans[0]!.forMs, 1000, 'forMs counts from the change')
  t.equal(h.grep(/new connections/).at(-1), 'wan new connections: tier 1: wan1 x3, wan2 x1', 'a steady state loads nothing')
  t.equal(h.link.status().loads, loads.length)
  await h.link.stop()
})

t.test('a WAN whose resolver stops answering goes offline; its connections go after the new rules are in', async (t) => {
  // lossUp 25 %: two lost rounds in a full window of ten are not yet degraded, so
  // the third one in a row takes the WAN straight from online to offline.
  const h = pair({ probe: { lossUp: 0.25 } })
  await h.link.start()
  await h.step(6000)
  t.same(h.link.states().map((w) => w.state), ['online', 'online'])
  const flushedBefore = h.link.status().flushed
  h.applier.flushCount = 12
  h.applier.hold = true
  h.answering.delete(T2)
  const down = await until(t, h, /wan2 wan2 online->/)
  t.equal(down, 'wan wan2 wan2 online->offline reason="3 probe rounds in a row failed (0 of 1 target answered)"')
  t.equal(h.lines.at(-1), 'wan new connections: tier 1: wan1 x3', 'the plan drops it at once')
  await h.settle()
  const last = h.applier.calls.at(-1)!
  t.equal(last.what, 'loadRules', 'the new rules are being loaded')
  t.equal(last.text, renderWanSet('iptables', h.specs(), normal(1, [1, 3])).text)
  t.notOk(h.grep(/removed its/).some((l) => l.includes('12')), 'no flush while the load runs')
  h.applier.release()
  await h.settle()
  t.same(h.applier.summary().slice(-2), ['load iptables', 'flush 2'], 'flushConnections(2) after the load')
  t.equal(h.lines.at(-1), "wan wan2 offline: removed its 12 connections; other WANs' connections untouched")
  const s = h.link.status()
  t.equal(s.flushed, flushedBefore + 12)
  t.match(s.wans[1], { state: 'offline', reason: '3 probe rounds in a row failed (0 of 1 target answered)', forMs: 0 })
  t.match(s.wans[1]!.probes, { failedRounds: 3 })
  t.equal(s.wans[1]!.loss, 0.3)
  await h.link.stop()
})

t.test('a WAN losing some rounds is degraded and still carries traffic', async (t) => {
  const h = pair()
  await h.link.start()
  await h.step(6000)
  const loads = h.link.status().loads
  h.answering.delete(T2)
  const line = await until(t, h, /wan2 wan2 online->/)
  t.equal(line, 'wan wan2 wan2 online->degraded reason="loss 20% > 10% over the last 10 rounds"', 'the second lost round is past the up threshold')
  t.equal(h.link.status().wans[1]!.state, 'degraded')
  t.equal(h.link.status().loads, loads, 'degraded WANs stay in the plan: nothing to load')
  h.answering.add(T2)
  await h.link.stop()
})

t.test('a WAN with no address says it cannot probe and stays offline', async (t) => {
  const h = pair({ addresses: { wan1: '203.0.113.2' } })
  await h.link.start()
  t.equal(h.lines[0], 'wan wan2 wan2 has no IPv4 address: probes cannot leave through it, counted as failed')
  t.notOk(h.sockets.has(2), 'no socket for it')
  await h.step(5000)
  t.same(h.link.states(), [
    { wan: 1, state: 'online' },
    { wan: 2, state: 'offline' },
  ])
  const s = h.link.status()
  t.equal(s.plan, 'tier 1: wan1 x3')
  t.equal(s.wans[1]!.address, null)
  t.match(s.wans[1]!.reason, /has no IPv4 address: probes cannot leave through it/, 'its reason says why it stays offline')
  t.match(s.wans[1]!.probes, { rounds: 9, goodRounds: 0, failedRounds: 9 }, 'its rounds count as failed')
  t.equal(s.wans[1]!.loss, 1)
  const routes = h.applier.calls[0]!.cmds!
  t.notOk(routes.add.some((a) => a.includes('10102')), 'no source rule without an address')
  t.same(routes, routeCommands(h.specs()))
  await h.link.stop()
})

t.test('a probe socket that cannot be opened is logged; that WAN stays offline', async (t) => {
  const h = pair({ failOpen: new Set(['203.0.113.18']) })
  await h.link.start()
  t.equal(h.lines[0], 'wan wan2: cannot open a probe socket on 203.0.113.18: bind EADDRNOTAVAIL 203.0.113.18')
  await h.step(3000)
  t.same(h.link.states().map((w) => w.state), ['online', 'offline'])
  t.equal(h.link.status().wans[1]!.address, '203.0.113.18', 'it has an address, only no socket')
  await h.link.stop()
})

t.test('sends the OS refuses count as lost rounds, nothing more', async (t) => {
  const h = pair()
  await h.link.start()
  h.sockets.get(2)!.failSends = true
  await h.step(3000)
  t.same(h.link.states().map((w) => w.state), ['online', 'offline'])
  t.equal(h.sockets.get(2)!.sent.length, 1, 'only the first round left')
  t.match(h.link.status().wans[1]!.probes, { goodRounds: 1, failedRounds: 4 })
  await h.link.stop()
})

t.test('datagrams that are no answer to a probe are counted and change nothing', async (t) => {
  const h = pair()
  await h.link.start()
  const s1 = h.sockets.get(1)!
  const q = s1.sent[0]!.bytes
  s1.receive(dnsAnswer(q), '192.0.2.99') // our id from a stranger
  s1.receive(q, T1) // a query, not an answer
  s1.receive(Buffer.alloc(3), T1)
  t.match(h.link.status().wans[0]!.probes.replies, { ok: 0, wrongTarget: 1, notResponse: 1, short: 1 })
  await h.step(20)
  t.match(h.link.status().wans[0]!.probes.replies, { ok: 1 })
  await h.link.stop()
})

t.test('a failing load keeps going: counted, with its error, and the next plan loads', async (t) => {
  const h = pair({ flavour: 'nft' })
  h.applier.failLoad = new Error('Error: Could not process rule: No such file or directory')
  await h.link.start()
  await h.settle()
  t.equal(h.lines.at(-1), 'wan nft rules not loaded, the previous set stays: Error: Could not process rule: No such file or directory')
  t.same(h.applier.calls[1]!.hooks, [], 'nft hooks itself')
  t.match(h.link.status(), { loads: 0, loadFailures: 1, lastLoad: { ok: false, agoMs: 0, error: 'Error: Could not process rule: No such file or directory' } })
  await h.step(500)
  t.equal(h.link.status().lastLoad!.agoMs, 500)
  h.applier.failLoad = null
  await h.step(2000)
  t.equal(h.link.status().plan, 'tier 1: wan1 x3, wan2 x1')
  const loads = h.applier.calls.filter((c) => c.what === 'loadRules')
  t.equal(loads.at(-1)!.text, renderWanSet('nft', h.specs(), normal(1, [1, 3], [2, 1])).text)
  t.match(h.link.status(), { loads: loads.length - 1, loadFailures: 1, lastLoad: { ok: true, error: null } })
  await h.link.stop()
})

t.test('routes that fail are logged and are not a failed rules load', async (t) => {
  const h = pair()
  h.applier.failRoutes = new Error('ip rule add pref 9999 table main suppress_prefixlength 0: RTNETLINK answers: Operation not permitted')
  await h.link.start()
  await h.settle()
  t.same(h.lines.slice(1), ['wan routes failed: ip rule add pref 9999 table main suppress_prefixlength 0: RTNETLINK answers: Operation not permitted'])
  t.match(h.link.status(), { loads: 1, loadFailures: 0, lastLoad: { ok: true } }, 'the rules still load')
  await h.link.stop()
})

t.test('a failing flush is logged and counts nothing', async (t) => {
  const h = pair({ probe: { lossUp: 0.25 } })
  await h.link.start()
  await h.step(6000)
  const before = h.link.status()
  h.applier.failFlush = new Error('conntrack: Operation not permitted')
  h.answering.delete(T2)
  await until(t, h, /wan2 wan2 online->offline/)
  await h.settle()
  t.match(h.lines.at(-1), /^wan removing wan2's connections failed: conntrack: Operation not permitted$/)
  t.match(h.link.status(), { flushed: before.flushed, loadFailures: 0, loads: before.loads + 1, lastLoad: { ok: true } })
  await h.link.stop()
})

t.test('onRound is called after every round', async (t) => {
  const h = pair()
  await h.link.start()
  t.equal(h.rounds, 1)
  await h.step(499)
  t.equal(h.rounds, 1)
  await h.step(1)
  t.equal(h.rounds, 2)
  await h.step(2000)
  t.equal(h.rounds, 6)
  t.same(h.link.states().map((w) => w.state), ['online', 'online'], 'the 5th round has counted by now')
  await h.link.stop()
})

t.test('stop closes the sockets, stops the timers and waits for the queued loads', async (t) => {
  const h = pair()
  h.applier.hold = true
  await h.link.start()
  await h.step(100)
  t.ok(h.clock.armed > 0, 'the round timer is armed')
  let stopped = false
  const stopping = h.link.stop().then(() => void (stopped = true))
  await h.settle()
  t.ok([...h.sockets.values()].every((s) => s.closed), 'every probe socket is closed')
  t.equal(h.clock.armed, 0, 'no round or wake timer is left')
  t.notOk(stopped, 'stop waits for the load in progress')
  h.applier.release()
  await stopping
  t.ok(stopped)
  const rounds = h.rounds
  const calls = h.applier.calls.length
  // A datagram still in flight when the socket closed changes nothing.
  h.sockets.get(1)!.receive(dnsAnswer(h.sockets.get(1)!.sent[0]!.bytes), T1)
  h.clock.advance(10_000)
  t.equal(h.rounds, rounds, 'no more rounds')
  t.equal(h.applier.calls.length, calls, 'no more loads')
  t.equal(h.clock.armed, 0)
  t.same(h.link.states().map((w) => w.state), ['offline', 'offline'])
})

t.test('a tier-2 WAN takes over when tier 1 is all offline, and gives way after the failback hold', async (t) => {
  const h = new WanLinkHarness({ wans: [wanConfig(1, { weight: 2 }), wanConfig(2, { tier: 2 })], probe: { lossUp: 0.25 } })
  h.applier.flushCount = 1
  await h.link.start()
  await h.step(6000)
  t.same(h.link.states().map((w) => w.state), ['online', 'online'])
  t.equal(h.link.status().plan, 'tier 1: wan1 x2', 'tier 2 waits while tier 1 has a healthy WAN')
  const flushesBefore = h.applier.calls.filter((c) => c.what === 'flushConnections').length
  const from = h.lines.length
  h.answering.delete(T1)
  await until(t, h, /wan1 wan1 online->offline/)
  await h.settle()
  t.same(h.lines.slice(from).filter((l) => !l.includes('->')), [
    'wan new connections: tier 2: wan2 x1',
    "wan wan1 offline: removed its 1 connection; other WANs' connections untouched",
  ])
  t.same(h.applier.summary().slice(-2), ['load iptables', 'flush 1'])
  t.equal(h.applier.calls.at(-2)!.text, renderWanSet('iptables', h.specs(), normal(2, [2, 1])).text)
  // Back: 5 good rounds are not enough, the failback hold is 10 s.
  h.answering.add(T1)
  await h.step(5000)
  t.equal(h.link.status().wans[0]!.state, 'offline', 'held back')
  const back = await until(t, h, /wan1 wan1 offline->online/)
  t.match(back, /reason="recovered: \d+ good rounds in a row, healthy for 10\.\ds"/)
  t.equal(h.link.status().plan, 'tier 1: wan1 x2')
  await h.settle()
  const flushes = h.applier.calls.filter((c) => c.what === 'flushConnections').slice(flushesBefore)
  t.same(flushes.map((c) => c.wan), [1], "wan2 left the plan healthy: its connections stay")
  await h.link.stop()
})

t.test('no WANs: no sockets, no probe timers, nothing to carry', async (t) => {
  const h = new WanLinkHarness({ wans: [] })
  await h.link.start()
  await h.settle()
  t.same(h.lines, ['wan new connections: no WAN configured'])
  t.same(h.applier.calls[0]!.cmds, routeCommands([]))
  t.equal(h.sockets.size, 0)
  t.equal(h.clock.armed, 1, 'only the round timer')
  await h.link.stop()
  t.equal(h.clock.armed, 0)
})

t.test('stop while a probe socket is still opening', async (t) => {
  let open: () => void = () => {}
  const gate = new Promise<void>((r) => (open = r))
  const h = pair({ beforeOpen: () => gate })
  const starting = h.link.start()
  await h.link.stop()
  open()
  await starting
  await h.settle()
  t.equal(h.clock.armed, 0, 'no probe round starts after stop')
  t.equal(h.rounds, 0, 'and onRound is never called')
  // Known bug (see the report): start() goes on after the await and neither closes
  // the socket it opened late nor skips the routes and the first rules load.
  t.ok([...h.sockets.values()].every((s) => s.closed), 'a socket opened after stop is closed')
  t.same(h.applier.calls, [], 'nothing is loaded after stop')
})
