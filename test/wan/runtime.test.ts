import t, { type Test } from 'tap'
import { iptablesHooks, renderWanSet, routeCommands } from '../../src/wan/rules/index.js'
import { ownWan, plan as makePlan } from '../../src/wan/policy.js'
import type { WanPlan } from '../../src/wan/types.js'
import { dnsAnswer, WanRuntimeHarness, type WanRuntimeHarnessOptions, wanConfig } from '../helpers/wan-runtime.js'

const T1 = '198.18.1.53' // wan1's resolver
const T2 = '198.18.2.53' // wan2's resolver
const ALL_DOWN_3_1 = 'every WAN is offline: spreading new connections over all of them (wan1 x3, wan2 x1)'
const UP_FIRST_TIME = 'up: 5 good rounds in a row (first time up: no failback hold)'

/** Two WANs in tier 1, weights 3 and 1, resolvers answering in 20 ms. */
function pair(over: Omit<WanRuntimeHarnessOptions, 'wans'> = {}): WanRuntimeHarness {
  return new WanRuntimeHarness({ ...over, wans: [wanConfig(1, { weight: 3 }), wanConfig(2)] })
}

const normal = (tier: number, ...active: [number, number][]): WanPlan => ({ mode: 'normal', tier, active: active.map(([wan, weight]) => ({ wan, weight })) })

/** The WAN the router's own traffic takes under the WANs' states now (policy.ts ownWan). */
function ownNow(h: WanRuntimeHarness): number | null {
  const states = h.link.states()
  return ownWan(makePlan(h.config.wans.map((w, i) => ({ wan: w.wan, tier: w.tier, weight: w.weight, state: states[i]!.state }))))
}

/** What a load after the ip rules went in asks for: the routes alone, no rule deleted or added. */
function routesOnly(h: WanRuntimeHarness): { del: string[][]; add: string[][] } {
  return { del: [], add: routeCommands(h.specs(), ownNow(h)).add.filter((argv) => argv[1] === 'route') }
}

/** Steps until a console line matches `re` (at most `maxMs`), and returns it. */
async function until(t: Test, h: WanRuntimeHarness, re: RegExp, maxMs = 20_000): Promise<string> {
  const from = h.lines.length
  for (let waited = 0; waited < maxMs; waited += 10) {
    const hit = h.lines.slice(from).find((l) => re.test(l))
    if (hit !== undefined) return hit
    await h.step(10)
  }
  t.fail(`no line matching ${re} within ${maxMs} ms`)
  return ''
}

t.test('start loads the first plan, routes first: every WAN offline, new connections over all of them', async (t) => {
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
  t.same(
    h.link.states(),
    [
      { wan: 1, state: 'offline', judged: false },
      { wan: 2, state: 'offline', judged: false },
    ],
    'offline, but not judged yet: no reason to hand the VIPs to the peer',
  )
  const s = h.link.status()
  t.equal(s.plan, ALL_DOWN_3_1, 'the plan in the kernel')
  t.equal(s.wanted, null, 'nothing waits to be loaded')
  t.match(s, { loads: 1, loadFailures: 0, lastLoad: { ok: true, agoMs: 0, error: null }, flushed: 0 })
  t.match(s.wans[1], { wan: 2, interface: 'wan2', address: '203.0.113.18', state: 'offline', forMs: 0, reason: 'no probe round yet', loss: null, latencyMs: null })
  t.match(s.wans[1]!.probes, { wan: 2, targets: [T2], need: 1, openRounds: 1, rounds: 0, sent: 1 })
  await h.link.stop()
})

t.test('status before start says no plan is loaded, and none is wanted yet', async (t) => {
  const h = pair()
  const s = h.link.status()
  t.equal(s.plan, 'none loaded yet')
  t.equal(s.wanted, null)
  t.equal(s.lastLoad, null)
  t.equal(s.loads, 0)
  t.equal(h.clock.armed, 0, 'nothing runs before start')
})

