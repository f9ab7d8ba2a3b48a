// `carpd rules`: the multi-WAN rules carpd would load for a configuration and a set
// of WAN states, in the flavour of wan.rules (SPEC "Multi-WAN"). Pure: text out.

import type { Config, WanConfig } from '../../config/types.js'
import type { WanPlan, WanSpec, WanState } from '../types.js'
import { type IptablesHook, iptablesHooks, renderIptables } from './iptables.js'
import { renderNft } from './nft.js'
import { RulesError, renderPf } from './pf.js'
import { renderRouteCommands } from './routes.js'
import { ownWan, plan } from '../policy.js'

export { iptablesHooks, renderIptables, type IptablesHook } from './iptables.js'
export { renderNft } from './nft.js'
export { RulesError, renderPf, type PfDialect, type PfOptions, type RulesErrorCode } from './pf.js'
export { renderRouteCommands, routeCommands, type RouteCommands } from './routes.js'

/** What the agent loads on Linux: the text for one tool and, for iptables, the jumps to check. */
export interface WanRuleSet {
  flavour: 'iptables' | 'nft'
  text: string
  /** Jumps into carpd's chains, to check (-C) and insert once; none for nft (its table hooks itself). */
  hooks: IptablesHook[]
}

/** The rules the agent loads for a plan (the platform checks, then loads them). */
export function renderWanSet(flavour: 'iptables' | 'nft', wans: WanSpec[], plan: WanPlan): WanRuleSet {
  if (flavour === 'nft') return { flavour, text: renderNft(wans, plan), hooks: [] }
  return { flavour, text: renderIptables(wans, plan), hooks: iptablesHooks() }
}

export interface RenderRulesOptions {
  /** Print the Linux policy routing commands instead of the firewall rules. */
  routes: boolean
  /** Each WAN interface's own IPv4 address, by interface name; a WAN missing here gets MASQUERADE. */
  addresses?: Map<string, string>
}

/**
 * The text for config.wanRules (or the route commands with `routes`). `states` has
 * one entry per wan.N block in N order; null means every WAN is up. Throws
 * RulesError: noWans, badWanState (wrong count), routesNotForPf, pfNoLanInterfaces.
 */
export function renderRules(config: Config, states: WanState[] | null, opts: RenderRulesOptions): string {
  if (config.wans.length === 0) {
    throw new RulesError('noWans', `${config.file}: no wan.N block: no multi-WAN rules to print (set wan.1.interface, wan.1.gateway, wan.1.probe)`)
  }
  if (states !== null && states.length !== config.wans.length) {
    throw new RulesError('badWanState', `${states.length} WAN states for ${config.wans.length} wan.N blocks`)
  }
  const wans: WanSpec[] = config.wans.map((w) => ({ ...w, address: opts.addresses?.get(w.interface) ?? null }))
  const plan = planFor(config.wans, states)
  if (opts.routes) {
    // pf does its policy routing itself (route-to); there is no table to fill.
    if (config.wanRules === 'pf') throw new RulesError('routesNotForPf', '--routes: policy routing commands are for Linux; wan.rules = pf routes with route-to in its anchor')
    return renderRouteCommands(wans, ownWan(plan, states === null ? undefined : new Map(config.wans.map((w, i) => [w.wan, states[i]!]))))
  }
  switch (config.wanRules) {
    case 'iptables':
      return renderIptables(wans, plan)
    case 'nft':
      return renderNft(wans, plan)
    case 'pf': {
      // A carp.N block on a WAN interface shares the pair's address there: no LAN.
      const wanInterfaces = new Set(config.wans.map((w) => w.interface))
      const lanInterfaces = [...new Set(config.carp.vhids.map((v) => v.interface))].filter((i) => !wanInterfaces.has(i))
      // Only freebsd writes the FreeBSD dialect; linux can only print (pf does not
      // run there), in OpenBSD's.
      const otherInterfaces = config.sync.interface === '' ? [] : [config.sync.interface]
      return renderPf(wans, plan, { dialect: config.platform === 'freebsd' ? 'freebsd' : 'openbsd', lanInterfaces, otherInterfaces })
    }
    default: {
      const never: never = config.wanRules
      throw new Error(`unknown wan.rules ${String(never)}`)
    }
  }
}

/**
 * `--wan-state up,down,degraded,...`: one word per wan.N block, in N order. Throws
 * RulesError('badWanState') naming the option on a wrong count or word.
 */
export function parseWanStates(text: string, wans: WanConfig[]): WanState[] {
  const words = text.split(',').map((w) => w.trim())
  const expected = `one up|down|degraded per WAN in wan number order (${wans.map((w) => `wan.${w.wan}`).join(', ')})`
  if (words.length !== wans.length) {
    throw new RulesError('badWanState', `--wan-state ${text}: ${words.length} state${words.length === 1 ? '' : 's'} for ${wans.length} WAN${wans.length === 1 ? '' : 's'}; give ${expected}`)
  }
  return words.map((word) => {
    if (word === 'up') return 'online'
    if (word === 'down') return 'offline'
    if (word === 'degraded') return 'degraded'
    throw new RulesError('badWanState', `--wan-state ${text}: "${word}" is not a state; give ${expected}`)
  })
}

/** The plan for the states given on the command line (all up when none): the agent's own rule. */
function planFor(wans: WanConfig[], states: WanState[] | null): WanPlan {
  return plan(wans.map((w, i) => ({ wan: w.wan, tier: w.tier, weight: w.weight, state: states?.[i] ?? 'online' })))
}
