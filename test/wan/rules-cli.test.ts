// `carpd rules` as an operator runs it: build/carpd.js as a child process.
import t from 'tap'
import { join } from 'node:path'
import { bundleRunner } from '../helpers/bundle.js'
import { renderIptables, renderNft, renderPf, renderRouteCommands } from '../../src/wan/rules/index.js'
import type { WanPlan, WanSpec } from '../../src/wan/types.js'

const { dir, carpd, file } = bundleRunner(t, 'carpd-rules-cli-')

// Interface names no test host has: the CLI looks up each WAN's address, and finding
// none gives MASQUERADE, so the output does not depend on the machine.
const WAN_KEYS = [
  'node = fw-a',
  'wan.1.interface = crtest0',
  'wan.1.gateway = 203.0.113.1',
  'wan.1.weight = 3',
  'wan.1.probe = 203.0.113.53',
  'wan.2.interface = crtest1',
  'wan.2.gateway = 198.51.100.1',
  'wan.2.probe = 198.51.100.53',
].join('\n')
const CARP = 'carp.1.interface = lan0\ncarp.1.vip = 192.168.1.1/24\ncarp.1.passfile = /nonexistent/carp.pass\n'

const WANS: WanSpec[] = [
  { wan: 1, interface: 'crtest0', gateway: '203.0.113.1', weight: 3, tier: 1, probes: ['203.0.113.53'], probeNeed: 1, natAddress: null, vipInterfaces: [], address: null },
  { wan: 2, interface: 'crtest1', gateway: '198.51.100.1', weight: 1, tier: 1, probes: ['198.51.100.53'], probeNeed: 1, natAddress: null, vipInterfaces: [], address: null },
]
const ALL_UP: WanPlan = { mode: 'normal', tier: 1, active: [{ wan: 1, weight: 3 }, { wan: 2, weight: 1 }] }
const WAN2_DOWN: WanPlan = { mode: 'normal', tier: 1, active: [{ wan: 1, weight: 3 }] }
const ALL_DOWN: WanPlan = { mode: 'allDown', tier: null, active: ALL_UP.active }

t.test('iptables (the default), with and without --wan-state; a WAN-only file passes check', async (t) => {
  const conf = file('ipt.conf', `${WAN_KEYS}\n`)
  const check = carpd('check', '-c', conf)
  t.equal(check.code, 0, check.err)
  const up = carpd('rules', '-c', conf)
  t.equal(up.code, 0, up.err)
  t.equal(up.out, renderIptables(WANS, ALL_UP))
  t.equal(up.err, '')
  const down = carpd('rules', '-c', conf, '--wan-state', 'up,down')
  t.equal(down.code, 0, down.err)
  t.equal(down.out, renderIptables(WANS, WAN2_DOWN))
  t.equal(carpd('rules', '--wan-state', 'down,down', '--config', conf).out, renderIptables(WANS, ALL_DOWN), 'all down: every WAN')
})

t.test('nft, pf (OpenBSD and FreeBSD syntax); no secret file is read', async (t) => {
  const nft = carpd('rules', '-c', file('nft.conf', `${WAN_KEYS}\nwan.rules = nft\n`))
  t.equal(nft.code, 0, nft.err)
  t.equal(nft.out, renderNft(WANS, ALL_UP))
  const obsd = carpd('rules', '-c', file('obsd.conf', `${WAN_KEYS}\n${CARP}platform = openbsd\nsync.backend = none\nwan.rules = pf\n`), '--wan-state', 'up,down')
  t.equal(obsd.code, 0, obsd.err)
  t.equal(obsd.out, renderPf(WANS, WAN2_DOWN, { dialect: 'openbsd', lanInterfaces: ['lan0'] }))
  const fbsd = carpd('rules', '-c', file('fbsd.conf', `${WAN_KEYS}\n${CARP}platform = freebsd\nsync.backend = none\nwan.rules = pf\n`))
  t.equal(fbsd.code, 0, fbsd.err)
  t.equal(fbsd.out, renderPf(WANS, ALL_UP, { dialect: 'freebsd', lanInterfaces: ['lan0'] }))
})

t.test('--routes prints the policy routing commands', async (t) => {
  const r = carpd('rules', '-c', file('routes.conf', `${WAN_KEYS}\n`), '--routes')
  t.equal(r.code, 0, r.err)
  t.equal(r.out, renderRouteCommands(WANS, 1))
  t.match(r.out, /^ip rule add pref 10001 fwmark 0x100\/0xff00 table 101$/m)
})

t.test('usage errors exit 1 and say what to change', async (t) => {
  const conf = file('bad-state.conf', `${WAN_KEYS}\n`)
  const count = carpd('rules', '-c', conf, '--wan-state', 'up')
  t.equal(count.code, 1)
  t.equal(count.out, '')
  t.match(count.err, /^carpd rules: --wan-state up: 1 state for 2 WANs; give one up\|down\|degraded per WAN in wan number order \(wan\.1, wan\.2\)\n/)
  t.match(count.err, /usage: carpd rules/)
  const word = carpd('rules', '-c', conf, '--wan-state', 'up,maybe')
  t.equal(word.code, 1)
  t.match(word.err, /--wan-state up,maybe: "maybe" is not a state/)
  t.equal(carpd('rules', '-c', conf, '--wan-state').code, 1, '--wan-state needs a value')

  const noWan = carpd('rules', '-c', file('nowan.conf', `node = fw-a\n${CARP}`))
  t.equal(noWan.code, 1)
  t.match(noWan.err, /nowan\.conf: no wan\.N block: no multi-WAN rules to print \(set wan\.1\.interface/)
  t.notMatch(noWan.err, /usage:/)
  const noWanStates = carpd('rules', '-c', join(dir, 'nowan.conf'), '--wan-state', 'up,down', '--routes')
  t.equal(noWanStates.code, 1)
  t.match(noWanStates.err, /no wan\.N block/, 'no WAN is the first thing to fix, before the states')

  const pfNoLan = carpd('rules', '-c', file('pf-nolan.conf', `${WAN_KEYS}\nplatform = openbsd\nsync.backend = none\nwan.rules = pf\n`))
  t.equal(pfNoLan.code, 1)
  t.match(pfNoLan.err, /pf rules need the LAN interfaces.*carp\.N\.interface/)
  const pfRoutes = carpd('rules', '-c', file('pf-routes.conf', `${WAN_KEYS}\n${CARP}platform = freebsd\nsync.backend = none\nwan.rules = pf\n`), '--routes')
  t.equal(pfRoutes.code, 1)
  t.match(pfRoutes.err, /--routes: policy routing commands are for Linux/)

  const badConfig = carpd('rules', '-c', file('typo.conf', `${WAN_KEYS}\nwan.1.wieght = 2\n`))
  t.equal(badConfig.code, 1)
  t.match(badConfig.err, /typo\.conf:9: wan\.1\.wieght/)
  t.equal(carpd('rules', '-c', join(dir, 'absent.conf')).code, 1)
})

t.test('rules --help', async (t) => {
  const r = carpd('rules', '--help')
  t.equal(r.code, 0)
  t.match(r.out, /^usage: carpd rules -c FILE \[--wan-state up,down,\.\.\.\] \[--routes\]\n/)
  t.match(r.out, /--wan-state LIST/)
  t.match(r.out, /--routes/)
})
