// The multi-WAN rule generators (src/wan/rules/): golden texts for every flavour, then
// the real tools (iptables-restore, nft, ip) reading the texts inside a throwaway
// network namespace when this runs as root. The host's own namespace is never touched.
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Config } from '../../src/config/types.js'
import {
  RulesError,
  iptablesHooks,
  parseWanStates,
  renderIptables,
  renderNft,
  renderPf,
  renderRouteCommands,
  renderRules,
  renderWanSet,
  routeCommands,
} from '../../src/wan/rules/index.js'
import { shellQuote } from '../../src/wan/rules/routes.js'
import { ownWan, plan } from '../../src/wan/policy.js'
import type { WanPlan, WanSpec } from '../../src/wan/types.js'
import { load } from '../helpers/config-fixtures.js'

/** Two WANs sharing tier 1 by 3:1 (one with a known address: SNAT; one without: MASQUERADE), an LTE backup in tier 2. */
const WANS: WanSpec[] = [
  { wan: 1, interface: 'wan0', gateway: '203.0.113.1', weight: 3, tier: 1, probes: ['203.0.113.53'], probeNeed: 1, natAddress: null, vipInterfaces: [], address: '203.0.113.10' },
  { wan: 2, interface: 'wan1', gateway: '198.51.100.1', weight: 1, tier: 1, probes: ['198.51.100.53'], probeNeed: 1, natAddress: null, vipInterfaces: [], address: null },
  { wan: 3, interface: 'lte0', gateway: '192.0.2.254', weight: 1, tier: 2, probes: ['192.0.2.53'], probeNeed: 1, natAddress: null, vipInterfaces: [], address: '192.0.2.10' },
]

const ALL_UP: WanPlan = { mode: 'normal', tier: 1, active: [{ wan: 1, weight: 3 }, { wan: 2, weight: 1 }] }
const WAN2_DOWN: WanPlan = { mode: 'normal', tier: 1, active: [{ wan: 1, weight: 3 }] }
const TIER2: WanPlan = { mode: 'normal', tier: 2, active: [{ wan: 3, weight: 1 }] }
const ALL_DOWN: WanPlan = { mode: 'allDown', tier: null, active: [{ wan: 1, weight: 3 }, { wan: 2, weight: 1 }, { wan: 3, weight: 1 }] }
const NONE: WanPlan = { mode: 'allDown', tier: null, active: [] }

const text = (...lines: string[]): string => `${lines.join('\n')}\n`

// ---------------------------------------------------------------------------
// iptables

const IPT_HEAD = [
  '*mangle',
  ':CARPD_WAN - [0:0]',
  '-F CARPD_WAN',
  '-A CARPD_WAN -j CONNMARK --restore-mark --nfmask 0xff00 --ctmask 0xff00',
  '-A CARPD_WAN -m mark ! --mark 0x0/0xff00 -j RETURN',
  '-A CARPD_WAN -m conntrack ! --ctstate NEW -j RETURN',
  '-A CARPD_WAN -i wan0 -j MARK --set-xmark 0x100/0xff00',
  '-A CARPD_WAN -i wan1 -j MARK --set-xmark 0x200/0xff00',
  '-A CARPD_WAN -i lte0 -j MARK --set-xmark 0x300/0xff00',
  '-A CARPD_WAN -m mark ! --mark 0x0/0xff00 -j CONNMARK --save-mark --nfmask 0xff00 --ctmask 0xff00',
]
const IPT_SPLIT = '-A CARPD_WAN -m mark --mark 0x0/0xff00 -m addrtype ! --dst-type LOCAL'
const IPT_TAIL = [
  ':CARPD_WAN_OUT - [0:0]',
  '-F CARPD_WAN_OUT',
  '-A CARPD_WAN_OUT -o wan0 -m mark --mark 0x100/0xff00 -j CONNMARK --save-mark --nfmask 0xff00 --ctmask 0xff00',
  '-A CARPD_WAN_OUT -o wan1 -m mark --mark 0x200/0xff00 -j CONNMARK --save-mark --nfmask 0xff00 --ctmask 0xff00',
  '-A CARPD_WAN_OUT -o lte0 -m mark --mark 0x300/0xff00 -j CONNMARK --save-mark --nfmask 0xff00 --ctmask 0xff00',
  'COMMIT',
  '*nat',
  ':CARPD_WAN_NAT - [0:0]',
  '-F CARPD_WAN_NAT',
  '-A CARPD_WAN_NAT -o wan0 -m mark --mark 0x100/0xff00 -j SNAT --to-source 203.0.113.10',
  '-A CARPD_WAN_NAT -o wan1 -m mark --mark 0x200/0xff00 -j MASQUERADE',
  '-A CARPD_WAN_NAT -o lte0 -m mark --mark 0x300/0xff00 -j SNAT --to-source 192.0.2.10',
  'COMMIT',
]

t.test('iptables: tier 1 split 3:1, SNAT for a known address, MASQUERADE otherwise', async (t) => {
  t.equal(
    renderIptables(WANS, ALL_UP),
    text(
      ...IPT_HEAD,
      `${IPT_SPLIT} -m statistic --mode random --probability 0.7500000000 -j MARK --set-xmark 0x100/0xff00`,
      `${IPT_SPLIT} -j MARK --set-xmark 0x200/0xff00`,
      ...IPT_TAIL,
    ),
  )
})

t.test('iptables: one WAN down, the tier-2 fallback, all down, no active WAN', async (t) => {
  t.equal(renderIptables(WANS, WAN2_DOWN), text(...IPT_HEAD, `${IPT_SPLIT} -j MARK --set-xmark 0x100/0xff00`, ...IPT_TAIL), 'wan.2 down: every new connection on wan.1')
  t.equal(renderIptables(WANS, TIER2), text(...IPT_HEAD, `${IPT_SPLIT} -j MARK --set-xmark 0x300/0xff00`, ...IPT_TAIL), 'tier 1 down: the LTE backup')
  t.equal(
    renderIptables(WANS, ALL_DOWN),
    text(
      ...IPT_HEAD,
      `${IPT_SPLIT} -m statistic --mode random --probability 0.6000000000 -j MARK --set-xmark 0x100/0xff00`,
      `${IPT_SPLIT} -m statistic --mode random --probability 0.5000000000 -j MARK --set-xmark 0x200/0xff00`,
      `${IPT_SPLIT} -j MARK --set-xmark 0x300/0xff00`,
      ...IPT_TAIL,
    ),
    'all down: 3/5, then 1/2 of the rest, then the rest',
  )
  t.equal(renderIptables(WANS, NONE), text(...IPT_HEAD, ...IPT_TAIL), 'nothing active: new connections stay unmarked (main table)')
})

