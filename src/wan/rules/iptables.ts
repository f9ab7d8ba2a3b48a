// Multi-WAN rules for `iptables-restore --noflush` (SPEC "Multi-WAN"). Pure: text out.
//
// carpd owns two chains, CARPD_WAN (mangle) and CARPD_WAN_NAT (nat), and the mark
// bits 0xff00. The text declares and flushes only those chains, so loading it
// replaces carpd's rules in one commit per table and leaves every other rule of the
// board alone (--noflush). The jumps from the built-in chains are not part of the
// text: iptables-restore cannot say "insert once", and flushing PREROUTING or
// POSTROUTING would wipe the operator's rules. iptablesHooks() lists them for the
// apply step to check (-C) and insert (-I) after the chains exist.
//
// mangle, CARPD_WAN (hooked from PREROUTING), for every packet:
//   restore the connection's WAN mark   a connection keeps its WAN for its lifetime
//   marked: RETURN                      (nothing else to decide)
//   not NEW: RETURN                     never move a connection carpd did not mark
//   NEW in on WAN N: mark N             replies leave by the WAN the request came in on
//                                       (in on its interface, or a VIP's macvlan there)
//   NEW to the router itself: skip      no WAN to choose (and a drain must not cut it)
//   save an inbound mark                into the connection (port forwards)
//   NEW, still unmarked: split          by weight over plan.active (statistic random),
//                                       on the packet only
// mangle, CARPD_WAN_OUT (hooked from POSTROUTING): a packet leaving on WAN N with
// WAN N's mark saves it into its connection. So only connections that really leave
// by a WAN carry its mark: a LAN-to-DMZ or VPN connection the split marked but the
// main table routed elsewhere keeps no mark, and draining a dead WAN never cuts it.
// nat, CARPD_WAN_NAT (hooked from POSTROUTING): per WAN, SNAT to the pair's VIP on
// it or its own address, or MASQUERADE, only for packets leaving on that WAN with
// that WAN's mark.

import {
  IPT_CHAIN_MANGLE,
  IPT_CHAIN_MANGLE_OUT,
  IPT_CHAIN_NAT,
  WAN_MARK_MASK,
  type WanPlan,
  type WanSpec,
  hex,
  wanMark,
} from '../types.js'

/**
 * Digits of a statistic probability. The kernel keeps it as a 31-bit fraction (about
 * 9.3 digits), so 10 keep each WAN's share as exact as the kernel can hold it.
 */
const PROBABILITY_DIGITS = 10

/** A jump carpd needs in a built-in chain: `iptables -t TABLE -C|-I CHAIN ...rule`. */
export interface IptablesHook {
  table: string
  chain: string
  rule: string[]
}

/** `--mark`/`--set-xmark` operand for WAN N under carpd's mask, e.g. 0x100/0xff00. */
function markOf(wan: number): string {
  return `${hex(wanMark(wan))}/${hex(WAN_MARK_MASK)}`
}

const MASKS = `--nfmask ${hex(WAN_MARK_MASK)} --ctmask ${hex(WAN_MARK_MASK)}`
const UNMARKED = `-m mark --mark 0x0/${hex(WAN_MARK_MASK)}`

/**
 * The rules text for `iptables-restore --noflush`. Every WAN in `wans` keeps its
 * inbound marking and its NAT rule whatever the plan says (its existing connections
 * drain through it); only the split of new connections follows `plan.active`.
 */
export function renderIptables(wans: WanSpec[], plan: WanPlan): string {
  const m = `-A ${IPT_CHAIN_MANGLE}`
  const lines = [
    '*mangle',
    `:${IPT_CHAIN_MANGLE} - [0:0]`,
    `-F ${IPT_CHAIN_MANGLE}`,
    `${m} -j CONNMARK --restore-mark ${MASKS}`,
    `${m} -m mark ! --mark 0x0/${hex(WAN_MARK_MASK)} -j RETURN`,
    `${m} -m conntrack ! --ctstate NEW -j RETURN`,
    // In on the WAN, or on the macvlan of a VIP there (a virtual MAC: a port forward to the pair's address).
    ...wans.flatMap((w) => [w.interface, ...w.vipInterfaces].map((i) => `${m} -i ${i} -j MARK --set-xmark ${markOf(w.wan)}`)),
    `${m} -m mark ! --mark 0x0/${hex(WAN_MARK_MASK)} -j CONNMARK --save-mark ${MASKS}`,
    ...splitRules(plan).map((rule) => `${m} ${UNMARKED} -m addrtype ! --dst-type LOCAL ${rule}`),
    `:${IPT_CHAIN_MANGLE_OUT} - [0:0]`,
    `-F ${IPT_CHAIN_MANGLE_OUT}`,
    ...wans.map((w) => `-A ${IPT_CHAIN_MANGLE_OUT} -o ${w.interface} -m mark --mark ${markOf(w.wan)} -j CONNMARK --save-mark ${MASKS}`),
    'COMMIT',
    '*nat',
    `:${IPT_CHAIN_NAT} - [0:0]`,
    `-F ${IPT_CHAIN_NAT}`,
    ...wans.map((w) => {
      // The pair's shared VIP on this WAN, else a known own address, gives SNAT;
      // without one MASQUERADE follows whatever address the interface has (DHCP, PPPoE).
      const to = w.natAddress ?? w.address
      const target = to === null ? 'MASQUERADE' : `SNAT --to-source ${to}`
      return `-A ${IPT_CHAIN_NAT} -o ${w.interface} -m mark --mark ${markOf(w.wan)} -j ${target}`
    }),
    'COMMIT',
  ]
  return `${lines.join('\n')}\n`
}

/**
 * One rule per active WAN. Rules are tried in order, so rule i sees only the
 * connections the rules before it left: to give WAN i the share w_i / W it must take
 * w_i / (w_i + ... + w_last) of those. The last takes all that is left, so no
 * rounding can leave a connection unmarked.
 */
function splitRules(plan: WanPlan): string[] {
  let rest = plan.active.reduce((sum, a) => sum + a.weight, 0)
  return plan.active.map((a, i) => {
    const mark = `-j MARK --set-xmark ${markOf(a.wan)}`
    const last = i === plan.active.length - 1
    const rule = last ? mark : `-m statistic --mode random --probability ${(a.weight / rest).toFixed(PROBABILITY_DIGITS)} ${mark}`
    rest -= a.weight
    return rule
  })
}

/**
 * The jumps into carpd's chains. The apply step checks each with `iptables -t TABLE
 * -C CHAIN ...rule` and inserts it (`-I CHAIN 1`) only when missing, after loading
 * the chains: built-in chains hold the operator's rules and are never flushed.
 * First in PREROUTING so the mark is restored before anything routes on it.
 */
export function iptablesHooks(): IptablesHook[] {
  return [
    { table: 'mangle', chain: 'PREROUTING', rule: ['-j', IPT_CHAIN_MANGLE] },
    { table: 'mangle', chain: 'POSTROUTING', rule: ['-j', IPT_CHAIN_MANGLE_OUT] },
    { table: 'nat', chain: 'POSTROUTING', rule: ['-j', IPT_CHAIN_NAT] },
  ]
}
