// Multi-WAN on a pair (issue 15, part 4): two routers share a LAN VIP and a VIP on
// each ISP's segment, sync their connections, and NAT them to the shared WAN VIPs,
// so a connection survives a takeover. r2's own path to ISP 2 is broken (ISP 2 drops
// every frame from r2's port): r2 has judged WAN 2 dead before r1 dies. When r2
// takes over it loads r1's connections but those marked for WAN 2 (they could only
// hang there; no later commit puts them back), while those on WAN 1 go on through it
// untouched.
//
//   client ── [lan] ─┬─ r1 ─┬─ [seg1] ── isp1 ──┐
//                    │  ║  └─ [seg2] ── isp2 ──┴── [inet] ── server (whoami)
//                    └─ r2 ─┘ (both routers on both segments; ║ the sync cable)
//
// Needs root; skipped otherwise, a failure with CARPD_LAB=required.
import t from 'tap'
import { LAB_REQUIRED, NetLab, labUnavailable, type Carpd } from './netlab.js'
import { statefulFilter } from './sync-lab.js'
import { SERVER, SERVER_PORT, WAN_TOOLS, sleep, until } from './wan-lab.js'

/** The pair's shared address on each ISP's segment: every connection is NATed to one. */
const WAN_VIP: Record<number, string> = { 1: '203.0.113.4', 2: '203.0.113.20' }
const ROUTERS = {
  r1: { lan: '192.0.2.2', wan1: '203.0.113.2', wan2: '203.0.113.18', sync: '198.51.100.1', peer: '198.51.100.2', advskew: 26 },
  r2: { lan: '192.0.2.3', wan1: '203.0.113.3', wan2: '203.0.113.19', sync: '198.51.100.2', peer: '198.51.100.1', advskew: 29 },
} as const
type Router = keyof typeof ROUTERS
const HELD = 40

function configText(name: Router): string {
  const r = ROUTERS[name]
  const lines = [`node = ${name}`, 'carp.preempt = yes']
  for (const [vhid, iface, vip] of [
    [1, 'lan0', '192.0.2.1/24'],
    [2, 'wan1', `${WAN_VIP[1]}/28`],
    [3, 'wan2', `${WAN_VIP[2]}/28`],
  ] as const) {
    lines.push(`carp.${vhid}.interface = ${iface}`, `carp.${vhid}.vip = ${vip}`, `carp.${vhid}.advbase = 0`, `carp.${vhid}.advskew = ${r.advskew}`, `carp.${vhid}.pass = lab secret ${vhid}`)
  }
  lines.push(
    'sync.interface = sync0',
    `sync.peer = ${r.peer}`,
    'sync.key = lab sync key',
    'sync.backend = conntrack',
    'heartbeat.interval = 100ms',
    'heartbeat.timeout = 300ms',
    'wan.rules = iptables',
    'wan.failback.hold = 2s',
    'wan.1.interface = wan1',
    'wan.1.gateway = 203.0.113.1',
    'wan.1.probe = 198.18.1.53',
    'wan.2.interface = wan2',
    'wan.2.gateway = 203.0.113.17',
    'wan.2.probe = 198.18.2.53',
  )
  return lines.join('\n') + '\n'
}

