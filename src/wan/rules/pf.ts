// Multi-WAN rules for pf, loaded into carpd's anchor with `pfctl -a carpd/wan -f -`
// (SPEC "Multi-WAN"). Pure: text out. `pfctl -a` replaces only the anchor's rules, so
// the board's own ruleset is never touched; the text opens with comments saying what
// that ruleset needs. Each rule below names the pf.conf(5) text it relies on (OpenBSD
// 7.x, revision 1.609; FreeBSD 15.0; the golden tests quote them too).
//
// pf has no marks and no statistic match. Instead, in this order (FreeBSD's pfctl
// wants "translation, filtering"):
//   NAT per WAN, tagged CARPD_WAN only: what carpd routed, as the Linux backends SNAT
//       only marked traffic; the router's own packets (CARP adverts, probes, pfsync)
//       keep their addresses. OpenBSD: `match out on IF tagged CARPD_WAN nat-to ADDR`;
//       FreeBSD: `nat on IF from any to any tagged CARPD_WAN -> ADDR`, which a main
//       ruleset runs only through `nat-anchor "carpd/wan"` ("Evaluates the nat rules
//       in the specified anchor").
//   match to { (self), (IF:network)..., 224.0.0.0/4, 255.255.255.255 } tag CARPD_LOCAL
//       the router's own addresses, the networks of every interface carpd knows (LANs,
//       sync link, WANs), multicast and broadcast: never routed to a gateway. Dynamic
//       (in parentheses), so a DHCP or PPPoE WAN without an address yet does not make
//       pfctl refuse the anchor, and a new address counts at once; a table would be
//       fixed at load. A tag, because a negated list (`to ! { a, b }`) matches
//       everything, and "Tags are sticky".
//   pass out quick on WANS tagged CARPD_WAN
//       a route-to'd packet is filtered again on the WAN it leaves by (pf_route runs
//       pf_test for PF_OUT): this passes exactly what the LAN rule passed, whatever the
//       main ruleset says about outbound traffic.
//   pass out quick inet from (IF) [and the pair's VIP there] to any ! tagged
//       CARPD_LOCAL route-to GATEWAY keep state (floating): the router's own traffic
//       from a WAN's address (its probes, a VPN bound there) leaves through that WAN
//       whatever the default route says; not its CARP adverts (multicast).
//   pass in quick on LAN inet ... ! tagged CARPD_LOCAL route-to POOL round-robin
//       sticky-address tag CARPD_WAN: the split. One LAN host keeps one WAN while its
//       source-tracking entry lives, and the state keeps every connection on the WAN
//       it was given. `quick`, since "the last matching rule decides": without it a
//       plain `pass in on $lan` after the anchor would win and drop the route-to.
//       route-to cannot sit on a match rule (OpenBSD's pfctl refuses it; FreeBSD
//       applies routing "only from the last pass rule"), so this pass rule is carpd's;
//       the operator's quick blocks go before the anchor. Weights: OpenBSD pools take
//       `weight N` per address (its pfctl turns the list into a table, where a
//       repeated address would collapse); FreeBSD's pools have none, so each gateway
//       is listed as often as its weight (pfSense does the same).
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
  | 'pfSharedWan' // two WANs share an interface (or, OpenBSD, a gateway): pf cannot tell them apart

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

/** The tag of what carpd's LAN rule passed: NAT and the WANs' outbound pass match it. */
const TAG = 'CARPD_WAN'

/** The tag of traffic to the router's own networks and to multicast or broadcast. */
const LOCAL_TAG = 'CARPD_LOCAL'

/** Multicast (CARP adverts, OSPF, mDNS, IGMP) and limited broadcast: never routed to a gateway. */
const NOT_ROUTED = ['224.0.0.0/4', '255.255.255.255']

/** `{ a, b }` for a list, the word alone for one. */
function list(items: string[]): string {
  return items.length === 1 ? items[0]! : `{ ${items.join(', ')} }`
}

/**
 * The anchor's text. `otherInterfaces`: interfaces whose networks are local too
 * besides the LANs and WANs (the sync link). Throws RulesError: pfNoLanInterfaces
 * when lanInterfaces is empty, pfSharedWan when two WANs share an interface (pf's NAT
 * could not tell them apart) or, on OpenBSD, a gateway address (its route-to finds
 * the interface by the route to the address).
 */
