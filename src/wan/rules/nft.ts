// Multi-WAN rules for `nft -f` (SPEC "Multi-WAN"). Pure: text out.
//
// carpd owns one table, `ip carpd_wan`. The file creates it when missing, deletes it
// and defines it anew: nft runs a file as one transaction, so the old rules are
// replaced atomically (no moment without marks or NAT), and a first load works the
// same as a reload. No other table is named, so the board's own rules are untouched.
//
// Unlike the iptables flavour, this one sets the whole packet mark (and ct mark) of
// the connections it marks, not only carpd's bits 0xff00: merging ct mark into meta
// mark under a mask needs an expression over two registers, which older nft and
// kernels (the ones on small boards) cannot do. Connections carpd does not mark are
// left as they are, and every match below looks only at carpd's bits.
//
// prerouting (filter, priority mangle), in order:
//   a connection with a WAN mark: restore it, done   it keeps its WAN for its lifetime
//   not new: done                                     never move a connection carpd did not mark
//   new in on WAN N: mark N, save                     replies leave the way the request came in
//   new to the router itself: done                    no WAN to choose
//   other new: split by weight (numgen random), on the packet only
// save (filter, hook postrouting, priority mangle): a packet leaving on WAN N with
// WAN N's mark saves it into its connection, so only connections that really leave
// by a WAN carry its mark and a drain never cuts a LAN-to-DMZ or VPN connection.
// postrouting (nat, priority srcnat): per WAN, snat to the pair's VIP on it or its
// own address, or masquerade.
// Priorities are numbers (-150 mangle, 100 srcnat): nft before 0.9.1 has no names.

import { NFT_TABLE, WAN_MARK_MASK, type WanPlan, type WanSpec, hex, wanMark } from '../types.js'

/** The file for `nft -f`: carpd's table only, replaced in one transaction. */
export function renderNft(wans: WanSpec[], plan: WanPlan): string {
  const mask = hex(WAN_MARK_MASK)
  const split = splitRule(plan)
  const lines = [
    `table ip ${NFT_TABLE}`,
    `delete table ip ${NFT_TABLE}`,
    `table ip ${NFT_TABLE} {`,
    '\tchain prerouting {',
    '\t\ttype filter hook prerouting priority -150; policy accept;',
    `\t\tct mark & ${mask} != 0x0 meta mark set ct mark accept`,
    '\t\tct state != new accept',
    // In on the WAN, or on the macvlan of a VIP there (a virtual MAC: a port forward to the pair's address).
    ...wans.map((w) => {
      const ins = [w.interface, ...w.vipInterfaces].map((i) => `"${i}"`)
      return `\t\tiifname ${ins.length === 1 ? ins[0] : `{ ${ins.join(', ')} }`} meta mark set ${hex(wanMark(w.wan))} ct mark set meta mark accept`
    }),
    '\t\tfib daddr type local accept',
    // No active WAN (an empty plan): new connections stay unmarked and follow the
    // main routing table.
    ...(split === null ? [] : [`\t\t${split}`]),
    '\t}',
    '\tchain save {',
    '\t\ttype filter hook postrouting priority -150; policy accept;',
    ...wans.map((w) => `\t\toifname "${w.interface}" meta mark & ${mask} == ${hex(wanMark(w.wan))} ct mark set meta mark`),
    '\t}',
    '\tchain postrouting {',
    '\t\ttype nat hook postrouting priority 100; policy accept;',
    ...wans.map((w) => {
      // The pair's shared VIP on this WAN, else a known own address, gives snat;
      // without one masquerade follows whatever address the interface has (DHCP, PPPoE).
      const to = w.natAddress ?? w.address
      const action = to === null ? 'masquerade' : `snat to ${to}`
      return `\t\toifname "${w.interface}" meta mark & ${mask} == ${hex(wanMark(w.wan))} ${action}`
    }),
    '\t}',
    '}',
  ]
  return `${lines.join('\n')}\n`
}

/**
 * `numgen random mod TOTAL` draws 0..TOTAL-1; each active WAN gets a range as wide as
 * its weight, so its share is exactly weight / TOTAL. One WAN needs no draw.
 */
function splitRule(plan: WanPlan): string | null {
  if (plan.active.length === 0) return null
  if (plan.active.length === 1) return `meta mark set ${hex(wanMark(plan.active[0]!.wan))}`
  const total = plan.active.reduce((sum, a) => sum + a.weight, 0)
  let from = 0
  const ranges = plan.active.map((a) => {
    // A range one wide is written as a single value: nft before 1.0.3 refuses "3-3"
    // ("Range has zero or negative size"), which Debian 11 and Ubuntu 22.04 ship.
    const key = a.weight === 1 ? `${from}` : `${from}-${from + a.weight - 1}`
    const range = `${key} : ${hex(wanMark(a.wan))}`
    from += a.weight
    return range
  })
  return `meta mark set numgen random mod ${total} map { ${ranges.join(', ')} }`
}
