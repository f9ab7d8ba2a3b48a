// Multi-WAN rules for pf, loaded into carpd's anchor with `pfctl -a carpd/wan -f -`
// (SPEC "Multi-WAN"). Pure: text out. The main ruleset needs `anchor "carpd/wan"`
// (or `anchor "carpd/*"`) where the operator wants LAN traffic passed; pfctl -a
// replaces only the anchor's rules, so the board's own ruleset is never touched.
//
// pf has no marks and no statistic match: the split is a route-to address pool on a
// pass rule for what comes in on the LAN interfaces, round-robin with sticky-address
// (one LAN host keeps one WAN while its source-tracking entry lives), and the state
// that rule creates keeps every connection on the WAN it was given. NAT is per WAN
// on what leaves by it.
//
// Two dialects:
//   openbsd (6.9 and later): `match out ... nat-to`, route-to with next-hop addresses
//     only (the interface comes from the route to the next hop);
//   freebsd: `nat on ... ->` translation rules (which must come before filter rules),
//     route-to with `(interface next-hop)` pairs.

import { type WanPlan, type WanSpec } from '../types.js'

export type PfDialect = 'openbsd' | 'freebsd'

export interface PfOptions {
  dialect: PfDialect
  /** Where LAN traffic comes in: the carp.N.interface of each vhid. */
  lanInterfaces: string[]
}

/** Stable codes of the rule generators' errors; tests match these, not the wording. */
export type RulesErrorCode =
  | 'noWans' // the configuration has no wan.N block
  | 'pfNoLanInterfaces' // pf rules need to know where LAN traffic comes in
  | 'badWanState' // --wan-state: wrong count or word
  | 'routesNotForPf' // --routes asks for Linux policy routing, pf routes with route-to

/**
 * An error of the rule generators, defined here because pf's is the one generator that
 * can fail (index.ts uses it for the rest). Users can act on the message.
 */
export class RulesError extends Error {
  constructor(
    readonly code: RulesErrorCode,
    message: string,
  ) {
    super(message)
  }
}

/** carpd's table of destinations that are not routed to a WAN (defined in the anchor). */
const LOCAL_TABLE = '<carpd_wan_local>'

/** The anchor's text. Throws RulesError('pfNoLanInterfaces') when lanInterfaces is empty. */
export function renderPf(wans: WanSpec[], plan: WanPlan, opts: PfOptions): string {
  if (opts.lanInterfaces.length === 0) {
    throw new RulesError(
      'pfNoLanInterfaces',
      'pf rules need the LAN interfaces to route from: add a carp.N block (carp.N.interface = the LAN interface)',
    )
  }
  const lans = opts.lanInterfaces.length === 1 ? opts.lanInterfaces[0]! : `{ ${opts.lanInterfaces.join(', ')} }`
  const byWan = new Map(wans.map((w) => [w.wan, w]))
  // The pool lists each active WAN as often as its weight (over the gcd of all of
  // them): pf pools have no weights, round-robin only takes the next entry.
  const divisor = plan.active.reduce((g, a) => gcd(g, a.weight), 0)
  const pool = plan.active.flatMap((a) => Array<WanSpec>(a.weight / divisor).fill(byWan.get(a.wan)!))
  const lines = [
    // Traffic to the router itself and to the LAN networks must not be routed to a
    // WAN gateway: route-to would send it there whatever its destination.
    `table ${LOCAL_TABLE} const { self, ${opts.lanInterfaces.map((i) => `${i}:network`).join(', ')} }`,
    ...wans.map((w) => {
      // The pair's shared VIP, else a known address, is used as it is; `(wan0)`
      // follows the interface's address as it changes (DHCP, PPPoE), like MASQUERADE.
      const to = w.natAddress ?? w.address ?? `(${w.interface})`
      return opts.dialect === 'openbsd'
        ? `match out on ${w.interface} from any to any nat-to ${to}`
        : `nat on ${w.interface} from any to any -> ${to}`
    }),
  ]
  if (pool.length > 0) {
    const hops = pool.map((w) => (opts.dialect === 'openbsd' ? w.gateway : `(${w.interface} ${w.gateway})`))
    const routeTo = hops.length === 1 ? `route-to ${hops[0]}` : `route-to { ${hops.join(', ')} } round-robin sticky-address`
    const match = `from any to ! ${LOCAL_TABLE}`
    // The grammars differ: OpenBSD takes route-to among the filter options after
    // from/to, FreeBSD before them.
    lines.push(opts.dialect === 'openbsd' ? `pass in on ${lans} ${match} ${routeTo}` : `pass in on ${lans} ${routeTo} ${match}`)
  }
  return `${lines.join('\n')}\n`
}

function gcd(a: number, b: number): number {
  return b === 0 ? a : gcd(b, a % b)
}