t.test('iptables: each probability is w_i over the weights from i on, to 10 digits', async (t) => {
  const three: WanPlan = { mode: 'normal', tier: 1, active: [1, 2, 3].map((wan) => ({ wan, weight: 1 })) }
  const probabilities = [...renderIptables(WANS, three).matchAll(/--probability (\S+)/g)].map((m) => m[1])
  t.same(probabilities, ['0.3333333333', '0.5000000000'])
  // The shares they give: 1/3, 2/3 x 1/2, the rest.
  const p = probabilities.map(Number)
  t.ok(Math.abs(p[0]! - 1 / 3) < 1e-9 && Math.abs((1 - p[0]!) * p[1]! - 1 / 3) < 1e-9)
})

t.test('iptables hooks: one jump per built-in chain, into carpd chains only', async (t) => {
  t.same(iptablesHooks(), [
    { table: 'mangle', chain: 'PREROUTING', rule: ['-j', 'CARPD_WAN'] },
    { table: 'mangle', chain: 'POSTROUTING', rule: ['-j', 'CARPD_WAN_OUT'] },
    { table: 'nat', chain: 'POSTROUTING', rule: ['-j', 'CARPD_WAN_NAT'] },
  ])
})

// ---------------------------------------------------------------------------
// nft

const NFT_HEAD = [
  'table ip carpd_wan',
  'delete table ip carpd_wan',
  'table ip carpd_wan {',
  '\tchain prerouting {',
  '\t\ttype filter hook prerouting priority -150; policy accept;',
  '\t\tct mark & 0xff00 != 0x0 meta mark set ct mark accept',
  '\t\tct state != new accept',
  '\t\tiifname "wan0" meta mark set 0x100 ct mark set meta mark accept',
  '\t\tiifname "wan1" meta mark set 0x200 ct mark set meta mark accept',
  '\t\tiifname "lte0" meta mark set 0x300 ct mark set meta mark accept',
  '\t\tfib daddr type local accept',
]
const NFT_TAIL = [
  '\t}',
  '\tchain save {',
  '\t\ttype filter hook postrouting priority -150; policy accept;',
  '\t\toifname "wan0" meta mark & 0xff00 == 0x100 ct mark set meta mark',
  '\t\toifname "wan1" meta mark & 0xff00 == 0x200 ct mark set meta mark',
  '\t\toifname "lte0" meta mark & 0xff00 == 0x300 ct mark set meta mark',
  '\t}',
  '\tchain postrouting {',
  '\t\ttype nat hook postrouting priority 100; policy accept;',
  '\t\toifname "wan0" meta mark & 0xff00 == 0x100 snat to 203.0.113.10',
  '\t\toifname "wan1" meta mark & 0xff00 == 0x200 masquerade',
  '\t\toifname "lte0" meta mark & 0xff00 == 0x300 snat to 192.0.2.10',
  '\t}',
  '}',
]

t.test('nft: the table replaced in one transaction, numgen ranges as wide as the weights', async (t) => {
  t.equal(
    renderNft(WANS, ALL_UP),
    text(...NFT_HEAD, '\t\tmeta mark set numgen random mod 4 map { 0-2 : 0x100, 3 : 0x200 }', ...NFT_TAIL),
  )
})

t.test('nft: one WAN down, tier 2, all down, no active WAN', async (t) => {
  t.equal(renderNft(WANS, WAN2_DOWN), text(...NFT_HEAD, '\t\tmeta mark set 0x100', ...NFT_TAIL), 'one WAN left: no draw')
  t.equal(renderNft(WANS, TIER2), text(...NFT_HEAD, '\t\tmeta mark set 0x300', ...NFT_TAIL))
  t.equal(
    renderNft(WANS, ALL_DOWN),
    text(...NFT_HEAD, '\t\tmeta mark set numgen random mod 5 map { 0-2 : 0x100, 3 : 0x200, 4 : 0x300 }', ...NFT_TAIL),
  )
  t.equal(renderNft(WANS, NONE), text(...NFT_HEAD, ...NFT_TAIL), 'nothing active: new connections stay unmarked')
})

// ---------------------------------------------------------------------------
// pf

// Each rule's purpose, with the pf.conf(5) text it relies on: OpenBSD's (revision
// 1.609, the 7.x page) and FreeBSD 15.0's, identical where one quote is given. No
// pfctl runs here (no BSD machine): these pin the text, the quotes say why it reads so.

