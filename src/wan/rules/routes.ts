// Linux policy routing for multi-WAN (SPEC "Multi-WAN"): argument arrays for `ip`,
// never a shell line, so nothing in a name or address can be read as shell syntax.
// Pure: commands out; platform/ runs them.
//
// Each WAN N has its own table (100 + N) with a default route through its gateway,
// and rules sending it what it should carry:
//   pref 9999:      look up main, but not its default route: connected and static
//                   routes (the LANs, a VPN) win over the WAN marks, so traffic
//                   between the router's own networks is never sent to a WAN
//   pref 10000 + N: packets with WAN N's mark (the firewall rules set it)
//   pref 10100 + N: packets from WAN N's own address: the router's own traffic, such
//                   as the health probes bound to that address, leaves through its WAN
//   pref 10200 + N: packets from the pair's VIP on WAN N (natAddress): a service of
//                   the router bound to it (a VPN, SSH) answers through that WAN
//   pref 10300:     the router's own other traffic (`iif lo`: locally generated;
//                   its resolver, NTP, updates, a VPN it starts) to table 100, which
//                   holds the default route of the WAN the plan leads with (the
//                   heaviest of the best tier), with that WAN's address as source;
//                   with no WAN to lead (every one offline) a `throw` route there
//                   hands the lookup on to the main table, as before carpd
// carpd owns these preferences and tables and nothing else.

import {
  WAN_MARK_MASK,
  WAN_RULE_PREF_MARK,
  WAN_RULE_PREF_OWN,
  WAN_TABLE_BASE,
  WAN_RULE_PREF_SHARED,
  WAN_RULE_PREF_SOURCE,
  type WanSpec,
  hex,
  wanMark,
  wanTable,
} from '../types.js'

/** The main-table rule that lets connected and static routes win over the marks. */
export const WAN_RULE_PREF_MAIN = WAN_RULE_PREF_MARK - 1

export interface RouteCommands {
  /**
   * Run first, each allowed to fail with "No such file or directory" (nothing to
   * delete): removing carpd's rules before adding them makes a reload idempotent,
   * where `ip rule add` alone would add a duplicate each time.
   */
  del: string[][]
  /** Then these, in order; each must succeed. */
  add: string[][]
}

/** The highest route metric: the unreachable default loses to any real one. */
const UNREACHABLE_METRIC = 4294967295

/**
 * Table 100's route when no WAN leads the router's own traffic (every one offline, or
 * carpd stopping): a `throw` hands the lookup on to the main table, as before carpd.
 */
export function ownTableHandsOn(): string[] {
  return ['ip', 'route', 'replace', 'throw', 'default', 'table', String(WAN_TABLE_BASE)]
}

/**
 * `own`: the WAN the router's own traffic leaves through (policy.ts ownWan), or null
 * to leave it to the main table.
 */
export function routeCommands(wans: WanSpec[], own: number | null = null): RouteCommands {
  // A source rule is deleted even when the address is unknown now: an earlier load
  // may have added it for an address the WAN has since lost.
  const prefs = [WAN_RULE_PREF_MAIN, ...wans.flatMap((w) => [WAN_RULE_PREF_MARK + w.wan, WAN_RULE_PREF_SOURCE + w.wan, WAN_RULE_PREF_SHARED + w.wan]), WAN_RULE_PREF_OWN]
  const del = prefs.map((pref) => ['ip', 'rule', 'del', 'pref', String(pref)])
  const add = [['ip', 'rule', 'add', 'pref', String(WAN_RULE_PREF_MAIN), 'table', 'main', 'suppress_prefixlength', '0']]
  for (const w of wans) {
    const table = String(wanTable(w.wan))
    // A last-resort route: when the kernel drops the default route (the link went
    // down, the address went away) marked traffic is refused instead of leaking out of
    // another WAN through the main table, where no NAT rule of this WAN matches it.
    add.push(['ip', 'route', 'replace', 'unreachable', 'default', 'metric', String(UNREACHABLE_METRIC), 'table', table])
    add.push(['ip', 'route', 'replace', 'default', 'via', w.gateway, 'dev', w.interface, 'onlink', 'table', table])
    add.push(['ip', 'rule', 'add', 'pref', String(WAN_RULE_PREF_MARK + w.wan), 'fwmark', `${hex(wanMark(w.wan))}/${hex(WAN_MARK_MASK)}`, 'table', table])
    if (w.address !== null) add.push(['ip', 'rule', 'add', 'pref', String(WAN_RULE_PREF_SOURCE + w.wan), 'from', w.address, 'table', table])
    if (w.natAddress !== null) add.push(['ip', 'rule', 'add', 'pref', String(WAN_RULE_PREF_SHARED + w.wan), 'from', w.natAddress, 'table', table])
  }
  const ownTable = String(WAN_TABLE_BASE)
  const lead = wans.find((w) => w.wan === own)
  if (lead === undefined) add.push(ownTableHandsOn())
  else add.push(['ip', 'route', 'replace', 'default', 'via', lead.gateway, 'dev', lead.interface, 'onlink', ...(lead.address === null ? [] : ['src', lead.address]), 'table', ownTable])
  add.push(['ip', 'rule', 'add', 'pref', String(WAN_RULE_PREF_OWN), 'iif', 'lo', 'table', ownTable])
  return { del, add }
}

/** The commands as shell text, one per line, for `carpd rules --routes`. */
export function renderRouteCommands(wans: WanSpec[], own: number | null = null): string {
  const { del, add } = routeCommands(wans, own)
  const lines = [
    '# first remove carpd\'s rules ("No such file or directory" only means there was none)',
    ...del.map(shellLine),
    '# then add them',
    ...add.map(shellLine),
  ]
  return `${lines.join('\n')}\n`
}

function shellLine(argv: string[]): string {
  return argv.map(shellQuote).join(' ')
}

/** Words of safe characters as they are; anything else in single quotes. */
export function shellQuote(word: string): string {
  if (/^[A-Za-z0-9_@%+=:,./-]+$/.test(word)) return word
  return `'${word.replace(/'/g, `'\\''`)}'`
}
