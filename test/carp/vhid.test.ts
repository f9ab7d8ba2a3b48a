import t from 'tap'
import {
  advertIntervalMs,
  betterThan,
  initialState,
  masterDownMs,
  step,
  type Priority,
  type VhidAction,
  type VhidParams,
  type VhidState,
} from '../../src/carp/vhid.js'

const params = (over: Partial<VhidParams> = {}): VhidParams => ({
  vhid: 1,
  advbaseS: 1,
  advskew: 0,
  preempt: true,
  preemptHolddownMs: 0,
  rank: 100,
  quorum: 'none',
  ...over,
})
const prio = (over: Partial<Priority> = {}): Priority => ({ demote: 0, advbase: 1, advskew: 0, rank: 50, ...over })

/** Runs events in order and returns the last state and all actions. */
function run(s: VhidState, events: [Parameters<typeof step>[1], number][]): { s: VhidState; actions: VhidAction[] } {
  const actions: VhidAction[] = []
  for (const [ev, now] of events) {
    const r = step(s, ev, now)
    s = r.state
    actions.push(...r.actions)
  }
  return { s, actions }
}

const types = (actions: VhidAction[]) => actions.map((a) => a.type)

t.test('carp(4) timing', async (t) => {
  t.equal(advertIntervalMs(1, 0), 1000)
  t.equal(advertIntervalMs(1, 128), 1500)
  t.equal(masterDownMs(1, 0), 3000)
  t.equal(masterDownMs(1, 100), 3000 + (100 * 1000) / 256)
  t.equal(masterDownMs(0, 10), (3 * 10 * 1000) / 256, 'sub-second mode: 3 x advskew/256')
  t.equal(advertIntervalMs(0, 10), (10 * 1000) / 256)
})

t.test('betterThan: demote, then frequency, then address', async (t) => {
  t.ok(betterThan(prio({ demote: 0, advskew: 200 }), prio({ demote: 1, advskew: 0 })), 'lower demote wins over timing')
  t.ok(betterThan(prio({ advskew: 0 }), prio({ advskew: 1 })))
  t.ok(betterThan(prio({ advbase: 1, advskew: 255 }), prio({ advbase: 2, advskew: 0 })))
  t.ok(betterThan(prio({ rank: 2 }), prio({ rank: 1 })), 'tie: higher address wins')
  t.notOk(betterThan(prio({ rank: 1 }), prio({ rank: 2 })))
  t.notOk(betterThan(prio(), prio()), 'equal is not better')
})

t.test('comes up BACKUP and claims only after a full master-down interval', async (t) => {
  const s0 = initialState(params({ advskew: 100 }), 0)
  const r = step(s0, { type: 'start' }, 0)
  t.equal(r.state.state, 'BACKUP')
  t.same(r.actions.find((a) => a.type === 'arm'), { type: 'arm', timer: 'masterDown', atMs: masterDownMs(1, 100) })
  t.notOk(r.actions.some((a) => a.type === 'send' || a.type === 'addVips'), 'nothing sent at boot')
  const m = step(r.state, { type: 'timer', timer: 'masterDown' }, masterDownMs(1, 100))
  t.equal(m.state.state, 'MASTER')
  t.match(m.state.reason, /no master heard in 3\.4s/)
  t.same(types(m.actions), ['log', 'cancel', 'cancel', 'send', 'arm', 'addVips', 'garp', 'arm', 'hook'])
  t.same(m.actions.filter((a) => a.type === 'arm'), [
    { type: 'arm', timer: 'advertise', atMs: masterDownMs(1, 100) + 1000 + (100 * 1000) / 256 },
    { type: 'arm', timer: 'garp', atMs: masterDownMs(1, 100) + 2 * (1000 + (100 * 1000) / 256) },
  ])
  t.same(m.actions[0], { type: 'log', message: 'vhid=1 BACKUP->MASTER reason="no master heard in 3.4s"' })
})

t.test('a backup hearing a better master re-arms its master-down timer', async (t) => {
  const { s, actions } = run(initialState(params({ advskew: 100 }), 0), [
    [{ type: 'start' }, 0],
    [{ type: 'advert', from: 'a', prio: prio() }, 2000],
  ])
  t.equal(s.state, 'BACKUP')
  t.equal(s.master?.from, 'a')
  t.same(actions.at(-1), { type: 'arm', timer: 'masterDown', atMs: 2000 + masterDownMs(1, 100) })
})