function buildLab(lab: NetLab): void {
  for (const sw of ['lan', 'seg1', 'seg2', 'inet']) lab.addSwitch(sw)
  for (const h of ['client', 'r1', 'r2', 'isp1', 'isp2', 'server']) lab.addNamespace(h)
  lab.connect('client', 'eth0', 'lan', '192.0.2.100/24')
  lab.ip('-n', lab.ns('client'), 'route', 'add', 'default', 'via', '192.0.2.1')
  for (const name of Object.keys(ROUTERS) as Router[]) {
    const r = ROUTERS[name]
    lab.connect(name, 'lan0', 'lan', `${r.lan}/24`)
    lab.connect(name, 'wan1', 'seg1', `${r.wan1}/28`)
    lab.connect(name, 'wan2', 'seg2', `${r.wan2}/28`)
    lab.exec(name, ['sysctl', '-qw', 'net.ipv4.ip_forward=1'])
    lab.exec(name, ['sysctl', '-qw', 'net.netfilter.nf_conntrack_tcp_loose=0'])
    // The stateful firewall state sync needs; the NAT is carpd's (to the shared WAN VIPs).
    lab.exec(name, ['nft', '-f', lab.writeFile(`${name}.nft`, statefulFilter(['wan1', 'wan2']))])
  }
  lab.cable('r1', 'sync0', `${ROUTERS.r1.sync}/30`, 'r2', 'sync0', `${ROUTERS.r2.sync}/30`)
  lab.connect('isp1', 'cust0', 'seg1', '203.0.113.1/28')
  lab.connect('isp2', 'cust0', 'seg2', '203.0.113.17/28')
  lab.connect('isp1', 'up0', 'inet', '198.18.0.1/24')
  lab.connect('isp2', 'up0', 'inet', '198.18.0.2/24')
  lab.connect('server', 'eth0', 'inet', `${SERVER}/24`)
  lab.ip('-n', lab.ns('server'), 'route', 'add', '203.0.113.0/28', 'via', '198.18.0.1')
  lab.ip('-n', lab.ns('server'), 'route', 'add', '203.0.113.16/28', 'via', '198.18.0.2')
  for (const [isp, resolver] of [['isp1', '198.18.1.53'], ['isp2', '198.18.2.53']] as const) {
    lab.exec(isp, ['sysctl', '-qw', 'net.ipv4.ip_forward=1'])
    lab.ip('-n', lab.ns(isp), 'addr', 'add', `${resolver}/32`, 'dev', 'lo')
  }
}

interface Held {
  wan: number | null
  bytes: number
  error: string | null
}

function lastReport(c: Carpd): Held[] {
  const line = [...c.lines].reverse().find((x) => x.startsWith('{"t"'))
  if (!line) return []
  const conns = (JSON.parse(line) as { conns: { from: string | null; bytes: number; error: string | null }[] }).conns
  return conns.map((s) => ({ wan: wanOf(s.from), bytes: s.bytes, error: s.error }))
}

function wanOf(from: string | null): number | null {
  const found = Object.entries(WAN_VIP).find(([, a]) => from?.endsWith(a))
  return found ? Number(found[0]) : null
}

/** Connections r2's kernel tracks with WAN N's mark (N << 8 under 0xff00), to the server. */
function marked(lab: NetLab, wan: number): number {
  const out = lab.exec('r2', ['conntrack', '-L', '-p', 'tcp', '--dport', String(SERVER_PORT), '--mark', `${wan << 8}/0xff00`])
  return out.split('\n').filter((l) => l.includes(`dport=${SERVER_PORT}`)).length
}