t.test('WANs come online after their good rounds and the plan follows them', async (t) => {
  const h = pair()
  await h.link.start()
  await h.settle()
  // Rounds every 500 ms, answered in 20 ms: the 5th round (started at 2000) is answered at 2020.
  await h.step(2010)
  t.same(h.link.states().map((w) => w.state), ['offline', 'offline'], '4 good rounds are not enough')
  t.equal(h.link.status().wans[0]!.reason, 'no probe round yet', 'a WAN keeps its reason until it changes')
  t.equal(h.applier.summary().filter((c) => c.startsWith('load')).length, 1)
  await h.step(10)
  t.same(h.link.states().map((w) => w.state), ['online', 'online'])
  t.same(h.grep(/offline->online/), [`wan wan1 wan1 offline->online reason="${UP_FIRST_TIME}"`, `wan wan2 wan2 offline->online reason="${UP_FIRST_TIME}"`])
  t.equal(h.grep(/new connections/).at(-1), 'wan new connections: tier 1: wan1 x3, wan2 x1')
  t.same(h.grep(/new connections/).slice(1), ['wan new connections: tier 1: wan1 x3', 'wan new connections: tier 1: wan1 x3, wan2 x1'], "wan1's answer came first")
  t.same(h.applier.summary(), ['routes', 'load iptables', 'routes', 'load iptables', 'routes', 'load iptables'], 'each load puts the routes back first')
  const routes = h.applier.calls.filter((c) => c.what === 'routes')
  t.same(routes.map((c) => c.atMs), [0, 2020, 2020])
  t.same(routes[0]!.cmds, routeCommands(h.specs()), 'the first load: the ip rules, deleted then added, and the routes')
  const again = {
    del: [],
    add: [
      ['ip', 'route', 'replace', 'unreachable', 'default', 'metric', '4294967295', 'table', '101'],
      ['ip', 'route', 'replace', 'default', 'via', '203.0.113.1', 'dev', 'wan1', 'onlink', 'table', '101'],
      ['ip', 'route', 'replace', 'unreachable', 'default', 'metric', '4294967295', 'table', '102'],
      ['ip', 'route', 'replace', 'default', 'via', '203.0.113.17', 'dev', 'wan2', 'onlink', 'table', '102'],
      ['ip', 'route', 'replace', 'default', 'via', '203.0.113.1', 'dev', 'wan1', 'onlink', 'src', '203.0.113.2', 'table', '100'],
    ],
  }
  t.same(routes[1]!.cmds, again, "later loads: only the routes, the ip rules stay as they are; the router's own traffic through wan1")
  t.same(routes[2]!.cmds, again)
  t.same(routesOnly(h), again)
  const loads = h.applier.calls.filter((c) => c.what === 'loadRules')
  t.same(loads.map((c) => c.atMs), [0, 2020, 2020])
  // Each load takes the plan of the moment it runs: both came after the second plan.
  const both = renderWanSet('iptables', h.specs(), normal(1, [1, 3], [2, 1])).text
  t.equal(loads[1]!.text, both, 'the plan of the moment the load runs, not of when it was queued')
  t.equal(loads[2]!.text, both, 'the rules for the new plan are loaded')
  const s = h.link.status()
  t.equal(s.plan, 'tier 1: wan1 x3, wan2 x1')
  t.equal(s.wanted, null)
  t.equal(s.loads, loads.length)
  t.match(s.wans[0], { state: 'online', forMs: 0, reason: UP_FIRST_TIME, loss: null, latencyMs: null }, 'its window starts as it comes up')
  t.match(s.wans[0]!.probes, { rounds: 5, goodRounds: 5, failedRounds: 0, sent: 5, replies: { ok: 5 } })
  await h.step(1000)
  t.equal(h.link.status().wans[0]!.forMs, 1000, 'forMs counts from the change')
  t.equal(h.grep(/new connections/).at(-1), 'wan new connections: tier 1: wan1 x3, wan2 x1', 'a steady state loads nothing')
  t.equal(h.link.status().loads, loads.length)
  await h.link.stop()
})

t.test('a WAN whose resolver stops answering goes offline; its connections go after the new rules are in', async (t) => {
  // Two lost rounds in a full window of ten (20 %) are not yet degraded (50 %), so
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
  t.same(h.applier.summary().slice(-2), ['routes', 'load iptables'], 'the routes, then the new rules are being loaded')
  const last = h.applier.calls.at(-1)!
  t.equal(last.text, renderWanSet('iptables', h.specs(), normal(1, [1, 3])).text)
  t.notOk(h.applier.calls.some((c) => c.what === 'flushConnections'), 'no flush while the load runs')
  t.match(h.link.status(), { plan: 'tier 1: wan1 x3, wan2 x1', wanted: 'tier 1: wan1 x3' }, 'the kernel still has the old plan')
  h.applier.release()
  await h.settle()
  t.same(h.applier.summary().slice(-3), ['routes', 'load iptables', 'flush 2'], 'flushConnections(2) after the load')
  t.equal(h.lines.at(-1), "wan wan2 offline: removed its 12 connections; other WANs' connections untouched")
  const s = h.link.status()
  t.match(s, { plan: 'tier 1: wan1 x3', wanted: null })
  t.equal(s.flushed, flushedBefore + 12)
  t.match(s.wans[1], { state: 'offline', reason: '3 probe rounds in a row failed (0 of 1 target answered)', forMs: 0 })
  t.match(s.wans[1]!.probes, { failedRounds: 3 })
  t.equal(s.wans[1]!.loss, null, 'offline: no numbers of a line that is dead now')
  await h.link.stop()
})

t.test('a WAN losing some rounds is degraded and still carries traffic, at half its weight', async (t) => {
  const h = pair({ probe: { lossDown: 0.3, lossUp: 0.1 } })
  await h.link.start()
  await h.step(6000)
  const loads = h.link.status().loads
  // One round in three lost: never three in a row, a third of the window.
  for (let i = 0; i < 12 && h.link.status().wans[1]!.state === 'online'; i++) {
    if (i % 3 === 0) h.answering.delete(T2)
    else h.answering.add(T2)
    await h.step(500)
  }
  const line = h.grep(/wan2 wan2 online->/).at(-1)
  t.match(line, /^wan wan2 wan2 online->degraded reason="loss 3\d(\.\d)?% >= 30% over the last \d+ rounds"$/)
  t.equal(h.grep(/new connections/).at(-1), 'wan new connections: tier 1: wan1 x6, wan2 x1', 'half its weight')
  await h.settle()
  t.equal(h.link.status().loads, loads + 1, 'the new weights are loaded')
  t.notOk(h.applier.calls.some((c) => c.what === 'flushConnections'), 'its connections stay')
  h.answering.add(T2)
  await h.link.stop()
})