/** Words of the anchor, each with the pf.conf(5) text that makes it necessary. */
const PF_QUOTES = {
  // "For each packet processed by the packet filter, the filter rules are evaluated in
  // a sequential order, from first to last. For block and pass, the last matching rule
  // decides what action is taken" -- without quick a later `pass in on $lan` of the
  // main ruleset wins and the route-to is lost. "Matching filter and translation rules
  // marked with the quick option are final and abort the evaluation of the rules in
  // other anchors and the main ruleset."
  quick: 'pass in quick on',
  // "Surrounding the interface name (and optional modifiers) in parentheses changes
  // this behaviour. When the interface name is surrounded by parentheses, the rule is
  // automatically updated whenever the interface changes its address." A DHCP WAN
  // without an address yet refuses no anchor; a table would be fixed at load ("dynamic
  // addresses are not permitted inside tables", OpenBSD's pfctl). (self) is every
  // interface's address (pf_if.c: "self" is IFG_ALL).
  local: 'match to { (self), (lan0:network), ',
  // CARP adverts go to 224.0.0.18: route-to'd to a gateway they would never reach the
  // peer (pf_route sends the packet to the route-to address).
  multicast: '224.0.0.0/4, 255.255.255.255 } tag CARPD_LOCAL',
  // "Tags are "sticky", meaning that the packet will be tagged even if the rule is not
  // the last matching rule." The tag set on the LAN side is seen when the route-to'd
  // packet is filtered again on the WAN (pf_route runs pf_test for PF_OUT there).
  tag: 'tag CARPD_WAN',
  notLocal: '! tagged CARPD_LOCAL',
  // "floating: States can match packets on any interfaces": the router's own packet is
  // filtered on the main route's interface and its replies come in on the route-to'd WAN.
  floating: 'keep state (floating)',
  // OpenBSD, round-robin: "considers given weights associated with address(es).
  // Weights can be specified between 1 and 65535." FreeBSD's pools have no weights.
  weight: 'weight 3',
  // FreeBSD: "nat-anchor <name> Evaluates the nat rules in the specified anchor."
  natAnchor: 'nat-anchor "carpd/wan"',
  // OpenBSD, reply-to: "routes packets that pass in the opposite direction (replies) to
  // the specified address ... useful only in rules that create state": it belongs on
  // the operator's pass rule for what comes in on a WAN.
  replyTo: 'reply-to',
}

const PF_HEAD_COMMON = [
  '# The main pf.conf needs:',
  '#   anchor "carpd/wan"       after your own block rules for LAN traffic, which must be quick:',
  '#                            the pass rules here are quick (a quick pass for LAN traffic before',
  "#                            it keeps the split off; the router's own traffic from a WAN's address",
  '#                            is passed here, outbound)',
  '# and, on your pass rules for connections that come in on a WAN, so their replies leave by it:',
]

const PF_HEAD_OPENBSD = [
  '# carpd multi-WAN anchor (OpenBSD): pfctl -a carpd/wan -f FILE',
  ...PF_HEAD_COMMON,
  '#   pass in on wan0 ... reply-to 203.0.113.1',
  '#   pass in on wan1 ... reply-to 198.51.100.1',
  '#   pass in on lte0 ... reply-to 192.0.2.254',
  // OpenBSD, match: "parameters are set every time a packet matches the rule ... the
  // parameter effectively becomes "sticky" until explicitly overridden: nat-to, ...".
  // Only what carpd's LAN rule tagged: the router's own packets (CARP adverts, probes)
  // keep their source, as the Linux backends SNAT only marked traffic. `:0`: the first
  // address only (a plain `(wan1)` is a round-robin pool of all of them).
  'match out on wan0 tagged CARPD_WAN nat-to 203.0.113.10',
  'match out on wan1 tagged CARPD_WAN nat-to (wan1:0)',
  'match out on lte0 tagged CARPD_WAN nat-to 192.0.2.10',
  'match to { (self), (lan0:network), (wan0:network), (wan1:network), (lte0:network), 224.0.0.0/4, 255.255.255.255 } tag CARPD_LOCAL',
  // The route-to'd packet is filtered again outbound on its WAN: passed here whatever
  // the main ruleset's outbound policy is, and only if the LAN rule passed it.
  'pass out quick on { wan0, wan1, lte0 } tagged CARPD_WAN',
  // The router's own traffic from a WAN's address (its probes) leaves by that WAN.
  'pass out quick inet from (wan0) to any ! tagged CARPD_LOCAL route-to 203.0.113.1 keep state (floating)',
  'pass out quick inet from (wan1) to any ! tagged CARPD_LOCAL route-to 198.51.100.1 keep state (floating)',
  'pass out quick inet from (lte0) to any ! tagged CARPD_LOCAL route-to 192.0.2.254 keep state (floating)',
]

const PF_HEAD_FREEBSD = [
  '# carpd multi-WAN anchor (FreeBSD 13.1 or later): pfctl -a carpd/wan -f FILE',
  PF_HEAD_COMMON[0]!,
  '#   nat-anchor "carpd/wan"   with the translation rules (the nat rules here run only through it)',
  ...PF_HEAD_COMMON.slice(1),
  // FreeBSD's grammar: pf-rule = action [ ( "in" | "out" ) ] ... [ "quick" ] [ "on"
  // ifspec ] [ route ] [ af ] ...: reply-to right after `on IF`.
  '#   pass in on wan0 reply-to (wan0 203.0.113.1) ...',
  '#   pass in on wan1 reply-to (wan1 198.51.100.1) ...',
  '#   pass in on lte0 reply-to (lte0 192.0.2.254) ...',
  // FreeBSD: "By default pfctl(8) enforces an ordering of the statement types in the
  // ruleset to: options, normalization, queueing, translation, filtering."
  'nat on wan0 from any to any tagged CARPD_WAN -> 203.0.113.10',
  'nat on wan1 from any to any tagged CARPD_WAN -> (wan1:0)',
  'nat on lte0 from any to any tagged CARPD_WAN -> 192.0.2.10',
  'match to { (self), (lan0:network), (dmz0:network), (sync0:network), (wan0:network), (wan1:network), (lte0:network), 224.0.0.0/4, 255.255.255.255 } tag CARPD_LOCAL',
  'pass out quick on { wan0, wan1, lte0 } tagged CARPD_WAN',
  // routehost = "(" interface-name address [ "/" mask-bits ] ")", before af and hosts.
  'pass out quick route-to (wan0 203.0.113.1) inet from (wan0) to any ! tagged CARPD_LOCAL keep state (floating)',
  'pass out quick route-to (wan1 198.51.100.1) inet from (wan1) to any ! tagged CARPD_LOCAL keep state (floating)',
  'pass out quick route-to (lte0 192.0.2.254) inet from (lte0) to any ! tagged CARPD_LOCAL keep state (floating)',
]