t.test('master-down timer after the master went silent', async (t) => {
  const { s } = run(initialState(params({ advskew: 100 }), 0), [
    [{ type: 'start' }, 0],
    [{ type: 'advert', from: 'a', prio: prio() }, 2000],
    [{ type: 'timer', timer: 'masterDown' }, 2000 + masterDownMs(1, 100)],
  ])
  t.equal(s.state, 'MASTER')
  t.match(s.reason, /no advert from a for 3\.4s/)
})

t.test('preempt: a better backup takes over a worse master only when preempt is on', async (t) => {
  const worse = prio({ advskew: 100 })
  const on = run(initialState(params(), 0), [
    [{ type: 'start' }, 0],
    [{ type: 'advert', from: 'b', prio: worse }, 10],
  ])
  t.equal(on.s.state, 'MASTER')
  t.match(on.s.reason, /^preempt/)
  const off = run(initialState(params({ preempt: false }), 0), [
    [{ type: 'start' }, 0],
    [{ type: 'advert', from: 'b', prio: worse }, 10],
  ])
  t.equal(off.s.state, 'BACKUP', 'preempt off: the running master stays')
})

t.test('preempt hold-down: no preemption until the hold-down after the last change', async (t) => {
  const p = params({ preemptHolddownMs: 5000 })
  const worse = prio({ advskew: 100 })
  const early = run(initialState(p, 0), [
    [{ type: 'start' }, 0],
    [{ type: 'advert', from: 'b', prio: worse }, 4999],
  ])
  t.equal(early.s.state, 'BACKUP')
  const late = step(early.s, { type: 'advert', from: 'b', prio: worse }, 5000)
  t.equal(late.state.state, 'MASTER')
})

t.test('demotion: a demoted master is replaced even without preempt; a master steps down to a less demoted one', async (t) => {
  const b = run(initialState(params({ preempt: false, advskew: 100 }), 0), [
    [{ type: 'start' }, 0],
    [{ type: 'advert', from: 'a', prio: prio({ demote: 128 }) }, 10],
  ])
  t.equal(b.s.state, 'MASTER')
  t.match(b.s.reason, /demoted \(demote 128 > ours 0\)/)

  const a = run(initialState(params(), 0), [
    [{ type: 'start' }, 0],
    [{ type: 'timer', timer: 'masterDown' }, 3000],
    [{ type: 'demote', demote: 128, reason: 'maint' }, 4000],
  ])
  t.equal(a.s.state, 'MASTER')
  t.same(a.actions.at(-1), { type: 'send', advbase: 1, advskew: 0, demote: 128 }, 'a demoted master advertises at once')
  const down = step(a.s, { type: 'advert', from: 'b', prio: prio({ advskew: 100 }) }, 4010)
  t.equal(down.state.state, 'BACKUP')
  t.notOk(down.actions.some((x) => x.type === 'removeVips'), 'the VIPs stay until the new master has announced them')
  t.same(down.actions.find((x) => x.type === 'arm' && x.timer === 'release'), { type: 'arm', timer: 'release', atMs: 4010 + 250 })
  t.ok(down.actions.some((x) => x.type === 'hook' && x.state === 'BACKUP'))
  const released = step(down.state, { type: 'timer', timer: 'release' }, 4260)
  t.same(released.actions, [{ type: 'removeVips' }])
  t.equal(released.state.vipsHeld, false)
  // Link lost during the grace time: the VIPs go at once.
  const cut = step(down.state, { type: 'linkDown', reason: 'lan0 down' }, 4100)
  t.same(cut.actions.filter((x) => x.type !== 'log'), [
    { type: 'cancel', timer: 'masterDown' },
    { type: 'cancel', timer: 'release' },
    { type: 'removeVips' },
  ])
  // Master again within the grace time: the release is called off.
  const back = step(down.state, { type: 'timer', timer: 'masterDown' }, 4200)
  t.equal(back.state.state, 'MASTER')
  t.ok(back.actions.some((x) => x.type === 'cancel' && x.timer === 'release'))
  const same = step(a.s, { type: 'demote', demote: 128, reason: 'again' }, 4020)
  t.same(same.actions, [], 'no change, no action')
})

t.test('master ignores worse adverts; INIT ignores all adverts', async (t) => {
  const m = run(initialState(params(), 0), [
    [{ type: 'start' }, 0],
    [{ type: 'timer', timer: 'masterDown' }, 3000],
  ])
  const r = step(m.s, { type: 'advert', from: 'b', prio: prio({ advskew: 5 }) }, 3100)
  t.equal(r.state.state, 'MASTER')
  // A split healed: advertise now and announce the VIPs again, once per interval.
  t.same(r.actions.filter((a) => a.type !== 'log'), [{ type: 'send', advbase: 1, advskew: 0, demote: 0 }, { type: 'garp' }])
  t.same(step(r.state, { type: 'advert', from: 'b', prio: prio({ advskew: 5 }) }, 3500).actions, [], 'not again within the interval')
  t.equal(step(r.state, { type: 'advert', from: 'b', prio: prio({ advskew: 5 }) }, 4100).actions.length, 3)
  const i = step(initialState(params(), 0), { type: 'advert', from: 'b', prio: prio() }, 0)
  t.equal(i.state.state, 'INIT')
})

