// Multi-WAN: the shapes every part shares (SPEC "Multi-WAN").
//
// Each WAN N owns a mark, N << 8 under WAN_MARK_MASK (0xff00): packets and connections
// carrying it leave through WAN N (policy routing: table WAN_TABLE_BASE + N). carpd
// touches only those mark bits (iptables CONNMARK under the mask), its own chains, its
// own nft table or pf anchor, and its own routing tables and rule priorities.

import type { WanConfig } from '../config/types.js'

/** The mark bits carpd owns; WAN N is N << 8 (N 1..32). */
export const WAN_MARK_MASK = 0xff00
export const WAN_MARK_SHIFT = 8
/** Routing table of WAN N: 100 + N. */
export const WAN_TABLE_BASE = 100
/** `ip rule` priorities: marks at 10000 + N, each WAN's own source address at 10100 + N... */
export const WAN_RULE_PREF_MARK = 10_000
export const WAN_RULE_PREF_SOURCE = 10_100
/** ...and the pair's VIP on it (natAddress) at 10200 + N. */
export const WAN_RULE_PREF_SHARED = 10_200
/** The router's own traffic (`iif lo`) at 10300, to table WAN_TABLE_BASE: the default route of the WAN the plan leads with. */
export const WAN_RULE_PREF_OWN = 10_300

/** carpd's own names in the firewall. */
export const IPT_CHAIN_MANGLE = 'CARPD_WAN'
export const IPT_CHAIN_MANGLE_OUT = 'CARPD_WAN_OUT'
export const IPT_CHAIN_NAT = 'CARPD_WAN_NAT'
export const NFT_TABLE = 'carpd_wan'
export const PF_ANCHOR = 'carpd/wan'

/** A mark or mask as iptables, nft and ip print it: 0x100. */
export function hex(n: number): string {
  return `0x${n.toString(16)}`
}

export function wanMark(wan: number): number {
  return wan << WAN_MARK_SHIFT
}

export function wanTable(wan: number): number {
  return WAN_TABLE_BASE + wan
}

/** online: carries traffic; degraded: lossy or slow over the probe window, carries traffic at half its weight; offline: dead (failed rounds in a row), none. */
export type WanState = 'online' | 'degraded' | 'offline'

/** A WAN as the rule generators see it: its configuration and, when known, its own address. */
export interface WanSpec extends WanConfig {
  /** The WAN interface's own IPv4 address (the probes' and the source rule's; SNAT's without a natAddress); null: unknown. */
  address: string | null
}

/** One WAN that carries new connections, with its share. */
export interface ActiveWan {
  wan: number
  weight: number
}

/**
 * Where new connections go. `normal`: the lowest tier that has a healthy WAN, split
 * by weight among its healthy WANs. `allDown`: no WAN is healthy; new connections
 * are split over every WAN by weight (the last resort, as mwan3's default route:
 * refusing them would only make sure nothing works).
 */
export interface WanPlan {
  mode: 'normal' | 'allDown'
  tier: number | null // the tier carrying traffic in normal mode
  active: ActiveWan[] // sorted by WAN number
}

/** A jump into carpd's own chain that the rules need in a built-in chain. */
export interface WanHook {
  table: string
  chain: string
  rule: string[]
}

/** What the WAN runtime needs of the platform (platform/wan.ts has the Linux one). */
export interface WanApplier {
  /** Checks then loads `text`; rejects (with the tool's message) and changes nothing when the check fails. */
  loadRules(flavour: 'iptables' | 'nft', text: string, hooks: readonly WanHook[]): Promise<void>
  /**
   * Runs the policy-routing commands: `del` ignoring failures (idempotent), then every
   * `add`; rejects when one failed, with the failed add commands in `failed` when known.
   */
  routes(cmds: { del: string[][]; add: string[][] }): Promise<void>
  /** Removes the connections marked for WAN `wan`; resolves with how many went. */
  flushConnections(wan: number): Promise<number>
  /**
   * What of the loaded set is no longer in the kernel (someone else's iptables-restore,
   * `nft flush ruleset`, `ip rule flush`, a route deleted): one phrase each; [] when
   * all is there. `routes` are the add commands of the last load.
   */
  drift?(flavour: 'iptables' | 'nft', hooks: readonly WanHook[], routes: readonly string[][]): Promise<string[]>
}