t.test('pf, OpenBSD: the head says what pf.conf needs; NAT and the outbound pass for tagged traffic; route-to weighted', async (t) => {
  const opts = { dialect: 'openbsd' as const, lanInterfaces: ['lan0'] }
  t.equal(
    renderPf(WANS, ALL_UP, opts),
    text(
      ...PF_HEAD_OPENBSD,
      'pass in quick on lan0 inet from any to any ! tagged CARPD_LOCAL route-to { 203.0.113.1 weight 3, 198.51.100.1 weight 1 } round-robin sticky-address tag CARPD_WAN',
    ),
  )
  t.equal(
    renderPf(WANS, WAN2_DOWN, opts),
    text(...PF_HEAD_OPENBSD, 'pass in quick on lan0 inet from any to any ! tagged CARPD_LOCAL route-to 203.0.113.1 tag CARPD_WAN'),
    'one WAN: a plain route-to',
  )
  const out = renderPf(WANS, ALL_UP, opts)
  for (const [purpose, words] of Object.entries(PF_QUOTES)) {
    if (purpose === 'natAnchor') t.notOk(out.includes(words), 'OpenBSD has no nat-anchor: its nat-to rules are filter rules')
    else t.ok(out.includes(words), `${purpose}: ${words}`)
  }
  // OpenBSD's pfctl: "route-to, reply-to and dup-to are not supported on match rules".
  t.notMatch(out, /^match .*route-to/m, 'route-to only on pass rules')
  t.notMatch(out, /^table /m, 'no table: its entries would be fixed at load')
})

t.test('pf, FreeBSD: nat-anchor in the head, nat rules before filter rules, (interface next-hop) pairs repeated by weight', async (t) => {
  const opts = { dialect: 'freebsd' as const, lanInterfaces: ['lan0', 'dmz0'], otherInterfaces: ['sync0'] }
  const pass = (pool: string): string => `pass in quick on { lan0, dmz0 } route-to ${pool} inet from any to any ! tagged CARPD_LOCAL tag CARPD_WAN`
  t.equal(renderPf(WANS, ALL_UP, opts), text(...PF_HEAD_FREEBSD, pass('{ (wan0 203.0.113.1), (wan0 203.0.113.1), (wan0 203.0.113.1), (wan1 198.51.100.1) } round-robin sticky-address')))
  t.equal(
    renderPf(WANS, ALL_DOWN, opts),
    text(...PF_HEAD_FREEBSD, pass('{ (wan0 203.0.113.1), (wan0 203.0.113.1), (wan0 203.0.113.1), (wan1 198.51.100.1), (lte0 192.0.2.254) } round-robin sticky-address')),
    'all down: every WAN in the pool',
  )
  t.equal(renderPf(WANS, TIER2, opts), text(...PF_HEAD_FREEBSD, pass('(lte0 192.0.2.254)')))
  t.equal(renderPf(WANS, NONE, opts), text(...PF_HEAD_FREEBSD), 'nothing active: no route-to rule, the main ruleset decides')
  const out = renderPf(WANS, ALL_UP, opts)
  const lines = out.split('\n')
  const lastNat = lines.map((l) => l.startsWith('nat ')).lastIndexOf(true)
  const firstFilter = lines.findIndex((l) => l.startsWith('pass ') || l.startsWith('match '))
  t.ok(lastNat > 0 && firstFilter > lastNat, 'translation before filtering')
  t.ok(out.includes(PF_QUOTES.natAnchor), 'the head asks for the nat-anchor')
  t.notOk(out.includes('weight'), 'no weight keyword in FreeBSD pools')
})