t.test('tie-break on equal demote and timing', async (t) => {
  // Both boards advskew 0; the higher rank must end as the only master.
  const hi = run(initialState(params({ rank: 200 }), 0), [
    [{ type: 'start' }, 0],
    [{ type: 'timer', timer: 'masterDown' }, 3000],
    [{ type: 'advert', from: 'lo', prio: prio({ rank: 100 }) }, 3001],
  ])
  t.equal(hi.s.state, 'MASTER', 'higher rank stays master')
  const lo = run(initialState(params({ rank: 100 }), 0), [
    [{ type: 'start' }, 0],
    [{ type: 'timer', timer: 'masterDown' }, 3000],
    [{ type: 'advert', from: 'hi', prio: prio({ rank: 200 }) }, 3001],
  ])
  t.equal(lo.s.state, 'BACKUP', 'lower rank steps down')
  t.match(lo.s.reason, /better master hi/)
  t.equal(lo.s.master?.from, 'hi', 'and knows whom it defers to')
})

t.test('bow-out: the backup takes over at once', async (t) => {
  const m = run(initialState(params(), 0), [
    [{ type: 'start' }, 0],
    [{ type: 'timer', timer: 'masterDown' }, 3000],
    [{ type: 'shutdown' }, 5000],
  ])
  t.equal(m.s.state, 'INIT')
  t.same(m.actions.filter((a) => a.type === 'send').at(-1), { type: 'send', advbase: 255, advskew: 255, demote: 0 })
  t.ok(m.actions.some((a) => a.type === 'removeVips'))
  const b = run(initialState(params({ advskew: 100, preempt: false }), 0), [
    [{ type: 'start' }, 0],
    [{ type: 'advert', from: 'a', prio: prio({ advbase: 255, advskew: 255 }) }, 10],
  ])
  t.equal(b.s.state, 'MASTER')
  t.match(b.s.reason, /bowed out/)
  const quiet = run(initialState(params(), 0), [
    [{ type: 'start' }, 0],
    [{ type: 'shutdown' }, 1],
  ])
  t.equal(quiet.s.state, 'INIT')
  t.notOk(quiet.actions.some((a) => a.type === 'send'), 'a backup sends nothing when it stops')
  t.same(step(quiet.s, { type: 'shutdown' }, 2).actions, [])
})

t.test('a master that advertises too slowly is treated as down', async (t) => {
  const b = run(initialState(params({ advskew: 100, preempt: false }), 0), [
    [{ type: 'start' }, 0],
    [{ type: 'advert', from: 'a', prio: prio({ advbase: 4 }) }, 10],
  ])
  t.equal(b.s.state, 'MASTER')
  t.match(b.s.reason, /too slowly/)
})

t.test('link down and up', async (t) => {
  const m = run(initialState(params(), 0), [
    [{ type: 'start' }, 0],
    [{ type: 'timer', timer: 'masterDown' }, 3000],
    [{ type: 'linkDown', reason: 'lan0 down' }, 4000],
  ])
  t.equal(m.s.state, 'INIT')
  t.ok(m.actions.some((a) => a.type === 'removeVips'))
  t.same(step(m.s, { type: 'linkDown', reason: 'again' }, 4001).actions, [])
  const up = step(m.s, { type: 'linkUp' }, 5000)
  t.equal(up.state.state, 'BACKUP')
  t.same(step(up.state, { type: 'linkUp' }, 5001).actions, [], 'already up')
})

t.test('the advertise and garp timers of a master', async (t) => {
  const m = run(initialState(params(), 0), [
    [{ type: 'start' }, 0],
    [{ type: 'timer', timer: 'masterDown' }, 3000],
  ])
  const adv = step(m.s, { type: 'timer', timer: 'advertise' }, 4000)
  t.same(adv.actions, [
    { type: 'send', advbase: 1, advskew: 0, demote: 0 },
    { type: 'arm', timer: 'advertise', atMs: 5000 },
  ])
  t.same(step(m.s, { type: 'timer', timer: 'garp' }, 5000).actions, [{ type: 'garp' }])
})