export function renderPf(wans: WanSpec[], plan: WanPlan, opts: PfOptions): string {
  if (opts.lanInterfaces.length === 0) {
    throw new RulesError(
      'pfNoLanInterfaces',
      'pf rules need the LAN interfaces to route from: add a carp.N block (carp.N.interface = the LAN interface)',
    )
  }
  const obsd = opts.dialect === 'openbsd'
  checkDistinct(wans, 'interface', (w) => w.interface, 'pf NATs by the interface a packet leaves on, so it cannot tell them apart')
  if (obsd) checkDistinct(wans, 'gateway', (w) => w.gateway, "OpenBSD's route-to takes a next-hop address and finds the interface by the route to it")
  const byWan = new Map(wans.map((w) => [w.wan, w]))
  const hop = (w: WanSpec): string => (obsd ? w.gateway : `(${w.interface} ${w.gateway})`)
  const nets = [...new Set([...opts.lanInterfaces, ...(opts.otherInterfaces ?? []), ...wans.map((w) => w.interface)])]
  // In parentheses, addresses follow the interfaces as they change (DHCP, PPPoE) and
  // an interface without one yet is no error, where a table's entries are fixed when
  // the anchor loads and a missing address refuses it.
  const local = [`(self)`, ...nets.map((i) => `(${i}:network)`), ...NOT_ROUTED]
  const lines = [
    ...head(wans, opts),
    ...wans.map((w) => {
      // The pair's shared VIP, else a known address, is used as it is; `(wan0:0)`
      // follows the interface's first address as it changes, like MASQUERADE (without
      // :0 pf would spread connections over all of its addresses).
      const to = w.natAddress ?? w.address ?? `(${w.interface}:0)`
      return obsd ? `match out on ${w.interface} tagged ${TAG} nat-to ${to}` : `nat on ${w.interface} from any to any tagged ${TAG} -> ${to}`
    }),
    `match to ${list(local)} tag ${LOCAL_TAG}`,
    `pass out quick on ${list(wans.map((w) => w.interface))} tagged ${TAG}`,
    ...wans.map((w) => {
      // Floating: the state is made on the interface of the main table's route and
      // the replies come in on this WAN (with `set state-policy if-bound` they would
      // find no state).
      const from = `inet from ${list([`(${w.interface})`, ...(w.natAddress === null ? [] : [w.natAddress])])} to any ! tagged ${LOCAL_TAG}`
      return obsd ? `pass out quick ${from} route-to ${hop(w)} keep state (floating)` : `pass out quick route-to ${hop(w)} ${from} keep state (floating)`
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
    const match = `inet from any to any ! tagged ${LOCAL_TAG}`
    // The grammars differ: OpenBSD takes route-to among the filter options after
    // from/to, FreeBSD before them.
    lines.push(obsd ? `pass in quick on ${lans} ${match} route-to ${pool} tag ${TAG}` : `pass in quick on ${lans} route-to ${pool} ${match} tag ${TAG}`)
  }
  return `${lines.join('\n')}\n`
}

/** Throws RulesError('pfSharedWan') when two WANs have the same `what`. */
function checkDistinct(wans: WanSpec[], what: string, key: (w: WanSpec) => string, why: string): void {
  const seen = new Map<string, number>()
  for (const w of wans) {
    const first = seen.get(key(w))
    if (first !== undefined) throw new RulesError('pfSharedWan', `wan.${first} and wan.${w.wan} have the same ${what} ${key(w)}: ${why}; give each WAN its own for wan.rules = pf`)
    seen.set(key(w), w.wan)
  }
}

/** The comments that open the anchor: what the main ruleset needs for it to work. */
function head(wans: WanSpec[], opts: PfOptions): string[] {
  const obsd = opts.dialect === 'openbsd'
  // The grammars differ here too: reply-to is a filter option after from/to on
  // OpenBSD, a route right after `on IF` on FreeBSD.
  const replyTo = (w: WanSpec): string => (obsd ? `pass in on ${w.interface} ... reply-to ${w.gateway}` : `pass in on ${w.interface} reply-to (${w.interface} ${w.gateway}) ...`)
  return [
    `# carpd multi-WAN anchor (${obsd ? 'OpenBSD' : 'FreeBSD 13.1 or later'}): pfctl -a carpd/wan -f FILE`,
    '# The main pf.conf needs:',
    ...(obsd ? [] : ['#   nat-anchor "carpd/wan"   with the translation rules (the nat rules here run only through it)']),
    '#   anchor "carpd/wan"       after your own block rules for LAN traffic, which must be quick:',
    '#                            the pass rules here are quick (a quick pass for LAN traffic before',
    "#                            it keeps the split off; the router's own traffic from a WAN's address",
    '#                            is passed here, outbound)',
    '# and, on your pass rules for connections that come in on a WAN, so their replies leave by it:',
    ...wans.map((w) => `#   ${replyTo(w)}`),
  ]
}

function gcd(a: number, b: number): number {
  return b === 0 ? a : gcd(b, a % b)
}