const why = labUnavailable()
if (why !== null) {
  if (LAB_REQUIRED) t.fail(`CARPD_LAB=required but the lab cannot run: ${why}`)
  else t.plan(0, `lab skipped: ${why}`)
} else {
  t.test('a takeover keeps the connections of WANs alive on the new master and leaves out those of a WAN dead there', async (t) => {
    const lab = new NetLab()
    t.teardown(() => lab.teardown())
    buildLab(lab)
    for (const [isp, resolver] of [['isp1', '198.18.1.53'], ['isp2', '198.18.2.53']] as const) {
      await lab.spawnLines(isp, [process.execPath, WAN_TOOLS, 'dns', resolver]).waitFor(/dns listening/)
    }
    await lab.spawnLines('server', [process.execPath, WAN_TOOLS, 'whoami', SERVER, String(SERVER_PORT)]).waitFor(/whoami listening/)
    const r1 = lab.startCarpd('r1', configText('r1'))
    const r2 = lab.startCarpd('r2', configText('r2'))
    for (const vhid of [1, 2, 3]) await r1.waitFor(new RegExp(`vhid=${vhid} .*->MASTER`), 15_000)
    await r2.waitFor(/bulk transfer \d+ from the peer done/, 15_000)
    for (const r of [r1, r2]) await r.waitFor(/new connections: tier 1: wan1 x1, wan2 x1/, 15_000)
    const mangle = lab.exec('r1', ['iptables-save', '-t', 'mangle'])
    t.match(mangle, /-A CARPD_WAN -i carp3 -j MARK --set-xmark 0x200\/0xff00/, "a new connection to WAN 2's VIP comes in on its macvlan carp3 and is marked for WAN 2 there")
    t.match(lab.exec('r1', ['ip', 'rule', 'show']), /10202:\s+from 203\.0\.113\.20 lookup 102/, "the router's own traffic from WAN 2's VIP leaves through WAN 2")

    // r2's port on ISP 2's segment goes bad: ISP 2 drops every frame from it. r2's
    // probes on WAN 2 fail and it judges WAN 2 dead; r1 sees nothing of it.
    const r2Mac = lab.mac('r2', 'wan2')
    for (const chain of ['INPUT', 'FORWARD']) lab.exec('isp2', ['iptables', '-I', chain, '-m', 'mac', '--mac-source', r2Mac, '-j', 'DROP'])
    await r2.waitFor(/wan2 wan2 (online|degraded)->offline/, 15_000)
    t.notOk(r1.lines.some((l) => /wan2 wan2 (online|degraded)->offline/.test(l)), "r1's WAN 2 stays online")

    // Connections through r1 on both WANs, NATed to the shared VIPs, synced to r2.
    const client = lab.spawnLines('client', [process.execPath, WAN_TOOLS, 'connect', SERVER, String(SERVER_PORT), String(HELD), 'hold'])
    await client.waitFor(/^connected$/, 60_000)
    await sleep(1000)
    const before = lastReport(client)
    const onWan = (n: number, list: Held[]): number => list.filter((c) => c.wan === n).length
    t.equal(before.length, HELD, `${HELD} connections held`)
    t.ok(onWan(1, before) > 0 && onWan(2, before) > 0 && onWan(1, before) + onWan(2, before) === HELD, `every connection NATed to a shared VIP: ${onWan(1, before)} on WAN 1 (${WAN_VIP[1]}), ${onWan(2, before)} on WAN 2 (${WAN_VIP[2]})`)
    const status = (): { sync: { states: { peer: number } } | null } => JSON.parse(lab.carpdOnce('r2', ['status', '--json', '-c', `${lab.dir}/r2.conf`]))
    const synced = await until(() => (status().sync?.states.peer ?? 0) >= HELD, 10_000, 200)
    t.ok(synced >= 0, `r2 holds r1's ${HELD} connections (and more: the probes' and the sync's own are not synced)`)

    t.notOk(
      r1.lines.some((l) => /MASTER->BACKUP/.test(l)),
      "r1 kept its VIPs from the start: no WAN demotion while its first probe rounds ran (even when its WANs come up after r2's)",
    )

    // r1 powered off.
    const cutAt = Date.now()
    lab.killAll('r1')
    for (const iface of ['lan0', 'wan1', 'wan2', 'sync0']) lab.linkSet('r1', iface, 'down')
    await r2.waitFor(/vhid=1 .*BACKUP->MASTER/, 10_000)
    const commitLine = await r2.waitFor(/MASTER: kernel table made current .*left out \((\d+): wan2 is offline here\)/, 10_000)
    const leftOut = Number(/left out \((\d+): wan2/.exec(commitLine)![1])
    t.ok(leftOut >= onWan(2, before), `r2's takeover left out ${leftOut} connections of WAN 2 (${Date.now() - cutAt} ms after the power-off); ${onWan(2, before)} were held`)
    await r2.waitFor(/wan wan2 offline after the takeover: removed its/, 10_000)
    t.equal(marked(lab, 2), 0, "no connection marked for WAN 2 is in r2's kernel")
    t.ok(marked(lab, 1) >= onWan(1, before), `r2's kernel keeps the ${onWan(1, before)} connections of WAN 1 (${marked(lab, 1)} marked for it)`)

    // WAN 1's connections go on through r2; new connections all take WAN 1.
    await sleep(1500)
    const mid = lastReport(client)
    await sleep(2000)
    const after = lastReport(client)
    t.equal(marked(lab, 2), 0, "3.5 s on, past the late commits after a takeover: still none marked for WAN 2 (CI once found 2 put back)")
    const wan1 = after.map((c, i) => ({ c, i })).filter(({ c }) => c.wan === 1)
    const flowing = wan1.filter(({ c, i }) => c.error === null && c.bytes > mid[i]!.bytes).length
    t.equal(flowing, wan1.length, `${flowing} of the ${wan1.length} connections on WAN 1 keep receiving through r2`)
    const fresh = lab.spawnLines('client', [process.execPath, WAN_TOOLS, 'connect', SERVER, String(SERVER_PORT), '20'])
    await fresh.waitFor(/^connected$/, 60_000)
    const freshWans = fresh.lines.filter((x) => x.startsWith('{')).map((x) => wanOf((JSON.parse(x) as { from: string | null }).from))
    t.same([...new Set(freshWans)], [1], 'new connections through r2 all take WAN 1')
  })
}
