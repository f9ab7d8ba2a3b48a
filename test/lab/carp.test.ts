// CARP on real Linux: two routers and a client on a bridge, carpd taking over a real
// VIP with ip and arping. Needs root; skipped otherwise, a failure with CARPD_LAB=required.
import t, { type Test } from 'tap'
import { spawnSync } from 'node:child_process'
import { LAB_REQUIRED, NetLab, labUnavailable, sleep, until, type Carpd } from './netlab.js'

const VIP = '192.0.2.1'
const VIP2 = '192.0.2.100'
const ADDR: Record<string, string> = { r1: '192.0.2.2', r2: '192.0.2.3', client: '192.0.2.10', evil: '192.0.2.66' }
const ROUTERS = ['r1', 'r2']

interface VhidSpec {
  vhid: number
  vip: string
  advskew: number
  iface?: string
}

interface RouterSpec {
  name: string
  vhids: VhidSpec[]
  advbase?: number
  preempt?: boolean
  unicastPeer?: string
  pass?: string
}

function configText(r: RouterSpec): string {
  const lines = [`node = ${r.name}`, `carp.preempt = ${r.preempt === false ? 'no' : 'yes'}`]
  for (const v of r.vhids) {
    const p = `carp.${v.vhid}`
    lines.push(
      `${p}.interface = ${v.iface ?? 'eth0'}`,
      `${p}.vip = ${v.vip}/24`,
      `${p}.advbase = ${r.advbase ?? 1}`,
      `${p}.advskew = ${v.advskew}`,
      `${p}.pass = ${r.pass ?? 'lab secret'}`,
    )
    if (r.unicastPeer) lines.push(`${p}.peer = ${r.unicastPeer}`)
  }
  return lines.join('\n') + '\n'
}

/** LAN switch, r1, r2 and a client; the routers are not started. */
function lanLab(t: Test, extraHosts: string[] = []): NetLab {
  const lab = new NetLab()
  t.teardown(() => lab.teardown())
  lab.addSwitch('lan')
  for (const host of ['r1', 'r2', 'client', ...extraHosts]) {
    lab.addNamespace(host)
    lab.connect(host, 'eth0', 'lan', `${ADDR[host]}/24`)
  }
  return lab
}

function start(lab: NetLab, r: RouterSpec): Carpd {
  return lab.startCarpd(r.name, configText(r))
}

/** Exactly one router holds the VIP, the client reaches it, and its ARP entry points there. */
async function assertServedBy(t: Test, lab: NetLab, router: string, vip = VIP): Promise<void> {
  // The transition's console line comes as `ip addr add` starts, not when it is done
  // (a loaded machine took over 50 ms for it in CI-like runs): wait for the address.
  await until(() => lab.holders(ROUTERS, 'eth0', vip).join() === router, 2000)
  t.same(lab.holders(ROUTERS, 'eth0', vip), [router], `only ${router} holds ${vip}`)
  t.ok(lab.ping('client', vip), `the client reaches ${vip}`)
  // A ping alone hides a broken gratuitous ARP (the client re-resolves after a few
  // seconds): the client's neighbour entry must already name the new master: its
  // virtual MAC (00:00:5e:00:01:VHID on carpVHID), the same on both routers.
  const vhid = vip === VIP2 ? 2 : 1
  t.ok(lab.hasAddress(router, `carp${vhid}`, vip), `${vip} is on ${router}'s carp${vhid}`)
  const want = lab.mac(router, `carp${vhid}`)
  t.equal(want, `00:00:5e:00:01:0${vhid}`, 'the virtual MAC')
  const waited = await until(() => lab.neighMac('client', vip) === want, 3000)
  t.ok(waited >= 0, `client's ARP entry for ${vip} is ${router}'s MAC ${want} (saw ${lab.neighMac('client', vip)})`)
}