t.test('pf: two WANs on one interface, or (OpenBSD) one gateway, are refused with a code', async (t) => {
  const sameIf: WanSpec[] = [WANS[0]!, { ...WANS[1]!, interface: 'wan0' }]
  for (const dialect of ['openbsd', 'freebsd'] as const) {
    t.throws(() => renderPf(sameIf, ALL_UP, { dialect, lanInterfaces: ['lan0'] }), { code: 'pfSharedWan', message: /^wan\.1 and wan\.2 have the same interface wan0: pf NATs by the interface/ })
  }
  const sameGw: WanSpec[] = [WANS[0]!, { ...WANS[1]!, gateway: '203.0.113.1' }]
  t.throws(() => renderPf(sameGw, ALL_UP, { dialect: 'openbsd', lanInterfaces: ['lan0'] }), { code: 'pfSharedWan', message: /same gateway 203\.0\.113\.1: OpenBSD's route-to/ })
  t.match(renderPf(sameGw, ALL_UP, { dialect: 'freebsd', lanInterfaces: ['lan0'] }), '(wan1 203.0.113.1)', 'FreeBSD names the interface with the next hop')
})

t.test('pf: weights reduced by their gcd', async (t) => {
  const plan: WanPlan = { mode: 'normal', tier: 1, active: [{ wan: 1, weight: 4 }, { wan: 2, weight: 6 }] }
  t.match(renderPf(WANS, plan, { dialect: 'openbsd', lanInterfaces: ['lan0'] }), 'route-to { 203.0.113.1 weight 2, 198.51.100.1 weight 3 } round-robin sticky-address')
  t.match(
    renderPf(WANS, plan, { dialect: 'freebsd', lanInterfaces: ['lan0'] }),
    'route-to { (wan0 203.0.113.1), (wan0 203.0.113.1), (wan1 198.51.100.1), (wan1 198.51.100.1), (wan1 198.51.100.1) } round-robin sticky-address',
  )
})

t.test('pf without LAN interfaces is an error with a code', async (t) => {
  t.throws(() => renderPf(WANS, ALL_UP, { dialect: 'openbsd', lanInterfaces: [] }), { code: 'pfNoLanInterfaces', message: /carp\.N\.interface/ })
  let caught: unknown
  try {
    renderPf(WANS, ALL_UP, { dialect: 'freebsd', lanInterfaces: [] })
  } catch (err) {
    caught = err
  }
  t.ok(caught instanceof RulesError, 'a RulesError, for the CLI to tell from a bug')
})

t.test("a pair's shared VIP on a WAN is the NAT address in every flavour, before the board's own", async (t) => {
  const shared: WanSpec[] = [{ ...WANS[0]!, natAddress: '203.0.113.4' }, { ...WANS[1]!, natAddress: '198.51.100.4' }]
  t.match(renderIptables(shared, ALL_UP), /-A CARPD_WAN_NAT -o wan0 -m mark --mark 0x100\/0xff00 -j SNAT --to-source 203\.0\.113\.4\n/)
  t.match(renderIptables(shared, ALL_UP), /-A CARPD_WAN_NAT -o wan1 -m mark --mark 0x200\/0xff00 -j SNAT --to-source 198\.51\.100\.4\n/, 'instead of MASQUERADE')
  t.match(renderNft(shared, ALL_UP), /oifname "wan0" meta mark & 0xff00 == 0x100 snat to 203\.0\.113\.4\n/)
  t.match(renderPf(shared, ALL_UP, { dialect: 'openbsd', lanInterfaces: ['lan0'] }), /match out on wan1 tagged CARPD_WAN nat-to 198\.51\.100\.4\n/)
  t.match(renderPf(shared, ALL_UP, { dialect: 'freebsd', lanInterfaces: ['lan0'] }), /nat on wan0 from any to any tagged CARPD_WAN -> 203\.0\.113\.4\n/)
  // A service of the router bound to the VIP (a VPN it starts) leaves by its WAN too.
  t.match(renderPf(shared, ALL_UP, { dialect: 'openbsd', lanInterfaces: ['lan0'] }), /pass out quick inet from \{ \(wan0\), 203\.0\.113\.4 \} to any ! tagged CARPD_LOCAL route-to 203\.0\.113\.1 keep state \(floating\)\n/)
  // A virtual MAC: a port forward to the VIP comes in on its macvlan, and is marked for its WAN there too.
  const vmac: WanSpec[] = [{ ...shared[0]!, vipInterfaces: ['carp2'] }, shared[1]!]
  t.match(renderIptables(vmac, ALL_UP), /-A CARPD_WAN -i wan0 -j MARK --set-xmark 0x100\/0xff00\n-A CARPD_WAN -i carp2 -j MARK --set-xmark 0x100\/0xff00\n-A CARPD_WAN -i wan1 -j MARK/)
  t.match(renderNft(vmac, ALL_UP), /iifname \{ "wan0", "carp2" \} meta mark set 0x100 ct mark set meta mark accept\n\t\tiifname "wan1" meta mark set 0x200/)
  // The router's own services bound to the VIP answer through its WAN.
  const routes = routeCommands(shared)
  t.ok(routes.add.some((a) => a.join(' ') === 'ip rule add pref 10201 from 203.0.113.4 table 101'), 'a source rule for the VIP')
  t.ok(routes.del.some((d) => d.join(' ') === 'ip rule del pref 10201'), 'deleted first, like every carpd rule')
  t.notOk(routeCommands(WANS).add.some((a) => a.includes('10201')), 'none without a shared VIP')
})

t.test('pf from a pair file: a carp.N block on a WAN interface is no LAN to route from', async (t) => {
  const text = [
    'node = fw-a',
    'platform = openbsd',
    'sync.backend = none',
    'wan.rules = pf',
    'carp.1.interface = lan0',
    'carp.1.vip = 192.0.2.1/24',
    'carp.1.pass = one',
    'carp.2.interface = wan0',
    'carp.2.vip = 203.0.113.4/28',
    'carp.2.pass = two',
    'wan.1.interface = wan0',
    'wan.1.gateway = 203.0.113.1',
    'wan.1.probe = 203.0.113.53',
  ].join('\n')
  const r = load(text)
  if (!r.ok) throw new Error(r.errors.map((e) => e.message).join())
  const out = renderRules(r.config, null, { routes: false })
  t.match(out, /match to \{ \(self\), \(lan0:network\), \(wan0:network\), 224/)
  t.match(out, /match out on wan0 tagged CARPD_WAN nat-to 203\.0\.113\.4/)
  t.match(out, /pass in quick on lan0 inet from any/, 'routes from the LAN only')
})

// ---------------------------------------------------------------------------
// policy routing

t.test('routes: deletes first (every carpd preference), then a table and rules per WAN', async (t) => {
  const cmds = routeCommands(WANS)
  t.same(cmds.del, [9999, 10001, 10101, 10201, 10002, 10102, 10202, 10003, 10103, 10203, 10300].map((p) => ['ip', 'rule', 'del', 'pref', String(p)]))
  t.same(cmds.add, [
    ['ip', 'rule', 'add', 'pref', '9999', 'table', 'main', 'suppress_prefixlength', '0'],
    ['ip', 'route', 'replace', 'unreachable', 'default', 'metric', '4294967295', 'table', '101'],
    ['ip', 'route', 'replace', 'default', 'via', '203.0.113.1', 'dev', 'wan0', 'onlink', 'table', '101'],
    ['ip', 'rule', 'add', 'pref', '10001', 'fwmark', '0x100/0xff00', 'table', '101'],
    ['ip', 'rule', 'add', 'pref', '10101', 'from', '203.0.113.10', 'table', '101'],
    ['ip', 'route', 'replace', 'unreachable', 'default', 'metric', '4294967295', 'table', '102'],
    ['ip', 'route', 'replace', 'default', 'via', '198.51.100.1', 'dev', 'wan1', 'onlink', 'table', '102'],
    ['ip', 'rule', 'add', 'pref', '10002', 'fwmark', '0x200/0xff00', 'table', '102'],
    ['ip', 'route', 'replace', 'unreachable', 'default', 'metric', '4294967295', 'table', '103'],
    ['ip', 'route', 'replace', 'default', 'via', '192.0.2.254', 'dev', 'lte0', 'onlink', 'table', '103'],
    ['ip', 'rule', 'add', 'pref', '10003', 'fwmark', '0x300/0xff00', 'table', '103'],
    ['ip', 'rule', 'add', 'pref', '10103', 'from', '192.0.2.10', 'table', '103'],
    ['ip', 'route', 'replace', 'throw', 'default', 'table', '100'],
    ['ip', 'rule', 'add', 'pref', '10300', 'iif', 'lo', 'table', '100'],
  ])
})

t.test("routes: the router's own traffic takes the WAN the plan leads with, from its address", async (t) => {
  const own = (n: number | null) => routeCommands(WANS, n).add.filter((argv) => argv.at(-1) === '100')
  t.same(own(1), [
    ['ip', 'route', 'replace', 'default', 'via', '203.0.113.1', 'dev', 'wan0', 'onlink', 'src', '203.0.113.10', 'table', '100'],
    ['ip', 'rule', 'add', 'pref', '10300', 'iif', 'lo', 'table', '100'],
  ])
  t.same(own(2)[0], ['ip', 'route', 'replace', 'default', 'via', '198.51.100.1', 'dev', 'wan1', 'onlink', 'table', '100'], 'no address known: the kernel picks the source')
  t.same(own(null)[0], ['ip', 'route', 'replace', 'throw', 'default', 'table', '100'], 'no WAN leads: the lookup goes on to the main table')
  t.equal(ownWan(plan([{ wan: 1, tier: 1, weight: 3, state: 'online' }, { wan: 2, tier: 1, weight: 1, state: 'online' }])), 1, 'the heaviest')
  t.equal(ownWan(plan([{ wan: 1, tier: 1, weight: 3, state: 'offline' }, { wan: 2, tier: 1, weight: 1, state: 'online' }])), 2, 'the other when it dies')
  const degraded = [{ wan: 1, tier: 1, weight: 3, state: 'degraded' as const }, { wan: 2, tier: 1, weight: 1, state: 'online' as const }]
  t.equal(ownWan(plan(degraded), new Map(degraded.map((w) => [w.wan, w.state]))), 2, 'an online WAN before a heavier degraded one')
  t.equal(ownWan(plan(degraded)), 1, 'states unknown: by weight')
  t.equal(ownWan(plan([{ wan: 2, tier: 1, weight: 1, state: 'online' }, { wan: 1, tier: 1, weight: 1, state: 'online' }])), 1, 'the lowest number among equals')
  t.equal(ownWan(plan([{ wan: 1, tier: 1, weight: 1, state: 'offline' }])), null, 'every WAN offline: none')
})

t.test('routes as text: one shell-quoted command per line', async (t) => {
  t.equal(
    renderRouteCommands(WANS.slice(0, 2)),
    text(
      '# first remove carpd\'s rules ("No such file or directory" only means there was none)',
      'ip rule del pref 9999',
      'ip rule del pref 10001',
      'ip rule del pref 10101',
      'ip rule del pref 10201',
      'ip rule del pref 10002',
      'ip rule del pref 10102',
      'ip rule del pref 10202',
      'ip rule del pref 10300',
      '# then add them',
      'ip rule add pref 9999 table main suppress_prefixlength 0',
      'ip route replace unreachable default metric 4294967295 table 101',
      'ip route replace default via 203.0.113.1 dev wan0 onlink table 101',
      'ip rule add pref 10001 fwmark 0x100/0xff00 table 101',
      'ip rule add pref 10101 from 203.0.113.10 table 101',
      'ip route replace unreachable default metric 4294967295 table 102',
      'ip route replace default via 198.51.100.1 dev wan1 onlink table 102',
      'ip rule add pref 10002 fwmark 0x200/0xff00 table 102',
      'ip route replace throw default table 100',
      'ip rule add pref 10300 iif lo table 100',
    ),
  )
  t.equal(shellQuote('wan0.100'), 'wan0.100')
  t.equal(shellQuote('a b'), "'a b'")
  t.equal(shellQuote("it's;rm"), "'it'\\''s;rm'")
  t.equal(shellQuote(''), "''")
})

// ---------------------------------------------------------------------------
// renderRules: a configuration and WAN states in, the configured flavour out

const WAN_KEYS = [
  'wan.1.interface = wan0',
  'wan.1.gateway = 203.0.113.1',
  'wan.1.weight = 3',
  'wan.1.probe = 203.0.113.53',
  'wan.2.interface = wan1',
  'wan.2.gateway = 198.51.100.1',
  'wan.2.probe = 198.51.100.53',
  'wan.3.interface = lte0',
  'wan.3.gateway = 192.0.2.254',
  'wan.3.tier = 2',
  'wan.3.probe = 192.0.2.53',
]

function config(...lines: string[]): Config {
  const result = load(['node = fw-a', ...lines].join('\n'))
  if (!result.ok) throw new Error(result.errors.map((e) => e.message).join('\n'))
  return result.config
}

const ADDRESSES = new Map([
  ['wan0', '203.0.113.10'],
  ['lte0', '192.0.2.10'],
])

t.test('renderRules: wan.N blocks without any carp block; states pick the plan', async (t) => {
  const c = config(...WAN_KEYS)
  t.equal(c.carp.vhids.length, 0, 'a WAN-only file loads')
  t.equal(renderRules(c, null, { routes: false, addresses: ADDRESSES }), renderIptables(WANS, ALL_UP), 'no states: all up')
  t.equal(renderRules(c, ['online', 'offline', 'online'], { routes: false, addresses: ADDRESSES }), renderIptables(WANS, WAN2_DOWN))
  t.equal(renderRules(c, ['offline', 'offline', 'online'], { routes: false, addresses: ADDRESSES }), renderIptables(WANS, TIER2), 'tier 1 dead: tier 2')
  t.equal(renderRules(c, ['offline', 'degraded', 'online'], { routes: false, addresses: ADDRESSES }), renderIptables(WANS, { mode: 'normal', tier: 1, active: [{ wan: 2, weight: 1 }] }), 'a degraded WAN keeps its tier')
  t.equal(renderRules(c, ['online', 'degraded', 'online'], { routes: false, addresses: ADDRESSES }), renderIptables(WANS, { mode: 'normal', tier: 1, active: [{ wan: 1, weight: 6 }, { wan: 2, weight: 1 }] }), 'degraded next to online: half its weight')
  t.equal(renderRules(c, ['offline', 'offline', 'offline'], { routes: false, addresses: ADDRESSES }), renderIptables(WANS, ALL_DOWN), 'all down: every WAN')
  const noAddresses = WANS.map((w) => ({ ...w, address: null }))
  t.equal(renderRules(c, null, { routes: false }), renderIptables(noAddresses, ALL_UP), 'no addresses: MASQUERADE everywhere')
  t.equal(renderRules(c, null, { routes: true, addresses: ADDRESSES }), renderRouteCommands(WANS, 1), "the router's own traffic through WAN 1, the heaviest")
})

t.test('renderRules: nft, and pf in the dialect of the platform, from the carp interfaces', async (t) => {
  t.equal(renderRules(config(...WAN_KEYS, 'wan.rules = nft'), null, { routes: false, addresses: ADDRESSES }), renderNft(WANS, ALL_UP))
  const carp = ['carp.1.interface = lan0', 'carp.1.vip = 192.168.1.1/24', 'carp.1.pass = x', 'carp.2.interface = lan0', 'carp.2.vip = 192.168.1.2/24', 'carp.2.pass = x']
  const obsd = config(...WAN_KEYS, ...carp, 'platform = openbsd', 'sync.backend = none', 'wan.rules = pf')
  t.equal(renderRules(obsd, null, { routes: false, addresses: ADDRESSES }), renderPf(WANS, ALL_UP, { dialect: 'openbsd', lanInterfaces: ['lan0'], otherInterfaces: [] }))
  const fbsd = config(...WAN_KEYS, ...carp, 'platform = freebsd', 'sync.backend = none', 'wan.rules = pf')
  t.equal(renderRules(fbsd, null, { routes: false, addresses: ADDRESSES }), renderPf(WANS, ALL_UP, { dialect: 'freebsd', lanInterfaces: ['lan0'] }))
  // The sync link's network is local too: never routed to a WAN.
  const synced = config(...WAN_KEYS, ...carp, 'platform = openbsd', 'sync.backend = none', 'sync.interface = sync0', 'sync.peer = 10.9.9.2', 'wan.rules = pf')
  t.match(renderRules(synced, null, { routes: false, addresses: ADDRESSES }), 'match to { (self), (lan0:network), (sync0:network), (wan0:network)')
  // linux with pf cannot be written in a file (config/load.ts refuses it); printing
  // still picks OpenBSD's syntax.
  t.equal(renderRules({ ...fbsd, platform: 'linux' }, null, { routes: false, addresses: ADDRESSES }), renderPf(WANS, ALL_UP, { dialect: 'openbsd', lanInterfaces: ['lan0'] }))
  const noCarp = config(...WAN_KEYS, 'platform = openbsd', 'sync.backend = none', 'wan.rules = pf')
  t.throws(() => renderRules(noCarp, null, { routes: false }), { code: 'pfNoLanInterfaces' })
  t.throws(() => renderRules(obsd, null, { routes: true }), { code: 'routesNotForPf', message: /--routes/ })
})

t.test('renderRules: errors with codes for no WAN and a wrong number of states', async (t) => {
  t.throws(() => renderRules(config('carp.1.interface = lan0', 'carp.1.vip = 192.168.1.1/24', 'carp.1.pass = x'), null, { routes: false }), {
    code: 'noWans',
    message: /no wan\.N block/,
  })
  t.throws(() => renderRules(config(...WAN_KEYS), ['online'], { routes: false }), { code: 'badWanState' })
  t.throws(() => renderRules({ ...config(...WAN_KEYS), wanRules: 'ipfw' as never }, null, { routes: false }), /unknown wan\.rules ipfw/)
})

t.test('parseWanStates: up|down|degraded per WAN in wan number order', async (t) => {
  const wans = config(...WAN_KEYS).wans
  t.same(parseWanStates('up,down,up', wans), ['online', 'offline', 'online'])
  t.same(parseWanStates('degraded,up,up', wans), ['degraded', 'online', 'online'])
  t.same(parseWanStates(' down , down ,up', wans), ['offline', 'offline', 'online'], 'spaces are allowed')
  t.throws(() => parseWanStates('up,down', wans), { code: 'badWanState', message: /--wan-state up,down: 2 states for 3 WANs.*wan\.1, wan\.2, wan\.3/ })
  t.throws(() => parseWanStates('up,sideways,up', wans), { code: 'badWanState', message: /--wan-state up,sideways,up: "sideways" is not a state; give one up\|down\|degraded/ })
  t.throws(() => parseWanStates('up', []), { code: 'badWanState', message: /1 state for 0 WANs/ })
  t.throws(() => parseWanStates('up,up', wans.slice(0, 1)), { message: /2 states for 1 WAN;/ })
})

t.test('renderWanSet: what the agent loads on Linux, with the iptables hooks', async (t) => {
  t.same(renderWanSet('iptables', WANS, ALL_UP), { flavour: 'iptables', text: renderIptables(WANS, ALL_UP), hooks: iptablesHooks() })
  t.same(renderWanSet('nft', WANS, ALL_UP), { flavour: 'nft', text: renderNft(WANS, ALL_UP), hooks: [] })
})

// ---------------------------------------------------------------------------
// The real tools, inside a throwaway network namespace

const LAB_REQUIRED = process.env.CARPD_LAB === 'required'

function run(argv: string[]): { code: number | null; out: string; err: string } {
  const r = spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8', timeout: 20_000 })
  return { code: r.status, out: r.stdout ?? '', err: r.stderr || r.error?.message || '' }
}

/** Why the real tools cannot be tried here, or null. */
function unavailable(): string | null {
  if (process.getuid?.() !== 0) return 'needs root (network namespaces)'
  for (const argv of [['ip', 'netns', 'list'], ['iptables-restore', '--version'], ['iptables-save', '--version'], ['nft', '--version']]) {
    const r = run(argv)
    if (r.code !== 0) return `${argv.join(' ')} does not work here: ${r.err.trim()}`
  }
  return null
}

const why = unavailable()
t.test('the real tools accept the rules (network namespace)', { skip: LAB_REQUIRED ? false : (why ?? false) }, async (t) => {
  if (why) {
    t.fail(`CARPD_LAB=required but the real tools cannot run: ${why}`)
    return
  }
  const ns = `carpdrules-${process.pid}-${randomBytes(2).toString('hex')}`
  const dir = mkdtempSync(join(tmpdir(), 'carpd-rules-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const created = run(['ip', 'netns', 'add', ns])
  t.equal(created.code, 0, `ip netns add ${ns}: ${created.err}`)
  t.teardown(() => {
    run(['ip', 'netns', 'del', ns])
  })
  const inNs = (...argv: string[]) => run(['ip', 'netns', 'exec', ns, ...argv])
  const must = (...argv: string[]): string => {
    const r = inNs(...argv)
    t.equal(r.code, 0, `${argv.join(' ')}${r.err ? `: ${r.err.trim()}` : ''}`)
    return r.out
  }
  // A dummy interface per WAN; kernels without the dummy module get a veth pair, both
  // ends inside the namespace.
  for (const [i, w] of WANS.entries()) {
    const dummy = run(['ip', '-n', ns, 'link', 'add', w.interface, 'type', 'dummy'])
    if (dummy.code !== 0) must('ip', 'link', 'add', w.interface, 'type', 'veth', 'peer', 'name', `peer${i}`)
    if (dummy.code !== 0) must('ip', 'link', 'set', `peer${i}`, 'up')
    must('ip', 'addr', 'add', `${w.address ?? '198.51.100.10'}/24`, 'dev', w.interface)
    must('ip', 'link', 'set', w.interface, 'up')
  }
  const file = (name: string, content: string): string => {
    const path = join(dir, name)
    writeFileSync(path, content)
    return path
  }

  t.test('iptables-restore: --test, load, read back, reload replaces, hooks inserted once', async (t) => {
    for (const [name, plan] of Object.entries({ ALL_UP, WAN2_DOWN, TIER2, ALL_DOWN, NONE })) {
      const path = file(`${name}.iptables`, renderIptables(WANS, plan))
      must('iptables-restore', '--test', '--noflush', path)
    }
    must('iptables-restore', '--noflush', file('up.iptables', renderIptables(WANS, ALL_UP)))
    for (const h of iptablesHooks()) {
      t.not(inNs('iptables', '-t', h.table, '-C', h.chain, ...h.rule).code, 0, `${h.chain}: no jump yet`)
      must('iptables', '-t', h.table, '-I', h.chain, '1', ...h.rule)
      must('iptables', '-t', h.table, '-C', h.chain, ...h.rule)
    }
    const saved = must('iptables-save')
    t.match(saved, /-A PREROUTING -j CARPD_WAN\n/)
    t.match(saved, /-A POSTROUTING -j CARPD_WAN_NAT\n/)
    t.match(saved, /-A CARPD_WAN -j CONNMARK --restore-mark --nfmask 0xff00 --ctmask 0xff00/)
    t.match(saved, /-A CARPD_WAN .*--probability 0\.75.* -j MARK --set-xmark 0x100\/0xff00/)
    t.match(saved, /-A CARPD_WAN_NAT -o wan0 -m mark --mark 0x100\/0xff00 -j SNAT --to-source 203\.0\.113\.10/)
    t.match(saved, /-A CARPD_WAN_NAT -o wan1 -m mark --mark 0x200\/0xff00 -j MASQUERADE/)
    // An operator's own rule in the same tables survives carpd's reloads.
    must('iptables', '-t', 'mangle', '-A', 'PREROUTING', '-i', 'wan0', '-j', 'ACCEPT')
    must('iptables-restore', '--noflush', file('down.iptables', renderIptables(WANS, WAN2_DOWN)))
    const again = must('iptables-save')
    t.equal(again.match(/^-A CARPD_WAN /gm)?.length, 8, 'reload replaced carpd chain, no duplicates')
    t.notMatch(again, /--probability/, 'the split of the old plan is gone')
    t.match(again, /-A PREROUTING -i wan0 -j ACCEPT/, "the operator's rule is still there")
    t.equal(again.match(/-j CARPD_WAN\n/g)?.length, 1, 'one jump')
  })

  t.test('nft: -c, load, read back, reload replaces the table atomically', async (t) => {
    for (const [name, plan] of Object.entries({ ALL_UP, WAN2_DOWN, TIER2, ALL_DOWN, NONE })) {
      must('nft', '-c', '-f', file(`${name}.nft`, renderNft(WANS, plan)))
    }
    must('nft', '-f', file('up.nft', renderNft(WANS, ALL_UP)))
    let listed = must('nft', 'list', 'table', 'ip', 'carpd_wan')
    t.match(listed, /numgen random mod 4 map \{ 0-2 : 0x00000100, 3 : 0x00000200 \}/)
    t.match(listed, /oifname "wan0" meta mark & 0x0000ff00 == 0x00000100 snat to 203\.0\.113\.10/)
    t.match(listed, /oifname "wan1" meta mark & 0x0000ff00 == 0x00000200 masquerade/)
    must('nft', '-f', file('down.nft', renderNft(WANS, ALL_DOWN)))
    listed = must('nft', 'list', 'table', 'ip', 'carpd_wan')
    t.match(listed, /numgen random mod 5 map \{ 0-2 : 0x00000100, 3 : 0x00000200, 4 : 0x00000300 \}/)
    t.notMatch(listed, /mod 4/, 'the old split is gone')
    t.equal(listed.match(/chain prerouting/g)?.length, 1)
  })

  t.test('ip: the route commands run, and run again without duplicates', async (t) => {
    const apply = () => {
      const { del, add } = routeCommands(WANS)
      for (const argv of del) {
        const r = inNs(...argv)
        if (r.code !== 0) t.match(r.err, /No such file or directory/, `${argv.join(' ')}: nothing to delete`)
      }
      for (const argv of add) must(...argv)
    }
    apply()
    apply()
    const rules = must('ip', 'rule', 'show')
    t.equal(rules.match(/^10001:\s+from all fwmark 0x100\/0xff00 lookup 101/gm)?.length, 1)
    t.equal(rules.match(/^10101:\s+from 203\.0\.113\.10 lookup 101/gm)?.length, 1)
    t.equal(rules.match(/^9999:\s+from all lookup main suppress_prefixlength 0/gm)?.length, 1)
    t.notMatch(rules, /^10102:/m, 'no source rule without an address')
    t.match(must('ip', 'route', 'show', 'table', '101'), /default via 203\.0\.113\.1 dev wan0/)
    t.match(must('ip', 'route', 'show', 'table', '103'), /default via 192\.0\.2\.254 dev lte0/)
  })
})
