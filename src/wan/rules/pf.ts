// Multi-WAN rules for pf, loaded into carpd's anchor with `pfctl -a carpd/wan -f -`
// (SPEC "Multi-WAN"). Pure: text out. `pfctl -a` replaces only the anchor's rules, so
// the board's own ruleset is never touched; the text opens with comments saying what
// that ruleset needs. Each rule below names the pf.conf(5) text it relies on (OpenBSD
// 7.x, revision 1.609; FreeBSD 15.0; the golden tests quote them too).
//
// pf has no marks and no statistic match. Instead:
//   table <carpd_wan_local>  the router's own addresses and the networks of every
//       interface carpd knows (LANs, sync link, WANs): "all addresses assigned to the
//       interface(s)" (self) and ":network Translates to the network(s) attached to
//       the interface". Traffic to them is never routed to a WAN gateway.
//   pass in quick on LAN ... route-to POOL round-robin sticky-address tag CARPD_WAN
//       the split: one LAN host keeps one WAN while its source-tracking entry lives,
//       and the state keeps every connection on the WAN it was given. `quick`, since
//       "the last matching rule decides": without it a plain `pass in on $lan` after
//       the anchor would win and drop the route-to. route-to cannot sit on a match
//       rule (OpenBSD's pfctl refuses it; FreeBSD applies routing "only from the last
//       pass rule"), so this pass rule is carpd's; the operator's blocks go before the
//       anchor. Weights: OpenBSD pools take `weight N` per address; FreeBSD's pools
//       have none, so each gateway is listed as often as its weight (pfSense does the
//       same).
//   pass out quick on WANS tagged CARPD_WAN
//       a route-to'd packet is filtered again on the WAN it leaves by (pf_route runs
//       pf_test for PF_OUT): this passes exactly what the LAN rule passed, whatever the
//       main ruleset says about outbound traffic. "Tags are sticky".
//   NAT per WAN, tagged CARPD_WAN only: what carpd routed, as the Linux backends SNAT
//       only marked traffic; the router's own packets (CARP adverts, probes, pfsync)
//       keep their addresses. OpenBSD: `match out on IF tagged CARPD_WAN nat-to ADDR`;
//       FreeBSD: `nat on IF from any to any tagged CARPD_WAN -> ADDR`, which a main
//       ruleset runs only through `nat-anchor "carpd/wan"` ("Evaluates the nat rules
//       in the specified anchor"), and which pfctl wants before the filter rules.
//   pass out quick inet from (IF) [and the pair's VIP there] to ! <carpd_wan_local>
//       route-to GATEWAY: the router's own traffic from a WAN's address (its probes, a
//       VPN bound there) leaves through that WAN whatever the default route says.
// Not in the anchor, and said in its head: reply-to for connections that come in on a
// WAN (a port forward, a VPN) belongs on the operator's own pass rule for them: pf
// takes it only from the pass rule that creates the state, and a pass rule here
// would open the firewall.
//
// Two dialects: openbsd (6.9 and later: route-to takes next-hop addresses, the
// interface comes from the route to it) and freebsd (`(interface next-hop)` pairs
// before from/to, translation in `nat` rules).

import { type WanPlan, type WanSpec } from '../types.js'

export type PfDialect = 'openbsd' | 'freebsd'

