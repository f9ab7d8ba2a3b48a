// IPv6 VIPs on real Linux: two routers and a client on a bridge. An IPv6-only vhid
// advertises to ff02::12 and holds its VIP on a virtual MAC (00:00:5e:00:02:VHID); a
// vhid with both families and no virtual MAC moves the client with a gratuitous ARP
// and an unsolicited neighbour advertisement (na6). Needs root; skipped otherwise, a
// failure with CARPD_LAB=required.
import t, { type Test } from 'tap'
import { resolve } from 'node:path'
import { LAB_REQUIRED, NetLab, labUnavailable, sleep, until } from './netlab.js'

const STREAMS_SCRIPT = resolve(import.meta.dirname, 'streams.mjs')

const VIP6 = '2001:db8::1'
const VIP4 = '192.0.2.1'
const V4: Record<string, string> = { r1: '192.0.2.2', r2: '192.0.2.3', client: '192.0.2.10' }
const V6: Record<string, string> = { r1: '2001:db8::2', r2: '2001:db8::3', client: '2001:db8::10' }

/** LAN switch, r1, r2 and a client, each with an IPv4 and an IPv6 address (no DAD: the lab's links are new). */
function lanLab(t: Test): NetLab {
  const lab = new NetLab()
  t.teardown(() => lab.teardown())
  lab.addSwitch('lan')
  for (const host of ['r1', 'r2', 'client']) {
    lab.addNamespace(host)
    for (const scope of ['all', 'default']) lab.exec(host, ['sysctl', '-qw', `net.ipv6.conf.${scope}.accept_dad=0`])
    lab.connect(host, 'eth0', 'lan', `${V4[host]}/24`)
    lab.exec(host, ['ip', '-6', 'addr', 'add', `${V6[host]}/64`, 'dev', 'eth0', 'nodad'])
  }
  return lab
}

/** lanLab plus a server network behind the routers (2001:db8:1::/64), IPv6 forwarding on the routers. */
function routedLab(t: Test): NetLab {
  const lab = lanLab(t)
  lab.addSwitch('srv')
  lab.addNamespace('server')
  lab.exec('server', ['sysctl', '-qw', 'net.ipv6.conf.default.accept_dad=0'])
  const SRV4: Record<string, string> = { r1: '198.51.100.2', r2: '198.51.100.3', server: '198.51.100.100' }
  const SRV6: Record<string, string> = { r1: '2001:db8:1::2', r2: '2001:db8:1::3', server: '2001:db8:1::100' }
  for (const host of ['r1', 'r2', 'server']) {
    lab.connect(host, host === 'server' ? 'eth0' : 'eth1', 'srv', `${SRV4[host]}/24`)
    lab.exec(host, ['ip', '-6', 'addr', 'add', `${SRV6[host]}/64`, 'dev', host === 'server' ? 'eth0' : 'eth1', 'nodad'])
  }
  for (const r of ['r1', 'r2']) lab.exec(r, ['sysctl', '-qw', 'net.ipv6.conf.all.forwarding=1'])
  lab.exec('client', ['ip', '-6', 'route', 'add', 'default', 'via', VIP6])
  lab.exec('server', ['ip', '-6', 'route', 'add', 'default', 'via', '2001:db8:1::1'])
  return lab
}

interface StreamsReport {
  connected: number
  closed: number
  bad: number
  bytes: number[]
  errorCount: number
  errors: string[]
}

function config(name: string, vips: string, advbase: number, advskew: number, vmac: boolean, more: string[] = []): string {
  return [
    `node = ${name}`,
    'carp.1.interface = eth0',
    `carp.1.vip = ${vips}`,
    `carp.1.advbase = ${advbase}`,
    `carp.1.advskew = ${advskew}`,
    'carp.1.pass = lab secret',
    `carp.1.vmac = ${vmac ? 'yes' : 'no'}`,
    ...more,
  ].join('\n') + '\n'
}

const status = (lab: NetLab, name: string) => JSON.parse(lab.carpdOnce(name, ['status', '--json', '-c', `${lab.dir}/${name}.conf`]))

/** One answer within 2 s from `ip` to the client's ping. */
function ping6(lab: NetLab, ip: string): boolean {
  try {
    lab.exec('client', ['ping', '-6', '-c', '1', '-w', '2', ip])
    return true
  } catch {
    return false
  }
}

