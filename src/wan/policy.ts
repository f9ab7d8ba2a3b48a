// Where new connections go, from the WANs' health (SPEC "Multi-WAN"): the lowest tier
// that still has a healthy WAN carries them, split by weight among its healthy WANs.
// Existing connections keep their WAN through the connection mark; this decides only
// for new ones. Pure: states in, a WanPlan out for the rule generators.

import type { ActiveWan, WanPlan, WanState } from './types.js'

/** One WAN as the policy sees it: its place (tier), its share (weight) and its health. */
export interface WanPolicyInput {
  wan: number
  tier: number // lower is preferred
  weight: number // share within its tier
  state: WanState
}

/** Degraded WANs still carry traffic: lossy or slow is not dead (types.ts, WanState). */
const carries = (state: WanState): boolean => state !== 'offline'

/**
 * The shares of the carrying WANs of a tier: a degraded WAN next to an online one
 * keeps half its weight (the online ones' weights doubled): at 3:1 with WAN 1
 * degraded, 3:2. A tier all online or all degraded keeps the configured numbers.
 */
function shareOut(wans: WanPolicyInput[]): ActiveWan[] {
  const mixed = wans.some((w) => w.state === 'degraded') && wans.some((w) => w.state === 'online')
  return wans.map((w) => ({ wan: w.wan, weight: mixed && w.state === 'online' ? w.weight * 2 : w.weight }))
}

const byWan = (a: ActiveWan, b: ActiveWan): number => a.wan - b.wan

/**
 * `normal`: the lowest tier with an online or degraded WAN, and those WANs (a
 * degraded one next to an online one at half its weight).
 * `allDown`: no WAN is healthy, so every WAN takes a share (tier null): probes can be
 * wrong (every probe target down at once, a filter eating DNS) and a router that
 * refuses all new connections guarantees nothing works. No WANs at all: allDown with
 * nothing active.
 */
export function plan(wans: WanPolicyInput[]): WanPlan {
  const healthy = wans.filter((w) => carries(w.state))
  if (healthy.length === 0) {
    return { mode: 'allDown', tier: null, active: wans.map((w) => ({ wan: w.wan, weight: w.weight })).sort(byWan) }
  }
  // A tier gives way only when none of its WANs carries any more (dead, as
  // pfSense's default "member down"): a lossy primary keeps its tier, so a mildly
  // lossy fibre line does not send the whole site over a metered backup (review).
  const tier = Math.min(...healthy.map((w) => w.tier))
  return { mode: 'normal', tier, active: shareOut(healthy.filter((w) => w.tier === tier)).sort(byWan) }
}

/**
 * The WAN the router's own traffic leaves through (rules/routes.ts): of the plan's
 * active WANs the online ones before the degraded (`states`), then the heaviest, the
 * lowest number among equals; none when every WAN is offline (the main table's
 * default route, as without carpd).
 */
export function ownWan(p: WanPlan, states?: ReadonlyMap<number, WanState>): number | null {
  if (p.mode !== 'normal' || p.active.length === 0) return null
  // An online WAN before a degraded one, then the heaviest (review: weights 3 degraded
  // and 1 online put it on the lossy one, and 3:2 flipped it at every change).
  const online = p.active.filter((a) => states?.get(a.wan) !== 'degraded')
  return (online.length > 0 ? online : p.active).reduce((best, a) => (a.weight > best.weight ? a : best)).wan
}

const shares = (active: ActiveWan[]): string => active.map((a) => `wan${a.wan} x${a.weight}`).join(', ')

/** One line for the console and `carpd status`. */
export function describePlan(p: WanPlan): string {
  if (p.mode === 'normal') return `tier ${p.tier}: ${shares(p.active)}`
  if (p.active.length === 0) return 'no WAN configured'
  return `every WAN is offline: spreading new connections over all of them (${shares(p.active)})`
}

/** True when the rules must be regenerated: another mode, tier, set of WANs or weight. */
export function planChanged(a: WanPlan, b: WanPlan): boolean {
  if (a.mode !== b.mode || a.tier !== b.tier || a.active.length !== b.active.length) return true
  return a.active.some((x, i) => x.wan !== b.active[i]!.wan || x.weight !== b.active[i]!.weight)
}

/**
 * Pair awareness (SPEC "Multi-WAN"): a board whose WANs are all offline while the
 * peer, heard on a sync or serial path, has a healthy one should hand the VIPs over.
 * Returns the reason to demote, or null. Without news of the peer: never. A WAN not
 * judged yet (`judged` false: a board starting, its first good rounds still to
 * come) is no verdict: the master of a pair that started together came up a moment
 * after its peer's WANs and handed the VIPs over and back (the pair's lab).
 */
export function wanDemotion(own: readonly { state: WanState; judged?: boolean }[], peer: readonly { state: 'U' | 'G' | 'D' }[] | null): string | null {
  if (own.length === 0 || own.some((w) => w.state !== 'offline' || w.judged === false)) return null
  if (peer === null || !peer.some((w) => w.state !== 'D')) return null
  return 'every WAN offline while the peer has a healthy one'
}