t.test('impossible timer events are bugs and throw', async (t) => {
  const b = step(initialState(params(), 0), { type: 'start' }, 0).state
  t.throws(() => step(b, { type: 'timer', timer: 'advertise' }, 1), /impossible event timer advertise in state BACKUP/)
  t.throws(() => step(initialState(params(), 0), { type: 'timer', timer: 'masterDown' }, 1), /INIT/)
})

t.test('configure: new timing, advertised at once by a master', async (t) => {
  const m = run(initialState(params(), 0), [
    [{ type: 'start' }, 0],
    [{ type: 'timer', timer: 'masterDown' }, 3000],
  ])
  const r = step(m.s, { type: 'configure', params: params({ advskew: 50 }) }, 3500)
  t.equal(r.state.params.advskew, 50)
  t.same(r.actions[0], { type: 'send', advbase: 1, advskew: 50, demote: 0 })
  const b = step(initialState(params(), 0), { type: 'configure', params: params({ advbaseS: 2 }) }, 0)
  t.same(b.actions, [])
  t.equal(b.state.params.advbaseS, 2)
})

t.test('a backup with a smaller advskew than the master waits three of the master intervals, not its own', async (t) => {
  // Sub-second mode: our own master-down would be 3 x 10/256 s = 117 ms, but the
  // master (demoted us, or preempt off) sends only every 40/256 s = 156 ms.
  const { s, actions } = run(initialState(params({ advbaseS: 0, advskew: 10, preempt: false }), 0), [
    [{ type: 'start' }, 0],
    [{ type: 'advert', from: 'b', prio: prio({ advbase: 0, advskew: 40 }) }, 10],
  ])
  t.equal(s.state, 'BACKUP')
  t.same(actions.at(-1), { type: 'arm', timer: 'masterDown', atMs: 10 + 3 * advertIntervalMs(0, 40) })
  // With the usual roles (master has the smaller advskew) carp(4)'s own formula stands.
  const usual = run(initialState(params({ advskew: 100 }), 0), [
    [{ type: 'start' }, 0],
    [{ type: 'advert', from: 'a', prio: prio({ advskew: 0 }) }, 10],
  ])
  t.same(usual.actions.at(-1), { type: 'arm', timer: 'masterDown', atMs: 10 + masterDownMs(1, 100) })
})

t.test('no preemption on equal priority: the rank only settles two masters', async (t) => {
  const { s } = run(initialState(params({ rank: 999 }), 0), [
    [{ type: 'start' }, 0],
    [{ type: 'advert', from: 'a', prio: prio({ rank: 1 }) }, 10],
  ])
  t.equal(s.state, 'BACKUP', 'equal demote and timing: the running master stays')
})

t.test('configure without a timing change sends nothing', async (t) => {
  const m = run(initialState(params(), 0), [
    [{ type: 'start' }, 0],
    [{ type: 'timer', timer: 'masterDown' }, 3000],
  ])
  t.same(step(m.s, { type: 'configure', params: params({ rank: 5 }) }, 3500).actions, [])
})

t.test('sub-second mode: the second ARP waits for the old master to release the VIPs', async (t) => {
  const m = run(initialState(params({ advbaseS: 0, advskew: 10 }), 0), [
    [{ type: 'start' }, 0],
    [{ type: 'timer', timer: 'masterDown' }, 200],
  ])
  t.same(m.actions.filter((a) => a.type === 'arm' && a.timer === 'garp'), [{ type: 'arm', timer: 'garp', atMs: 200 + 250 + 50 }])
})

t.test('quorum: a backup claims, waits for votes, and withdraws when the master is heard again', async (t) => {
  const p = params({ quorum: 'witness', advskew: 100 })
  let { s, actions } = run(initialState(p, 0), [[{ type: 'start' }, 0], [{ type: 'timer', timer: 'masterDown' }, 3400]])
  t.equal(s.state, 'BACKUP')
  t.same(s.claim, { reason: 'no master heard in 3.4s', hearsMaster: false })
  t.match(actions.at(-1), { type: 'log', message: /BACKUP wants MASTER: no master heard in 3.4s; asking for votes/ })
  // A second reason while waiting changes the claim but logs nothing new.
  let r = step(s, { type: 'timer', timer: 'masterDown' }, 6800)
  t.same(r.actions, [])
  r = step(r.state, { type: 'advert', from: 'b', prio: prio({ advskew: 0 }) }, 7000)
  t.equal(r.state.claim, null)
  t.match(r.actions[0], { type: 'log', message: /master b heard again: claim withdrawn/ })
  // Votes that come when nothing is claimed change nothing.
  t.same(step(r.state, { type: 'votes', held: true, reason: 'x' }, 7001).actions, [])
  ;({ s, actions } = run(r.state, [[{ type: 'timer', timer: 'masterDown' }, 10_400], [{ type: 'votes', held: true, reason: 'votes: self+witness' }, 10_450]]))
  t.equal(s.state, 'MASTER')
  t.match(s.reason, /no advert from b for 3.4s; votes: self\+witness/)
  t.ok(types(actions).includes('addVips'))
})