const why = labUnavailable()
if (why !== null) {
  if (LAB_REQUIRED) t.fail(`CARPD_LAB=required but the lab cannot run: ${why}`)
  else t.plan(0, `lab skipped: ${why}`)
} else {
  t.test('an IPv6-only vhid: adverts to ff02::12 from link-local addresses, the VIP on 00:00:5e:00:02:01, and a failover the client follows without a neighbour solicitation', async (t) => {
    const lab = lanLab(t)
    const r1 = lab.startCarpd('r1', config('r1', `${VIP6}/64`, 0, 26, true))
    await r1.waitFor(/INIT->BACKUP/)
    const r2 = lab.startCarpd('r2', config('r2', `${VIP6}/64`, 0, 29, true))
    await r1.waitFor(/vhid=1 BACKUP->MASTER/)
    await sleep(1000)
    t.notOk(r2.lines.some((l) => /->MASTER/.test(l)), 'r2 stays backup')
    t.ok((await until(() => lab.hasAddress('r1', 'carp1', VIP6), 2000)) >= 0, 'the VIP is on r1\'s carp1')
    t.notOk(lab.hasAddress('r2', 'eth0', VIP6), 'and nowhere on r2')
    t.equal(lab.mac('r1', 'carp1'), '00:00:5e:00:02:01', "VRRP's IPv6 virtual MAC")
    const st = status(lab, 'r2')
    t.equal(st.vhids[0].state, 'BACKUP')
    t.equal(st.vhids[0].transport, 'multicast ff02::12')
    t.match(st.vhids[0].master.from, /^\[fe80::[0-9a-f:]+\]:8240$/, `r2 hears r1's adverts from its link-local address (${st.vhids[0].master.from})`)
    t.notOk(lab.exec('r1', ['ip', '-6', 'addr', 'show', 'dev', 'carp1']).includes('fe80'), 'carp1 has no link-local address of its own')
    t.ok(ping6(lab, VIP6), 'the client reaches the VIP')
    t.equal(lab.neighMac('client', VIP6), '00:00:5e:00:02:01', 'its neighbour entry is the virtual MAC')

    const nd = lab.spawnLines('client', ['tcpdump', '-l', '-n', '-i', 'eth0', 'icmp6'])
    await sleep(500)
    const pings = lab.spawnLines('client', ['ping', '-6', '-n', '-i', '0.01', '-c', '300', '-W', '1', VIP6])
    await sleep(300)
    lab.linkSet('r1', 'eth0', 'down')
    await r2.waitFor(/vhid=1 BACKUP->MASTER/, 3000)
    await pings.exited
    await sleep(200)
    nd.child.kill('SIGTERM')
    await nd.exited
    const replies = pings.lines.filter((l) => / bytes from /.test(l)).length
    t.comment(`client: ${replies} of 300 pings answered every 10 ms across the failover (${(300 - replies) * 10} ms without answers)`)
    t.ok(replies >= 200, `the VIP answered again within the run (${replies} replies)`)
    const solicits = nd.lines.filter((l) => /2001:db8::10 > .*neighbor solicitation, who has 2001:db8::1,/.test(l))
    t.same(solicits, [], 'the client sent no neighbour solicitation for the VIP to reach the new master')
    t.ok(lab.hasAddress('r2', 'carp1', VIP6), 'the VIP is on r2\'s carp1')
    t.equal(lab.neighMac('client', VIP6), '00:00:5e:00:02:01', 'still the virtual MAC')
    t.ok(ping6(lab, VIP6), 'the client reaches the VIP on r2')
  })

  t.test('IPv4 and IPv6 VIPs on one vhid without a virtual MAC: adverts over IPv4; the gratuitous ARP and the unsolicited NA move the client to the new master', async (t) => {
    const lab = lanLab(t)
    const vips = `${VIP4}/24, ${VIP6}/64`
    const r1 = lab.startCarpd('r1', config('r1', vips, 1, 0, false))
    await r1.waitFor(/INIT->BACKUP/)
    const r2 = lab.startCarpd('r2', config('r2', vips, 1, 100, false))
    await r1.waitFor(/vhid=1 BACKUP->MASTER/)
    await sleep(1000)
    t.ok((await until(() => lab.hasAddress('r1', 'eth0', VIP6) && lab.hasAddress('r1', 'eth0', VIP4), 2000)) >= 0, 'both VIPs on r1\'s eth0')
    t.match(status(lab, 'r2').vhids[0], { state: 'BACKUP', transport: 'multicast 224.0.0.18' })
    t.ok(lab.ping('client', VIP4) && ping6(lab, VIP6), 'the client reaches both')
    const r1Mac = lab.mac('r1', 'eth0')
    t.equal(lab.neighMac('client', VIP6), r1Mac, "the client's neighbour entries name r1's MAC")
    lab.linkSet('r1', 'eth0', 'down')
    await r2.waitFor(/vhid=1 BACKUP->MASTER/, 10_000)
    const r2Mac = lab.mac('r2', 'eth0')
    // No traffic from the client meanwhile: only the announcements can move its entries.
    const moved6 = await until(() => lab.neighMac('client', VIP6) === r2Mac, 3000)
    const moved4 = await until(() => lab.neighMac('client', VIP4) === r2Mac, 3000)
    t.ok(moved6 >= 0, `the unsolicited NA moved the client's entry for ${VIP6} to r2 (saw ${lab.neighMac('client', VIP6)})`)
    t.ok(moved4 >= 0, `the gratuitous ARP moved its entry for ${VIP4} to r2`)
    t.ok(lab.ping('client', VIP4) && ping6(lab, VIP6), 'the client reaches both on r2')
    t.notOk(r2.lines.some((l) => /failed/.test(l)), 'no platform failure on r2 (na6 and arping ran)')
  })

  t.test('an established TCP connection over IPv6 through the pair goes on after the master is powered off', async (t) => {
    const lab = routedLab(t)
    const vhid2 = (skew: number) => ['carp.2.interface = eth1', 'carp.2.vip = 2001:db8:1::1/64', 'carp.2.advbase = 0', `carp.2.advskew = ${skew}`, 'carp.2.pass = lab secret']
    const r1 = lab.startCarpd('r1', config('r1', `${VIP6}/64`, 0, 26, true, vhid2(26)))
    await r1.waitFor(/INIT->BACKUP/)
    const r2 = lab.startCarpd('r2', config('r2', `${VIP6}/64`, 0, 29, true, vhid2(29)))
    await r1.waitFor(/vhid=2 BACKUP->MASTER/)
    await r1.waitFor(/vhid=1 BACKUP->MASTER/)
    await sleep(500)
    const server = lab.spawnLines('server', [process.execPath, STREAMS_SCRIPT, 'server', '2001:db8:1::100', '9000'])
    await server.waitFor(/listening/)
    const client = lab.spawnLines('client', [process.execPath, STREAMS_SCRIPT, 'client', '2001:db8:1::100', '9000', '5'])
    const last = (): StreamsReport | null => {
      const line = client.lines.filter((l) => l.startsWith('{')).at(-1)
      return line ? (JSON.parse(line) as StreamsReport) : null
    }
    const flowing = () => {
      const r = last()
      return r !== null && r.connected === 5 && r.bytes.every((b) => b > 20_000)
    }
    t.ok((await until(flowing, 5000)) >= 0, `five streams flowing through r1 (${client.lines.at(-1) ?? 'no report'})`)
    if (!flowing()) return
    const before = last()!.bytes
    // Power off: carpd and its fence gone, both cables dead; the kernel's VIPs go dark with them.
    lab.killAll('r1')
    lab.plug('r1', 'eth0', false)
    lab.plug('r1', 'eth1', false)
    await r2.waitFor(/vhid=1 BACKUP->MASTER/, 3000)
    await r2.waitFor(/vhid=2 BACKUP->MASTER/, 3000)
    const grew = await until(() => last()!.bytes.every((b, i) => b > before[i]! + 50_000), 10_000)
    const end = last()!
    t.comment(`streams after the failover: ${end.bytes.map((b, i) => b - before[i]!).join(', ')} bytes more`)
    t.ok(grew >= 0, 'every stream goes on through r2')
    t.same([end.closed, end.bad, end.errorCount], [0, 0, 0], `no stream closed, reset or corrupted (${end.errors.join('; ')})`)
    t.ok(lab.hasAddress('r2', 'carp1', VIP6) && lab.hasAddress('r2', 'carp2', '2001:db8:1::1'), 'r2 holds both VIPs')
  })
}