export interface PfOptions {
  dialect: PfDialect
  /** Where LAN traffic comes in: the carp.N.interface of each vhid. */
  lanInterfaces: string[]
  /** Other interfaces whose networks are not routed to a WAN: the sync link. */
  otherInterfaces?: string[]
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

/** The tag of what carpd's LAN rule passed: NAT and the WANs' outbound pass match it. */
const TAG = 'CARPD_WAN'

/** `{ a, b }` for a list, the word alone for one. */
function list(items: string[]): string {
  return items.length === 1 ? items[0]! : `{ ${items.join(', ')} }`
}

/**
 * The anchor's text. `otherInterfaces`: interfaces whose networks are local too
 * besides the LANs and WANs (the sync link). Throws RulesError('pfNoLanInterfaces')
 * when lanInterfaces is empty.
 */
export function renderPf(wans: WanSpec[], plan: WanPlan, opts: PfOptions): string {
  if (opts.lanInterfaces.length === 0) {
    throw new RulesError(
      'pfNoLanInterfaces',
      'pf rules need the LAN interfaces to route from: add a carp.N block (carp.N.interface = the LAN interface)',
    )
  }
  const obsd = opts.dialect === 'openbsd'
  const byWan = new Map(wans.map((w) => [w.wan, w]))
  const hop = (w: WanSpec): string => (obsd ? w.gateway : `(${w.interface} ${w.gateway})`)
  const localNets = [...new Set([...opts.lanInterfaces, ...(opts.otherInterfaces ?? []), ...wans.map((w) => w.interface)])]
  const lines = [
    ...head(wans, opts),
    `table ${LOCAL_TABLE} const { self, ${localNets.map((i) => `${i}:network`).join(', ')} }`,
    ...wans.map((w) => {
      // The pair's shared VIP, else a known address, is used as it is; `(wan0)`
      // follows the interface's address as it changes (DHCP, PPPoE), like MASQUERADE.
      const to = w.natAddress ?? w.address ?? `(${w.interface})`
      return obsd ? `match out on ${w.interface} tagged ${TAG} nat-to ${to}` : `nat on ${w.interface} from any to any tagged ${TAG} -> ${to}`
    }),
    `pass out quick on ${list(wans.map((w) => w.interface))} tagged ${TAG}`,
    ...wans.map((w) => {
      const from = `from ${list([`(${w.interface})`, ...(w.natAddress === null ? [] : [w.natAddress])])} to ! ${LOCAL_TABLE}`
      return obsd ? `pass out quick inet ${from} route-to ${hop(w)}` : `pass out quick route-to ${hop(w)} inet ${from}`
    }),
  ]
  if (plan.active.length > 0) {
    const divisor = plan.active.reduce((g, a) => gcd(g, a.weight), 0)
    const shares = plan.active.map((a) => ({ wan: byWan.get(a.wan)!, weight: a.weight / divisor }))
    const pool =
      shares.length === 1
        ? hop(shares[0]!.wan)
        : obsd
          ? `{ ${shares.map((s) => `${hop(s.wan)} weight ${s.weight}`).join(', ')} } round-robin sticky-address`
          : `{ ${shares.flatMap((s) => Array<string>(s.weight).fill(hop(s.wan))).join(', ')} } round-robin sticky-address`
    const lans = list(opts.lanInterfaces)
    const match = `from any to ! ${LOCAL_TABLE}`
    // The grammars differ: OpenBSD takes route-to among the filter options after
    // from/to, FreeBSD before them.
    lines.push(obsd ? `pass in quick on ${lans} ${match} route-to ${pool} tag ${TAG}` : `pass in quick on ${lans} route-to ${pool} ${match} tag ${TAG}`)
  }
  return `${lines.join('\n')}\n`
}

/** The comments that open the anchor: what the main ruleset needs for it to work. */
function head(wans: WanSpec[], opts: PfOptions): string[] {
  const replyTo = (w: WanSpec): string => (opts.dialect === 'openbsd' ? `reply-to ${w.gateway}` : `reply-to (${w.interface} ${w.gateway})`)
  return [
    `# carpd multi-WAN anchor (${opts.dialect === 'openbsd' ? 'OpenBSD' : 'FreeBSD'}): pfctl -a carpd/wan -f FILE`,
    '# The main pf.conf needs:',
    ...(opts.dialect === 'freebsd' ? ['#   nat-anchor "carpd/wan"   with the translation rules (the nat rules here run only through it)'] : []),
    '#   anchor "carpd/wan"       after your own block rules for LAN traffic (the rules here are quick)',
    '# and, on your pass rules for connections that come in on a WAN, so their replies leave by it:',
    ...wans.map((w) => `#   pass in on ${w.interface} ... ${replyTo(w)}`),
  ]
}

function gcd(a: number, b: number): number {
  return b === 0 ? a : gcd(b, a % b)
}