t.test('a WAN with no address says it cannot probe and stays offline', async (t) => {
  const h = pair({ addresses: { wan1: '203.0.113.2' } })
  await h.link.start()
  t.equal(h.lines[0], 'wan wan2 wan2 has no IPv4 address: probes cannot leave through it, counted as failed')
  t.notOk(h.sockets.has(2), 'no socket for it')
  await h.step(5000)
  t.same(
    h.link.states(),
    [
      { wan: 1, state: 'online', judged: true },
      { wan: 2, state: 'offline', judged: true },
    ],
    'wan2 never came up, but its failed rounds in a row are a verdict',
  )
  const s = h.link.status()
  t.equal(s.plan, 'tier 1: wan1 x3')
  t.equal(s.wans[1]!.address, null)
  t.match(s.wans[1]!.reason, /has no IPv4 address: probes cannot leave through it/, 'its reason says why it stays offline')
  t.match(s.wans[1]!.probes, { rounds: 9, goodRounds: 0, failedRounds: 9 }, 'its rounds count as failed')
  t.equal(s.wans[1]!.loss, null, 'a WAN never up has no window yet: its failed rounds are in the counters')
  const routes = h.applier.calls[0]!.cmds!
  t.notOk(routes.add.some((a) => a.includes('10102')), 'no source rule without an address')
  t.same(routes, routeCommands(h.specs()), 'the first load, every WAN still offline: the own traffic left to the main table')
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

const NFT_ERROR = 'Error: Could not process rule: No such file or directory'

t.test('a failing load keeps going: counted, with its error; a new plan loads at once, without waiting for the retry', async (t) => {
  const h = pair({ flavour: 'nft' })
  h.applier.failLoad = new Error(NFT_ERROR)
  await h.link.start()
  await h.settle()
  t.equal(h.lines.at(-1), `wan nft rules not loaded, the previous set stays (again in 5s): ${NFT_ERROR}`)
  t.same(h.applier.summary(), ['routes', 'load nft'])
  t.same(h.applier.calls[1]!.hooks, [], 'nft hooks itself')
  t.match(h.link.status(), {
    plan: 'none loaded yet',
    wanted: ALL_DOWN_3_1,
    loads: 0,
    loadFailures: 1,
    lastLoad: { ok: false, agoMs: 0, error: NFT_ERROR },
  })
  await h.step(500)
  t.equal(h.link.status().lastLoad!.agoMs, 500)
  h.applier.failLoad = null
  await h.step(2000)
  // Both WANs came up at 2020 (one plan each): loaded then, not at 5000.
  t.same(h.applier.summary(), ['routes', 'load nft', 'routes', 'load nft', 'routes', 'load nft'])
  const loads = h.applier.calls.filter((c) => c.what === 'loadRules')
  t.same(loads.map((c) => c.atMs), [0, 2020, 2020])
  t.equal(loads.at(-1)!.text, renderWanSet('nft', h.specs(), normal(1, [1, 3], [2, 1])).text)
  t.match(h.link.status(), { plan: 'tier 1: wan1 x3, wan2 x1', wanted: null, loads: 2, loadFailures: 1, lastLoad: { ok: true, error: null } })
  await h.step(10_000)
  t.equal(h.applier.calls.length, 6, 'the retry of the failed load was called off by the one that followed')
  await h.link.stop()
})

t.test('a failed load is tried again every 5 s, routes first, until it goes in', async (t) => {
  const h = pair()
  h.answering.clear() // every WAN stays offline: the plan never changes
  h.applier.failLoad = new Error('iptables-restore: line 7 failed')
  const allDown: WanPlan = { mode: 'allDown', tier: null, active: [{ wan: 1, weight: 3 }, { wan: 2, weight: 1 }] }
  await h.link.start()
  await h.settle()
  t.same(h.applier.summary(), ['routes', 'load iptables'])
  await h.step(4990)
  t.equal(h.applier.calls.length, 2, 'nothing before 5 s')
  await h.step(10)
  t.same(h.applier.summary(), ['routes', 'load iptables', 'routes', 'load iptables'], 'the whole load again: routes, then the rules')
  t.same(h.applier.calls.slice(2).map((c) => c.atMs), [5000, 5000])
  t.same(h.applier.calls[2]!.cmds, routesOnly(h), 'the ip rules went in at the first load')
  t.equal(h.applier.calls[3]!.text, renderWanSet('iptables', h.specs(), allDown).text)
  t.same(h.grep(/rules not loaded/), [
    'wan iptables rules not loaded, the previous set stays (again in 5s): iptables-restore: line 7 failed',
    'wan iptables rules not loaded, the previous set stays (again in 5s): iptables-restore: line 7 failed',
  ])
  t.match(h.link.status(), { plan: 'none loaded yet', wanted: ALL_DOWN_3_1, loads: 0, loadFailures: 2, lastLoad: { ok: false, agoMs: 0 } })
  h.applier.failLoad = null
  await h.step(5000)
  t.same(h.applier.calls.map((c) => c.atMs), [0, 0, 5000, 5000, 10_000, 10_000])
  t.match(h.link.status(), { plan: ALL_DOWN_3_1, wanted: null, loads: 1, loadFailures: 2, lastLoad: { ok: true, agoMs: 0, error: null } })
  await h.step(20_000)
  t.equal(h.applier.calls.length, 6, 'once in, nothing more to load')
  t.same(h.lines.filter((l) => !l.includes('rules not loaded')), [`wan new connections: ${ALL_DOWN_3_1}`], 'the plan is announced once')
  await h.link.stop()
})

t.test('the retry loads the plan of its moment, and a WAN that came back meanwhile keeps its connections', async (t) => {
  const h = pair({ probe: { lossUp: 0.25 } })
  h.applier.flushCount = 5
  await h.link.start()
  await h.step(6000)
  t.equal(h.link.status().plan, 'tier 1: wan1 x3, wan2 x1')
  h.applier.failLoad = new Error('iptables-restore: line 7 failed')
  h.answering.delete(T2)
  await until(t, h, /wan2 wan2 online->offline/)
  await h.settle()
  t.equal(h.lines.at(-1), 'wan iptables rules not loaded, the previous set stays (again in 5s): iptables-restore: line 7 failed')
  t.match(h.link.status(), { plan: 'tier 1: wan1 x3, wan2 x1', wanted: 'tier 1: wan1 x3' }, 'the kernel keeps the old plan')
  t.notOk(h.applier.calls.some((c) => c.what === 'flushConnections'), 'no flush: new connections still go to wan2')
  // wan2 answers again and is back (after its failback hold) while the loads keep failing.
  h.answering.add(T2)
  await until(t, h, /wan2 wan2 offline->online/)
  await h.settle()
  t.match(h.link.status(), { plan: 'tier 1: wan1 x3, wan2 x1', wanted: null }, 'the plan wanted is the one in the kernel again')
  h.applier.failLoad = null
  const from = h.applier.calls.length
  await h.step(5000)
  t.same(h.applier.summary().slice(from), ['routes', 'load iptables'], 'the retry: routes, rules, and no flush of wan2')
  t.equal(h.applier.calls.at(-1)!.text, renderWanSet('iptables', h.specs(), normal(1, [1, 3], [2, 1])).text, 'with wan2 in it')
  t.notOk(h.applier.calls.some((c) => c.what === 'flushConnections'), 'wan2 is in the loaded plan: its connections stay')
  t.match(h.link.status(), { plan: 'tier 1: wan1 x3, wan2 x1', wanted: null, flushed: 0, lastLoad: { ok: true } })
  await h.link.stop()
})

t.test("a WAN's connections go after the retry that finally loads the rules without it", async (t) => {
  const h = pair({ probe: { lossUp: 0.25 } })
  h.applier.flushCount = 3
  await h.link.start()
  await h.step(6000)
  h.applier.failLoad = new Error('iptables-restore: line 7 failed')
  h.answering.delete(T2)
  await until(t, h, /wan2 wan2 online->offline/)
  await h.settle()
  const failedAt = h.applier.calls.at(-1)!.atMs
  t.notOk(h.applier.calls.some((c) => c.what === 'flushConnections'))
  h.applier.failLoad = null
  await h.step(5000)
  t.same(h.applier.summary().slice(-3), ['routes', 'load iptables', 'flush 2'], 'the flush follows the load that went in')
  t.same(h.applier.calls.slice(-3).map((c) => c.atMs), [failedAt + 5000, failedAt + 5000, failedAt + 5000])
  t.equal(h.applier.calls.at(-2)!.text, renderWanSet('iptables', h.specs(), normal(1, [1, 3])).text)
  t.equal(h.lines.at(-1), "wan wan2 offline: removed its 3 connections; other WANs' connections untouched")
  t.match(h.link.status(), { plan: 'tier 1: wan1 x3', wanted: null, flushed: 3, loadFailures: 1 })
  await h.step(10_000)
  t.equal(h.applier.calls.filter((c) => c.what === 'flushConnections').length, 1, 'flushed once')
  await h.link.stop()
})

t.test('a WAN that goes offline while every WAN is down keeps its connections: it is still in the plan', async (t) => {
  const h = pair({ probe: { lossUp: 0.25 } })
  h.applier.flushCount = 2
  await h.link.start()
  await h.step(6000)
  h.answering.delete(T1)
  await until(t, h, /wan1 wan1 online->offline/)
  await h.settle()
  t.same(h.applier.summary().slice(-3), ['routes', 'load iptables', 'flush 1'])
  h.answering.delete(T2)
  await until(t, h, /wan2 wan2 online->offline/)
  await h.settle()
  t.equal(h.grep(/new connections/).at(-1), `wan new connections: ${ALL_DOWN_3_1}`)
  t.same(h.applier.summary().slice(-2), ['routes', 'load iptables'], 'the all-down plan loads; no flush of wan2')
  t.match(h.link.status(), { plan: ALL_DOWN_3_1, flushed: 2 })
  await h.link.stop()
})

const ROUTE_ERROR = 'ip route replace default via 203.0.113.17 dev wan2 onlink table 102: Error: Nexthop has invalid gateway.'

t.test('routes that fail are logged and are not a failed rules load; every load tries the routes again', async (t) => {
  const h = pair()
  h.applier.failRoutes = new Error(ROUTE_ERROR)
  await h.link.start()
  await h.settle()
  t.same(h.lines.slice(1), [`wan routes not all loaded: ${ROUTE_ERROR}`])
  t.same(h.applier.summary(), ['routes', 'load iptables'], 'the rules still load')
  t.match(h.link.status(), { plan: ALL_DOWN_3_1, wanted: null, loads: 1, loadFailures: 0, lastLoad: { ok: true } })
  t.equal(h.clock.armed, 3, 'no retry for routes: the round, the wake and the self-repair timers only')
  await h.step(1000)
  t.equal(h.applier.calls.length, 2)
  h.applier.failRoutes = null
  await h.step(1020) // both WANs up at 2020: two plans, two loads
  t.same(h.applier.summary(), ['routes', 'load iptables', 'routes', 'load iptables', 'routes', 'load iptables'])
  const routes = h.applier.calls.filter((c) => c.what === 'routes')
  t.same(routes[1]!.cmds, routesOnly(h), 'a route failed, not an ip rule: the rules are in, only the routes again')
  t.same(routes[2]!.cmds, routesOnly(h), 'once a call went through, the routes alone')
  t.equal(h.grep(/routes not all loaded/).length, 1, 'only the failure is logged')
  t.match(h.link.status(), { plan: 'tier 1: wan1 x3, wan2 x1', loads: 3, loadFailures: 0 })
  await h.link.stop()
})

t.test('a route that failed is tried again with every self-repair check, logged once, and checked for drift once in', async (t) => {
  const h = pair()
  const failing = ['ip', 'route', 'replace', 'default', 'via', '203.0.113.17', 'dev', 'wan2', 'onlink', 'table', '102']
  h.applier.failRoutes = Object.assign(new Error(ROUTE_ERROR), { failed: [failing] })
  const routeCalls = (): { atMs: number; cmds: { del: string[][]; add: string[][] } }[] =>
    h.applier.calls.filter((c) => c.what === 'routes') as { atMs: number; cmds: { del: string[][]; add: string[][] } }[]
  const retries = (): number[] => routeCalls().filter((c) => c.cmds.add.length === 1 && c.cmds.add[0]!.join(' ') === failing.join(' ')).map((c) => c.atMs)
  await h.link.start()
  await h.settle()
  t.same(h.lines.slice(1), [`wan routes not all loaded: ${ROUTE_ERROR}`])
  await h.step(6000) // the WANs come up (their plans load the routes again, failing the same way), and two checks pass
  t.same(retries(), [3000, 6000], 'the failed add alone, with each self-repair check')
  const checked = (): boolean => h.applier.driftRoutes.at(-1)!.some((argv) => argv.join(' ') === failing.join(' '))
  t.notOk(checked(), 'a route that is not in is no drift')
  t.ok(h.applier.driftRoutes.at(-1)!.some((argv) => argv.includes('table') && argv.includes('101')), 'the routes that went in are checked')
  t.ok(routeCalls().every((c) => c.cmds.del.length === 0 || c.atMs === 0), 'nothing deleted after the first load')
  t.equal(h.grep(/routes not all loaded/).length, 1, 'a failure that stays is logged once')
  h.applier.failRoutes = null
  await h.step(3000)
  t.same(retries(), [3000, 6000, 9000])
  t.same(h.grep(/routes all loaded now/).length, 1, 'the recovery is one line')
  const checksBefore = h.applier.driftChecks
  await h.step(6000)
  t.same(retries(), [3000, 6000, 9000], 'not tried again once in')
  t.ok(h.applier.driftChecks > checksBefore, 'the self-repair check goes on')
  t.ok(checked(), 'and now checks the route that went in')
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
  t.same(h.applier.summary(), ['routes', 'load iptables'], 'the first load is held')
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
  t.match(h.link.status(), { plan: ALL_DOWN_3_1, loads: 1 }, 'the load in progress finished')
})

t.test('stop calls off a pending retry', async (t) => {
  const h = new WanRuntimeHarness({ wans: [] })
  h.applier.failLoad = new Error('iptables-restore: line 1 failed')
  await h.link.start()
  await h.settle()
  t.equal(h.clock.armed, 3, 'the round timer, the self-repair check and the retry')
  await h.link.stop()
  t.equal(h.clock.armed, 0, 'all called off')
  h.clock.advance(10_000)
  await h.settle()
  t.same(h.applier.summary(), ['routes', 'load iptables', 'routes'], "no retry after stop; the router's own traffic handed back to the main table")
  t.same(h.applier.calls.at(-1)!.cmds, { del: [], add: [['ip', 'route', 'replace', 'throw', 'default', 'table', '100']] })
})

t.test('a load that fails after stop arms no retry; a load queued behind it does not run', async (t) => {
  const h = pair({ probe: { lossUp: 0.25 } })
  await h.link.start()
  await h.step(6000)
  h.applier.hold = true
  h.applier.failLoad = new Error('iptables-restore: line 1 failed')
  h.answering.delete(T2)
  await until(t, h, /wan2 wan2 online->offline/)
  await h.settle()
  const calls = h.applier.calls.length
  t.same(h.applier.summary().slice(-2), ['routes', 'load iptables'], 'held')
  h.answering.delete(T1)
  await until(t, h, /wan1 wan1 online->offline/)
  await h.settle()
  t.equal(h.lines.at(-1), `wan new connections: ${ALL_DOWN_3_1}`, 'a second load queued behind the held one')
  t.equal(h.applier.calls.length, calls, 'it waits')
  const stopping = h.link.stop()
  await h.settle()
  h.applier.release()
  await stopping
  t.equal(h.lines.at(-1), 'wan iptables rules not loaded, the previous set stays (again in 5s): iptables-restore: line 1 failed')
  t.equal(h.clock.armed, 0, 'no retry armed')
  h.clock.advance(10_000)
  await h.settle()
  t.same(h.applier.summary().slice(calls), ['routes'], "nothing ran after stop but handing the router's own traffic back to the main table")
  t.match(h.link.status(), { plan: 'tier 1: wan1 x3, wan2 x1', wanted: ALL_DOWN_3_1, loadFailures: 1 })
})

t.test('a tier-2 WAN takes over when tier 1 is all offline, and gives way after the failback hold', async (t) => {
  const h = new WanRuntimeHarness({ wans: [wanConfig(1, { weight: 2 }), wanConfig(2, { tier: 2 })], probe: { lossUp: 0.25 } })
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
  t.match(back, /reason="recovered: \d+ good rounds in a row, alive for 10\.\ds"/)
  t.equal(h.link.status().plan, 'tier 1: wan1 x2')
  await h.settle()
  const flushes = h.applier.calls.filter((c) => c.what === 'flushConnections').slice(flushesBefore)
  t.same(flushes.map((c) => c.wan), [1], "wan2 left the plan healthy: its connections stay")
  await h.link.stop()
})

t.test('no WANs: no sockets, no probe timers, nothing to carry', async (t) => {
  const h = new WanRuntimeHarness({ wans: [] })
  await h.link.start()
  await h.settle()
  t.same(h.lines, ['wan new connections: no WAN configured'])
  t.same(h.applier.summary(), ['routes', 'load iptables'])
  t.same(h.applier.calls[0]!.cmds, routeCommands([]))
  t.match(h.link.status(), { plan: 'no WAN configured', wanted: null, loads: 1 })
  t.equal(h.sockets.size, 0)
  t.equal(h.clock.armed, 2, 'only the round timer and the self-repair check')
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
  t.ok([...h.sockets.values()].every((s) => s.closed), 'a socket opened after stop is closed')
  t.same(h.applier.calls, [], 'nothing is loaded after stop')
})

t.test('stop while the last probe socket fails to open: nothing loaded, no round', async (t) => {
  let open: () => void = () => {}
  const gate = new Promise<void>((r) => (open = r))
  const h = pair({ failOpen: new Set(['203.0.113.2', '203.0.113.18']), beforeOpen: () => gate })
  const starting = h.link.start()
  await h.link.stop()
  open()
  await starting
  await h.settle()
  t.equal(h.grep(/cannot open a probe socket/).length, 2, 'both logged')
  t.equal(h.sockets.size, 0)
  t.same(h.applier.calls, [], 'nothing is loaded after stop')
  t.equal(h.rounds, 0)
  t.equal(h.clock.armed, 0)
  t.match(h.link.status(), { plan: 'none loaded yet', wanted: null })
})

t.test('an ip rule that fails to go in is tried again with the next load, the rules deleted first', async (t) => {
  const h = pair()
  h.applier.failRoutes = new Error('ip rule add pref 10001 fwmark 0x100/0xff00 table 101: RTNETLINK answers: Operation not permitted')
  await h.link.start()
  await h.settle()
  h.applier.failRoutes = null
  await h.step(2020)
  const routes = h.applier.calls.filter((c) => c.what === 'routes')
  t.same(routes[1]!.cmds, routeCommands(h.specs(), ownNow(h)), 'the whole set again: delete, then add')
  t.same(routes.at(-1)!.cmds, routesOnly(h), 'once in, only the routes')
  await h.link.stop()
})

t.test('a lossy WAN keeps its connections and new ones at half weight; a dead one loses them', async (t) => {
  const h = pair()
  await h.link.start()
  await until(t, h, /new connections: tier 1: wan1 x3, wan2 x1/)
  const target = h.config.wans[1]!.probes[0]!
  // Every other round lost: 50 % loss degrades wan2, but never 3 in a row.
  for (let i = 0; i < 24; i++) {
    if (i % 2 === 0) h.answering.delete(target)
    else h.answering.add(target)
    await h.step(500)
  }
  t.equal(h.link.status().wans[1]!.state, 'degraded', 'degraded by loss, never offline')
  t.equal(h.grep(/new connections/).at(-1), 'wan new connections: tier 1: wan1 x6, wan2 x1')
  t.notOk(h.applier.calls.some((c) => c.what === 'flushConnections'), 'its connections stay: a lossy line is not a dead one')
  h.answering.delete(target)
  await until(t, h, /wan2 offline: removed its \d+ connections/)
  t.same(h.applier.calls.filter((c) => c.what === 'flushConnections').map((c) => c.wan), [2], 'dead (3 rounds in a row failed): drained once')
  await h.step(3000)
  t.equal(h.applier.calls.filter((c) => c.what === 'flushConnections').length, 1, 'not again while it stays dead')
  await h.link.stop()
})

t.test('a WAN that gets a new address (DHCP) is probed from it, and its routes and SNAT follow', async (t) => {
  const h = pair()
  await h.link.start()
  await until(t, h, /new connections: tier 1: wan1 x3, wan2 x1/)
  const before = h.sockets.get(2)!
  const calls = h.applier.calls.length
  h.addresses.wan2 = '203.0.113.99'
  await until(t, h, /wan2 wan2 address 203\.0\.113\.18 -> 203\.0\.113\.99/, 6000)
  await h.step(100)
  t.ok(before.closed, 'the old socket is closed')
  t.equal(h.sockets.get(2)!.address, '203.0.113.99', 'a new one is bound to the new address')
  const after = h.applier.calls.slice(calls)
  t.same(after.map((c) => c.what), ['routes', 'loadRules'], 'routes and rules loaded again')
  t.same(after[0]!.cmds, routeCommands(h.specs(), ownNow(h)), 'the ip rules deleted and added again (the source rule names the address)')
  t.match(after[1]!.text, /-o wan2 -m mark --mark 0x200\/0xff00 -j SNAT --to-source 203\.0\.113\.99/)
  h.addresses.wan2 = undefined as unknown as string
  delete h.addresses.wan2
  await until(t, h, /wan2 wan2 address 203\.0\.113\.99 -> none/, 6000)
  await h.step(100)
  t.match(h.applier.calls.at(-1)!.text, /-o wan2 -m mark --mark 0x200\/0xff00 -j MASQUERADE/, 'no address: MASQUERADE')
  await h.link.stop()
})

t.test('reload: a kept WAN keeps its health and socket under new thresholds and weights; rules load again', async (t) => {
  const h = pair()
  await h.link.start()
  await h.step(6000)
  t.same(h.link.states().map((w) => w.state), ['online', 'online'])
  const socket = h.sockets.get(1)!
  const loads = h.applier.calls.filter((c) => c.what === 'loadRules').length
  const next = { ...h.config, wans: [wanConfig(1, { weight: 5 }), wanConfig(2)], wanProbe: { ...h.config.wanProbe, lossUp: 0.2 } }
  t.same(h.link.reload(next), ['wan1 settings changed', 'wan.probe settings changed: they judge the next rounds'])
  await h.settle()
  t.same(h.link.states().map((w) => w.state), ['online', 'online'], 'no WAN starts over')
  t.equal(h.sockets.get(1), socket, 'the same probe socket')
  t.notOk(socket.closed)
  t.equal(h.applier.calls.filter((c) => c.what === 'loadRules').length, loads + 1, 'the rules loaded again')
  t.match(h.link.status(), { plan: 'tier 1: wan1 x5, wan2 x1' })
  t.same(h.link.reload(next), [], 'the same settings again change nothing')
  await h.step(3000)
  t.same(h.link.states().map((w) => w.state), ['online', 'online'], 'probing goes on')
  await h.link.stop()
})

t.test('reload: a removed WAN loses its rules, table and connections; an added one starts as at boot', async (t) => {
  const h = new WanRuntimeHarness({ wans: [wanConfig(1), wanConfig(2)], addresses: { wan1: '203.0.113.2', wan2: '203.0.113.18', wan3: '203.0.113.34' } })
  await h.link.start()
  await h.step(6000)
  h.applier.flushCount = 4
  const next = { ...h.config, wans: [wanConfig(1), wanConfig(3)] }
  h.answering.add('198.18.3.53')
  t.same(h.link.reload(next), ['wan3 on wan3 added: probing starts', 'wan2 removed: its rules, routes and connections go'])
  await h.settle()
  t.ok(h.sockets.get(2)!.closed, "wan2's probe socket closed")
  const routes = h.applier.calls.filter((c) => c.what === 'routes').at(-1)!
  t.same(routes.cmds!.del.slice(0, 4), [['ip', 'rule', 'del', 'pref', '10002'], ['ip', 'rule', 'del', 'pref', '10102'], ['ip', 'rule', 'del', 'pref', '10202'], ['ip', 'route', 'flush', 'table', '102']], "wan2's rules and table first")
  t.ok(routes.cmds!.add.some((argv) => argv.join(' ').includes('table 103')), "wan3's routes go in")
  t.match(h.grep(/wan2 removed from the configuration/), ["wan wan2 removed from the configuration: removed its 4 connections; other WANs' connections untouched"])
  t.match(h.link.status().wans.map((w) => [w.wan, w.state]), [[1, 'online'], [3, 'offline']])
  await h.step(6000)
  t.match(h.link.status().wans.map((w) => [w.wan, w.state]), [[1, 'online'], [3, 'online']], 'wan3 comes up after its good rounds')
  t.match(h.link.status(), { plan: 'tier 1: wan1 x1, wan3 x1' })
  await h.link.stop()
})

t.test('after a takeover, the connections of a WAN dead on this board go; not those of one not yet judged', async (t) => {
  const h = pair()
  await h.link.start()
  await h.link.promoted()
  t.notOk(h.applier.calls.some((c) => c.what === 'flushConnections'), 'at boot nothing is judged dead yet')
  await h.step(6000)
  await h.link.promoted()
  t.notOk(h.applier.calls.some((c) => c.what === 'flushConnections'), 'both WANs up: nothing to remove')
  h.answering.delete(T2)
  await until(t, h, /wan2 offline: removed its/)
  h.applier.flushCount = 7
  await h.link.promoted()
  t.same(h.applier.summary().slice(-1), ['flush 2'])
  t.equal(h.lines.at(-1), "wan wan2 offline after the takeover: removed its 7 connections; other WANs' connections untouched")
  await h.link.stop()
})

t.test('an offline WAN that answers one round and fails again is drained again (a takeover may have loaded its connections between)', async (t) => {
  const h = pair()
  await h.link.start()
  await h.step(6000)
  h.answering.delete(T2)
  await until(t, h, /wan2 offline: removed its/)
  const flushes = () => h.applier.calls.filter((c) => c.what === 'flushConnections').length
  t.equal(flushes(), 1)
  const { intervalMs, downRounds, upRounds } = h.config.wanProbe
  t.ok(upRounds > 1, 'one good round does not bring it back')
  h.answering.add(T2)
  await h.step(intervalMs)
  h.answering.delete(T2)
  await h.step(intervalMs * (downRounds + 1))
  t.equal(h.link.status().wans[1]!.state, 'offline', 'it stayed offline throughout')
  t.equal(flushes(), 2, 'judged dead again: drained again')
  await h.step(intervalMs * (downRounds + 1))
  t.equal(flushes(), 2, 'not again while it stays dead')
  await h.link.stop()
})

t.test('a takeover asks which peer connections not to load: those marked for a WAN judged dead here, while the rules avoid it', async (t) => {
  const h = pair()
  const deadFor = (mark: number) => h.link.deadFor()?.({ mark }) ?? null
  await h.link.start()
  t.equal(h.link.deadFor(), null, 'at boot nothing is judged dead yet: nothing to ask about')
  await h.step(6000)
  t.equal(h.link.deadFor(), null, 'both WANs up')
  h.answering.delete(T2)
  await until(t, h, /wan2 offline: removed its/)
  t.equal(deadFor(0x200), 'wan2 is offline here')
  t.equal(deadFor(0x10207), 'wan2 is offline here', 'only the WAN bits of the mark count')
  t.same([deadFor(0x100), deadFor(0), deadFor(0x900)], [null, null, null], 'a live WAN, no WAN, an unknown WAN')
  h.answering.delete(T1)
  await until(t, h, /wan1 (online|degraded)->offline/)
  await h.settle()
  t.equal(h.link.deadFor(), null, 'every WAN down: the rules use them all again, and their connections stay')
  await h.link.stop()
})

t.test('self-repair: rules, jumps or routes removed by someone else go in again within a check; each repair counted', async (t) => {
  const h = pair()
  await h.link.start()
  await h.step(6000)
  const checks = h.applier.driftChecks
  t.ok(checks >= 1, `checked every few seconds (${checks} checks in 6 s)`)
  const loads = h.applier.calls.filter((c) => c.what === 'loadRules').length
  h.applier.missing = ['jump in mangle PREROUTING']
  await h.step(3100)
  t.equal(h.link.status().repairs, 1)
  t.match(h.grep(/repair:/), ['wan repair: jump in mangle PREROUTING gone (removed by someone else): loading the rules and routes again'])
  t.equal(h.applier.calls.filter((c) => c.what === 'loadRules').length, loads + 1, 'the rules loaded again')
  const routes = h.applier.calls.filter((c) => c.what === 'routes').at(-1)!
  t.same(routes.cmds!.del, [], 'a missing jump needs no ip rule deleted')
  h.applier.missing = ['ip rule 10001']
  await h.step(3100)
  t.equal(h.link.status().repairs, 2)
  const all = routeCommands(h.specs(), ownNow(h)).add
  t.same(h.applier.calls.filter((c) => c.what === 'routes').at(-1)!.cmds, { del: [], add: [...all.filter((argv) => argv[1] === 'rule' && argv[4] === '10001'), ...all.filter((argv) => argv[1] === 'route')] }, 'a missing ip rule: that one added alone, no other deleted')
  h.applier.failDrift = new Error('ip: command timed out')
  await h.step(3100)
  t.match(h.grep(/self-repair check failed/), ['wan self-repair check failed: ip: command timed out'])
  t.equal(h.link.status().repairs, 2, 'a failed check repairs nothing')
  h.applier.failDrift = null
  // A failed probe round (our route gone?) asks for a check at once, not 3 s later.
  h.answering.delete(T1)
  const failed = h.link.status().wans[0]!.probes.failedRounds
  for (let i = 0; i < 300 && h.link.status().wans[0]!.probes.failedRounds === failed; i++) await h.step(10)
  t.equal(h.applier.driftAt.at(-1), h.clock.now(), 'checked in the instant of the failed round')
  h.answering.add(T1)
  await h.link.stop()
  const after = h.applier.driftChecks
  await h.step(10_000)
  t.equal(h.applier.driftChecks, after, 'no check after stop')
})

t.test('a WAN that never came up is judged after twice up.rounds + down.rounds rounds, even one that never fails 3 in a row', async (t) => {
  const h = pair()
  const { upRounds, downRounds, intervalMs } = h.config.wanProbe
  // Every other round lost, from the start: never 5 good in a row (up), never 3 failed (dead).
  const alternate = async (rounds: number): Promise<void> => {
    for (let i = 0; i < rounds; i++) {
      for (const w of h.config.wans) for (const p of w.probes) (h.rounds % 2 === 0 ? h.answering.delete(p) : h.answering.add(p))
      await h.step(intervalMs)
    }
  }
  await h.link.start()
  await alternate(upRounds + downRounds + 1)
  t.same(h.link.states().map((w) => [w.state, w.judged]), [['offline', false], ['offline', false]], 'one run in: still waiting for a verdict')
  await alternate(upRounds + downRounds + 2)
  t.same(h.link.states().map((w) => [w.state, w.judged]), [['offline', true], ['offline', true]], 'two runs in: offline is a verdict (the pair may hand the VIPs over)')
  h.link.reload({ ...h.config, wans: [wanConfig(1, { weight: 3, probes: ['198.18.1.54'] }), wanConfig(2)] })
  await h.step(10)
  t.same(h.link.states().map((w) => w.judged), [true, true], 'new probe targets do not start the grace again (review)')
  await h.link.stop()
})

t.test("the router's own traffic follows the plan: off a dead WAN within its detection, back with the failback", async (t) => {
  const h = pair({ probe: { failbackHoldMs: 2000 } })
  const ownRoute = (): string[] | undefined =>
    h.applier.calls
      .filter((c) => c.what === 'routes')
      .at(-1)!
      .cmds!.add.find((argv) => argv[1] === 'route' && argv.at(-1) === '100')
  await h.link.start()
  await until(t, h, /new connections: tier 1: wan1 x3, wan2 x1/)
  await h.settle()
  t.same(ownRoute(), ['ip', 'route', 'replace', 'default', 'via', '203.0.113.1', 'dev', 'wan1', 'onlink', 'src', '203.0.113.2', 'table', '100'])
  const cutMs = h.clock.now()
  h.answering.delete(T1)
  await until(t, h, /new connections: tier 1: wan2 x1$/)
  await h.settle()
  t.same(ownRoute(), ['ip', 'route', 'replace', 'default', 'via', '203.0.113.17', 'dev', 'wan2', 'onlink', 'src', '203.0.113.18', 'table', '100'], 'through wan2')
  t.ok(h.clock.now() - cutMs <= 3000, `moved ${h.clock.now() - cutMs} ms after wan1 stopped answering`)
  h.answering.add(T1)
  await until(t, h, /new connections: tier 1: wan1 x3, wan2 x1/)
  await h.settle()
  t.match(ownRoute(), ['ip', 'route', 'replace', 'default', 'via', '203.0.113.1'], 'back through wan1 after its failback hold')
  await h.link.stop()
})

t.test('a saturated line whose answers come after the timeout is degraded, never taken for dead and drained', async (t) => {
  const h = pair({ probe: { lossDown: 0.5, lossUp: 0.1 } })
  await h.link.start()
  await until(t, h, /new connections: tier 1: wan1 x3, wan2 x1/)
  const seen = h.lines.length
  h.latencyMs = 1500 // past wan.probe.timeout (1 s): every round fails, every answer is late
  await h.step(20_000)
  const lines = h.lines.slice(seen)
  t.notOk(lines.some((l) => /->offline/.test(l)), 'no WAN went offline')
  t.ok(lines.some((l) => /wan1 wan1 online->degraded reason="loss/.test(l)), 'degraded by loss')
  t.notOk(h.applier.calls.some((c) => c.what === 'flushConnections'), 'nothing drained')
  t.ok(h.link.status().wans[0]!.probes.replies.late! > 0, 'the answers counted as late')
  h.latencyMs = 20
  await h.link.stop()
})