const why = labUnavailable()
if (why !== null) {
  if (LAB_REQUIRED) t.fail(`CARPD_LAB=required but the lab cannot run: ${why}`)
  else t.plan(0, `lab skipped: ${why}`)
} else {
  t.test('multicast: one master; cut off, the backup serves the VIP and the client follows', async (t) => {
    const lab = lanLab(t)
    const r1 = start(lab, { name: 'r1', vhids: [{ vhid: 1, vip: VIP, advskew: 0 }] })
    await r1.waitFor(/INIT->BACKUP/) // so start-up jitter cannot let r2 claim first
    const r2 = start(lab, { name: 'r2', vhids: [{ vhid: 1, vip: VIP, advskew: 100 }] })
    await r1.waitFor(/vhid=1 BACKUP->MASTER/)
    await sleep(1500)
    t.notOk(r2.lines.some((l) => /->MASTER/.test(l)), 'r2 stays backup')
    await assertServedBy(t, lab, 'r1')
    t.ok(lab.ping('client', VIP)) // warm the ARP entry with r1's MAC
    const status = JSON.parse(lab.carpdOnce('r2', ['status', '--json', '-c', `${lab.dir}/r2.conf`]))
    t.equal(status.vhids[0].state, 'BACKUP')
    // Adverts leave from the interface (its own address); only the first after a
    // takeover comes from the virtual MAC, with the VIP as its source.
    t.match(status.vhids[0].master.from, /^192\.0\.2\.[12]:8240$/)

    const cutAt = performance.now()
    lab.linkSet('r1', 'eth0', 'down')
    await r2.waitFor(/vhid=1 BACKUP->MASTER/, 10_000)
    const tookMs = performance.now() - cutAt
    // carp(4): master down after 3 x 1 + 100/256 s = 3.39 s; allow up to 3 x that.
    t.ok(tookMs < 3 * 3390, `r2 took over ${tookMs.toFixed(0)} ms after the cut`)
    await assertServedBy(t, lab, 'r2')
    await r1.waitFor(/vhid=1 MASTER->INIT reason="eth0 has no link"/)
    t.notOk(lab.hasAddress('r1', 'eth0', VIP), 'the cut-off master removed its VIP')
  })

  t.test('virtual MAC: the client keeps one neighbour entry for the VIP across a failover, and sends no ARP request to reach the new master', async (t) => {
    const lab = lanLab(t)
    // Sub-second: master down after 3 x 26/256 s (0.3 s) on r2.
    const r1 = start(lab, { name: 'r1', advbase: 0, vhids: [{ vhid: 1, vip: VIP, advskew: 26 }] })
    await r1.waitFor(/INIT->BACKUP/)
    const r2 = start(lab, { name: 'r2', advbase: 0, vhids: [{ vhid: 1, vip: VIP, advskew: 29 }] })
    await r1.waitFor(/vhid=1 BACKUP->MASTER/)
    await sleep(500)
    await assertServedBy(t, lab, 'r1')
    t.notOk(lab.exec('r2', ['ip', '-o', 'link', 'show', 'carp1']).includes('state UP'), "the backup's carp1 is down (it sends nothing)")
    t.equal(lab.neighMac('client', VIP), '00:00:5e:00:01:01', 'before: the virtual MAC')
    // Every ARP frame the client sends or receives, from before the cut to after the takeover.
    const arp = lab.spawnLines('client', ['tcpdump', '-l', '-n', '-i', 'eth0', 'arp'])
    await sleep(500) // tcpdump is listening
    const pings = lab.spawnLines('client', ['ping', '-n', '-i', '0.01', '-c', '300', '-W', '1', VIP])
    await sleep(300)
    lab.linkSet('r1', 'eth0', 'down')
    await r2.waitFor(/vhid=1 BACKUP->MASTER/, 3000)
    await pings.exited
    await sleep(200)
    arp.child.kill('SIGTERM')
    await arp.exited
    const replies = pings.lines.filter((l) => / bytes from /.test(l)).length
    t.comment(`client: ${replies} of 300 pings answered every 10 ms across the failover (${(300 - replies) * 10} ms without answers)`)
    t.ok(replies >= 200, `the VIP answered again within the run (${replies} replies)`)
    const requests = arp.lines.filter((l) => /Request who-has 192\.0\.2\.1 tell 192\.0\.2\.10/.test(l))
    t.same(requests, [], 'the client sent no ARP request for the VIP')
    t.equal(lab.neighMac('client', VIP), '00:00:5e:00:01:01', 'after: still the virtual MAC')
    await assertServedBy(t, lab, 'r2')
  })

  t.test('kill -TERM of the master: bow-out, the backup takes over within about one interval', async (t) => {
    const lab = lanLab(t)
    const r1 = start(lab, { name: 'r1', vhids: [{ vhid: 1, vip: VIP, advskew: 0 }] })
    await r1.waitFor(/INIT->BACKUP/)
    const r2 = start(lab, { name: 'r2', vhids: [{ vhid: 1, vip: VIP, advskew: 100 }] })
    await r1.waitFor(/vhid=1 BACKUP->MASTER/)
    await sleep(1200)
    r1.child.kill('SIGTERM')
    const took = await until(() => lab.hasAddress('r2', 'eth0', VIP), 3000, 5)
    t.ok(took >= 0 && took < 1000, `VIP on r2 ${took.toFixed(0)} ms after SIGTERM (one interval is 1.39 s)`)
    t.equal(await r1.exited, 0)
    t.notOk(lab.hasAddress('r1', 'eth0', VIP), 'r1 removed its VIP on exit')
    await r2.waitFor(/bowed out/)
    await assertServedBy(t, lab, 'r2')
  })

  for (const preempt of [true, false]) {
    t.test(`preempt ${preempt ? 'on' : 'off'}: a returning better router ${preempt ? 'takes the VIP back' : 'stays backup'}`, async (t) => {
      const lab = lanLab(t)
      const r2 = start(lab, { name: 'r2', preempt, vhids: [{ vhid: 1, vip: VIP, advskew: 100 }] })
      await r2.waitFor(/vhid=1 BACKUP->MASTER/)
      const r1 = start(lab, { name: 'r1', preempt, vhids: [{ vhid: 1, vip: VIP, advskew: 0 }] })
      await r1.waitFor(/INIT->BACKUP/)
      if (preempt) {
        await r1.waitFor(/vhid=1 BACKUP->MASTER reason="preempt/, 5000)
        await r2.waitFor(/vhid=1 MASTER->BACKUP/, 5000)
        // r2 keeps the VIP 250 ms after stepping down, until r1's ARP has spread.
        t.ok((await until(() => !lab.hasAddress('r2', 'eth0', VIP), 3000)) >= 0, 'r2 released the VIP')
        await assertServedBy(t, lab, 'r1')
      } else {
        await sleep(5000)
        t.notOk(r1.lines.some((l) => /->MASTER/.test(l)), 'r1 did not preempt')
        await assertServedBy(t, lab, 'r2')
      }
    })
  }

  t.test('unicast peers, and two vhids with different masters (active/active)', async (t) => {
    const lab = lanLab(t)
    const vhids = (skew1: number, skew2: number) => [
      { vhid: 1, vip: VIP, advskew: skew1 },
      { vhid: 2, vip: VIP2, advskew: skew2 },
    ]
    // Sub-second mode to keep the test short: master down after 3 x 100/256 s.
    const r1 = start(lab, { name: 'r1', advbase: 0, unicastPeer: ADDR.r2!, vhids: vhids(20, 100) })
    const r2 = start(lab, { name: 'r2', advbase: 0, unicastPeer: ADDR.r1!, vhids: vhids(100, 20) })
    await r1.waitFor(/vhid=1 BACKUP->MASTER/)
    await r2.waitFor(/vhid=2 BACKUP->MASTER/)
    await sleep(1000)
    t.notOk(r1.lines.some((l) => /vhid=2 BACKUP->MASTER/.test(l)), 'r1 stays backup of vhid 2')
    t.notOk(r2.lines.some((l) => /vhid=1 BACKUP->MASTER/.test(l)), 'r2 stays backup of vhid 1')
    await assertServedBy(t, lab, 'r1', VIP)
    await assertServedBy(t, lab, 'r2', VIP2)
    // Unicast only: the client, on the same LAN, hears no CARP datagram at all.
    const heard = spawnSync('ip', ['netns', 'exec', lab.ns('client'), 'timeout', '1', 'tcpdump', '-c', '1', '-ni', 'eth0', 'udp port 8240 and dst host 224.0.0.18'], { encoding: 'utf8' })
    t.match(heard.stderr, /0 packets captured/, 'no multicast adverts on the LAN')
  })

  t.test('a router with the wrong password, and replayed adverts, are ignored', async (t) => {
    const lab = lanLab(t, ['evil'])
    const r1 = start(lab, { name: 'r1', vhids: [{ vhid: 1, vip: VIP, advskew: 100 }] })
    await r1.waitFor(/INIT->BACKUP/)
    const r2 = start(lab, { name: 'r2', vhids: [{ vhid: 1, vip: VIP, advskew: 200 }] })
    await r1.waitFor(/vhid=1 BACKUP->MASTER/)
    // evil advertises more often (advskew 0) for the same VIP but with a wrong
    // password (HMAC over the same VIPs: only the password differs). --dry-run so it
    // does not really take the address: it only sends adverts.
    const evil = lab.startCarpd('evil', configText({ name: 'evil', pass: 'guess', vhids: [{ vhid: 1, vip: VIP, advskew: 0 }] }), ['--dry-run'])
    await evil.waitFor(/INIT->BACKUP/)
    // Capture one of r1's adverts on the client and send it again, twice.
    const replay = lab.spawnLines('client', [
      process.execPath,
      '-e',
      `const d=require('node:dgram');const s=d.createSocket({type:'udp4',reuseAddr:true});
       s.on('message',(m)=>{s.send(m,8240,'224.0.0.18',()=>s.send(m,8240,'224.0.0.18',()=>{console.log('replayed');process.exit(0)}))});
       s.bind(8240,()=>{s.addMembership('224.0.0.18','${ADDR.client}');s.setMulticastInterface('${ADDR.client}')})`,
    ])
    await replay.waitFor(/replayed/, 5000)
    await sleep(5000)
    t.notOk(r1.lines.some((l) => /MASTER->BACKUP/.test(l)), 'r1 never stepped down')
    t.notOk(r2.lines.some((l) => /->MASTER/.test(l)), 'r2 never claimed')
    const st = JSON.parse(lab.carpdOnce('r2', ['status', '--json', '-c', `${lab.dir}/r2.conf`]))
    t.ok(st.drops.badAuth > 3, `r2 counted evil's adverts as badAuth (${st.drops.badAuth})`)
    t.equal(st.drops.replay, 2, 'and the two replayed adverts as replays')
    await assertServedBy(t, lab, 'r1')
  })

  t.test("link down on the master's LAN interface demotes it: its vhid on another network moves too", async (t) => {
    const lab = lanLab(t)
    lab.addSwitch('dmz')
    lab.connect('r1', 'eth1', 'dmz', '198.51.100.2/24')
    lab.connect('r2', 'eth1', 'dmz', '198.51.100.3/24')
    const spec = (name: string, skew: number) => ({
      name,
      vhids: [
        { vhid: 1, vip: VIP, advskew: skew },
        { vhid: 2, vip: '198.51.100.1', advskew: skew, iface: 'eth1' },
      ],
    })
    const r1 = start(lab, spec('r1', 0))
    await r1.waitFor(/INIT->BACKUP/)
    const r2 = start(lab, spec('r2', 100))
    await r1.waitFor(/vhid=2 BACKUP->MASTER/)
    await sleep(500)
    lab.linkSet('r1', 'eth0', 'down')
    await r1.waitFor(/demote 0->20 reason="eth0 link down"/, 3000)
    // vhid 2's network is fine, but r1 is demoted: r2 takes vhid 2 at once.
    await r2.waitFor(/vhid=2 BACKUP->MASTER reason="master 198\.51\.100\.2:8240 is demoted/, 3000)
    await r2.waitFor(/vhid=1 BACKUP->MASTER/, 6000)
    t.ok((await until(() => !lab.hasAddress('r1', 'eth1', '198.51.100.1'), 3000)) >= 0, 'r1 released vhid 2')
    t.same(lab.holders(ROUTERS, 'eth1', '198.51.100.1'), ['r2'])
    t.same(lab.holders(ROUTERS, 'eth0', VIP), ['r2'])
    const st = JSON.parse(lab.carpdOnce('r1', ['status', '--json', '-c', `${lab.dir}/r1.conf`]))
    t.same(st.demote.reasons, { 'link:eth0': 20 })
    t.same(st.links, { eth0: 'down', eth1: 'up' })
  })

  t.test('self-repair: a VIP removed from the master by hand comes back, one added to the backup by hand goes, each within 5 s', async (t) => {
    const lab = lanLab(t)
    const r1 = start(lab, { name: 'r1', vhids: [{ vhid: 1, vip: VIP, advskew: 0 }] })
    await r1.waitFor(/INIT->BACKUP/)
    const r2 = start(lab, { name: 'r2', vhids: [{ vhid: 1, vip: VIP, advskew: 100 }] })
    await r1.waitFor(/vhid=1 BACKUP->MASTER/)
    await sleep(1500)
    await assertServedBy(t, lab, 'r1')
    lab.exec('r1', ['ip', 'addr', 'del', `${VIP}/24`, 'dev', 'carp1'])
    t.notOk(lab.hasAddress('r1', 'eth0', VIP), 'removed by hand')
    const back = await until(() => lab.hasAddress('r1', 'eth0', VIP), 5000)
    t.ok(back >= 0, `the master added it again after ${back.toFixed(0)} ms`)
    await r1.waitFor(/repair vhid=1 192\.0\.2\.1 removed from carp1 by someone else/, 1000)
    await assertServedBy(t, lab, 'r1')
    lab.exec('r2', ['ip', 'addr', 'add', `${VIP}/24`, 'dev', 'carp1'])
    const gone = await until(() => !lab.hasAddress('r2', 'eth0', VIP), 5000)
    t.ok(gone >= 0, `the backup removed it after ${gone.toFixed(0)} ms`)
    await r2.waitFor(/repair vhid=1 192\.0\.2\.1 on carp1 while BACKUP: removing/, 1000)
    // On the interface itself (a board's own MAC would answer for it): removed, master or not.
    lab.exec('r1', ['ip', 'addr', 'add', `${VIP}/24`, 'dev', 'eth0'])
    await r1.waitFor(/repair vhid=1 192\.0\.2\.1 on eth0, not on its virtual MAC carp1: removing/, 5000)
    t.ok((await until(() => !lab.exec('r1', ['ip', '-4', 'addr', 'show', 'dev', 'eth0']).includes(VIP), 2000)) >= 0, 'gone from eth0')
    // The macvlan deleted, a sysctl it set changed back: both put back within 5 s.
    lab.exec('r1', ['ip', 'link', 'del', 'carp1'])
    await r1.waitFor(/repair vhid=1 carp1 was deleted by someone else: made again/, 5000)
    await r1.waitFor(/repair vhid=1 192\.0\.2\.1 removed from carp1 by someone else/, 5000)
    await assertServedBy(t, lab, 'r1')
    lab.exec('r1', ['sysctl', '-w', 'net.ipv4.conf.eth0.arp_ignore=0'])
    await r1.waitFor(/repair net\.ipv4\.conf\.eth0\.arp_ignore was 0: set to 1 again/, 5000)
    const st = JSON.parse(lab.carpdOnce('r1', ['status', '--json', '-c', `${lab.dir}/r1.conf`]))
    t.equal(st.repairs, 5, 'each counted in carpd status')
    // A clean stop puts back what it changed and deletes its macvlan.
    r1.child.kill('SIGTERM')
    await r1.exited
    t.equal(lab.exec('r1', ['sysctl', '-n', 'net.ipv4.conf.eth0.arp_ignore']).trim(), '0', 'arp_ignore back to what it was')
    t.notOk(lab.exec('r1', ['ip', '-o', 'link', 'show']).includes('carp1'), 'carp1 deleted')
  })
}
