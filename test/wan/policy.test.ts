import t from 'tap'
import { describePlan, plan, planChanged, type WanPolicyInput } from '../../src/wan/policy.js'
import type { WanPlan, WanState } from '../../src/wan/types.js'

const wan = (n: number, tier: number, weight: number, state: WanState): WanPolicyInput => ({ wan: n, tier, weight, state })

t.test('the lowest tier with a healthy WAN carries new connections, by weight', async (t) => {
  const p = plan([wan(2, 1, 1, 'online'), wan(1, 1, 3, 'online'), wan(3, 2, 5, 'online')])
  t.same(p, {
    mode: 'normal',
    tier: 1,
    active: [
      { wan: 1, weight: 3 },
      { wan: 2, weight: 1 },
    ],
  })
  t.equal(describePlan(p), 'tier 1: wan1 x3, wan2 x1')
})

t.test('degraded WANs still carry traffic; offline ones in the tier are left out', async (t) => {
  const p = plan([wan(1, 1, 3, 'offline'), wan(2, 1, 1, 'degraded'), wan(3, 2, 5, 'online')])
  t.same(p, { mode: 'normal', tier: 1, active: [{ wan: 2, weight: 1 }] }, 'a lossy primary keeps its tier: only death hands over')
  t.equal(describePlan(p), 'tier 1: wan2 x1')
  t.same(plan([wan(1, 1, 3, 'degraded'), wan(2, 1, 1, 'online'), wan(3, 2, 5, 'online')]).active, [{ wan: 1, weight: 3 }, { wan: 2, weight: 2 }], 'next to an online one: half its weight')
})

t.test('a tier with no healthy WAN hands over to the next', async (t) => {
  const p = plan([wan(1, 1, 3, 'offline'), wan(2, 1, 1, 'offline'), wan(4, 3, 1, 'online'), wan(3, 2, 5, 'degraded')])
  t.same(p, { mode: 'normal', tier: 2, active: [{ wan: 3, weight: 5 }] })
  t.equal(describePlan(p), 'tier 2: wan3 x5')
})

t.test('tiers need not start at 1 or be listed in order', async (t) => {
  const p = plan([wan(5, 9, 2, 'online'), wan(6, 4, 1, 'online'), wan(7, 4, 4, 'online')])
  t.same(p, {
    mode: 'normal',
    tier: 4,
    active: [
      { wan: 6, weight: 1 },
      { wan: 7, weight: 4 },
    ],
  })
})

t.test('every WAN offline: every WAN takes a share by weight', async (t) => {
  const p = plan([wan(2, 1, 1, 'offline'), wan(1, 1, 3, 'offline'), wan(3, 2, 5, 'offline')])
  t.same(p, {
    mode: 'allDown',
    tier: null,
    active: [
      { wan: 1, weight: 3 },
      { wan: 2, weight: 1 },
      { wan: 3, weight: 5 },
    ],
  })
  t.equal(describePlan(p), 'every WAN is offline: spreading new connections over all of them (wan1 x3, wan2 x1, wan3 x5)')
})

t.test('no WANs at all', async (t) => {
  const p = plan([])
  t.same(p, { mode: 'allDown', tier: null, active: [] })
  t.equal(describePlan(p), 'no WAN configured')
})

t.test('plan does not change its input', async (t) => {
  const input = [wan(2, 1, 1, 'online'), wan(1, 1, 3, 'online')]
  plan(input)
  t.same(
    input.map((w) => w.wan),
    [2, 1],
  )
})

t.test('planChanged: mode, tier, members and weights', async (t) => {
  const base: WanPlan = {
    mode: 'normal',
    tier: 1,
    active: [
      { wan: 1, weight: 3 },
      { wan: 2, weight: 1 },
    ],
  }
  const copy = (p: WanPlan): WanPlan => ({ ...p, active: p.active.map((a) => ({ ...a })) })
  t.notOk(planChanged(base, copy(base)), 'equal plans')
  t.same(plan([wan(1, 1, 3, 'online'), wan(2, 1, 1, 'degraded')]).active, [{ wan: 1, weight: 6 }, { wan: 2, weight: 1 }], 'a degraded WAN keeps half its weight')
  t.same(plan([wan(1, 1, 3, 'degraded'), wan(2, 1, 1, 'online')]).active, [{ wan: 1, weight: 3 }, { wan: 2, weight: 2 }], '3:1 with WAN 1 degraded is 3:2')
  t.notOk(planChanged(base, plan([wan(1, 1, 3, 'degraded'), wan(2, 1, 1, 'degraded')])), 'all degraded: the configured weights')
  t.ok(planChanged(base, plan([wan(1, 1, 3, 'online'), wan(2, 1, 1, 'degraded')])), 'online to degraded changes the weights')
  t.ok(planChanged(base, { ...copy(base), mode: 'allDown', tier: null }), 'mode')
  t.ok(planChanged(base, { ...copy(base), tier: 2 }), 'tier')
  t.ok(planChanged(base, { ...base, active: [{ wan: 1, weight: 3 }] }), 'a WAN fewer')
  t.ok(planChanged(base, { ...base, active: [{ wan: 1, weight: 3 }, { wan: 3, weight: 1 }] }), 'another WAN')
  t.ok(planChanged(base, { ...base, active: [{ wan: 1, weight: 2 }, { wan: 2, weight: 1 }] }), 'another weight')
})

t.test('pair awareness: demote only when every own WAN is offline and the peer has a healthy one', async (t) => {
  const { wanDemotion } = await import('../../src/wan/policy.js')
  const off = { state: 'offline' as const }
  const on = { state: 'online' as const }
  t.equal(wanDemotion([off, off], [{ state: 'U' }]), 'every WAN offline while the peer has a healthy one')
  t.equal(wanDemotion([off, off], [{ state: 'G' }, { state: 'D' }]), 'every WAN offline while the peer has a healthy one')
  t.equal(wanDemotion([off, on], [{ state: 'U' }]), null, 'one own WAN still works')
  t.equal(wanDemotion([off], [{ state: 'D' }]), null, 'the peer is no better off')
  t.equal(wanDemotion([off], null), null, 'nothing known of the peer')
  t.equal(wanDemotion([], [{ state: 'U' }]), null, 'no WANs here')
  const pending = { state: 'offline' as const, judged: false }
  t.equal(wanDemotion([off, pending], [{ state: 'U' }]), null, 'a WAN not judged yet (a board starting) is no verdict')
  t.equal(wanDemotion([off, { ...pending, judged: true }], [{ state: 'U' }]), 'every WAN offline while the peer has a healthy one', 'judged dead: demoted')
})