t.test('quorum: a preempt claim keeps the master on record and its timer running', async (t) => {
  const p = params({ quorum: 'witness', advskew: 0 })
  const { s, actions } = run(initialState(p, 0), [[{ type: 'start' }, 0], [{ type: 'advert', from: 'b', prio: prio({ advskew: 100 }) }, 100]])
  t.same(s.claim, { reason: 'preempt: ours demote=0 advbase=1 advskew=0 beats b demote=0 advbase=1 advskew=100', hearsMaster: true })
  t.equal(s.master?.from, 'b')
  t.match(actions.at(-1), { type: 'arm', timer: 'masterDown' })
})

t.test('quorum: losing the votes drops the VIPs at once; a witness-mode master ignores better adverts', async (t) => {
  const p = params({ quorum: 'witness', advskew: 100 })
  let { s } = run(initialState(p, 0), [[{ type: 'start' }, 0], [{ type: 'timer', timer: 'masterDown' }, 3400], [{ type: 'votes', held: true, reason: 'v' }, 3401]])
  t.equal(s.state, 'MASTER')
  const better = step(s, { type: 'advert', from: 'b', prio: prio({ advskew: 0 }) }, 3500)
  t.equal(better.state.state, 'MASTER', 'a stale master cannot hold the votes: answer it instead')
  t.ok(types(better.actions).includes('garp'))
  const lost = step(s, { type: 'votes', held: false, reason: '1 vote of 2 needed' }, 3600)
  t.equal(lost.state.state, 'BACKUP')
  t.match(lost.state.reason, /^lost quorum: 1 vote of 2 needed/)
  t.ok(types(lost.actions).includes('removeVips'), 'no release grace without votes')
  t.notOk(lost.actions.some((a) => a.type === 'arm' && a.timer === 'release'))
  t.equal(lost.state.vipsHeld, false)
  ;({ s } = run(initialState(params({ quorum: 'paths' }), 0), [[{ type: 'start' }, 0], [{ type: 'timer', timer: 'masterDown' }, 3000], [{ type: 'votes', held: true, reason: 'v' }, 3001]]))
  t.equal(step(s, { type: 'advert', from: 'b', prio: prio({ demote: 0, advskew: 0, rank: 200 }) }, 3100).state.state, 'BACKUP', 'two-node mode keeps CARP: a better master wins')
})

t.test('power-on race: a better backup replaces a boot master once, preempt off; a worse one or the hold-down does not', async (t) => {
  const worse = prio({ advskew: 100 })
  const off = params({ preempt: false, quorum: 'witness' })
  const race = run(initialState(off, 0), [
    [{ type: 'start' }, 0],
    [{ type: 'advert', from: 'b', prio: worse, bootRace: true }, 10],
  ])
  t.equal(race.s.state, 'BACKUP', 'witness mode: it claims and waits for its votes')
  t.same(race.s.claim, { reason: 'power-on: ours demote=0 advbase=1 advskew=0 beats b demote=0 advbase=1 advskew=100, which took the vhid at its start before this board was up', hearsMaster: true })
  const plain = run(initialState(params({ preempt: false }), 0), [
    [{ type: 'start' }, 0],
    [{ type: 'advert', from: 'b', prio: worse, bootRace: true }, 10],
  ])
  t.equal(plain.s.state, 'MASTER', 'without quorum it takes over at once')
  const notRace = run(initialState(off, 0), [
    [{ type: 'start' }, 0],
    [{ type: 'advert', from: 'b', prio: worse }, 10],
  ])
  t.equal(notRace.s.claim, null, 'an ordinary master stays')
  const better = run(initialState(params({ preempt: false, advskew: 200 }), 0), [
    [{ type: 'start' }, 0],
    [{ type: 'advert', from: 'b', prio: worse, bootRace: true }, 10],
  ])
  t.equal(better.s.state, 'BACKUP', 'a boot master that ranks higher keeps the vhid')
  t.equal(better.s.claim, null)
  const held = run(initialState(params({ preempt: false, preemptHolddownMs: 5000 }), 0), [
    [{ type: 'start' }, 0],
    [{ type: 'advert', from: 'b', prio: worse, bootRace: true }, 4999],
  ])
  t.equal(held.s.state, 'BACKUP', 'the hold-down holds it too')
})
