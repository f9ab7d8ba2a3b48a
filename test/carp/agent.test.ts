import t, { type Test } from 'tap'
import { masterDownMs } from '../../src/carp/vhid.js'
import { REPAIR_CHECK_MS } from '../../src/carp/agent.js'
import { CARP_PORT, control, Lab, makeConfig, vhidConfig } from '../helpers/agents.js'
import { requestMac } from '../../src/control/protocol.js'

const A = '192.0.2.2'
const B = '192.0.2.3'
const EP_A = { address: A, port: CARP_PORT }

/** A pair on one LAN: a prefers to be master (advskew 0), b is the backup (advskew 100). */
function pair(carp: Parameters<typeof makeConfig>[2] = {}, skewB = 100) {
  const lab = new Lab()
  const a = lab.add('a', A, makeConfig('a', [vhidConfig()], carp))
  const b = lab.add('b', B, makeConfig('b', [vhidConfig({ advskew: skewB })], carp))
  return { lab, a, b }
}

/** Advances time in small steps, asserting there is never more than one master. */
function runChecked(t: Test, lab: Lab, ms: number, stepMs = 10): void {
  let dual = 0
  for (let elapsed = 0; elapsed < ms; elapsed += stepMs) {
    lab.clock.advance(stepMs)
    if (lab.masters().length > 1) dual += stepMs
  }
  // The old master steps down on the first advert of the new one: at most the link latency.
  t.ok(dual <= 10, `no lasting dual master (saw ${dual} ms)`)
}

t.test('election: both come up BACKUP, the lower advskew wins after a full master-down interval', async (t) => {
  const { lab, a, b } = pair()
  a.agent.start()
  b.agent.start()
  await lab.settle()
  t.same(lab.masters(), [])
  lab.clock.advance(masterDownMs(1, 0) - 1)
  t.same(lab.masters(), [], 'nobody claims before the master-down interval')
  t.equal(lab.net.log.length, 0, 'nothing sent while listening')
  lab.clock.advance(2)
  t.same(lab.masters(), ['a'])
  await lab.settle()
  runChecked(t, lab, 10_000)
  t.same(lab.masters(), ['a'])
  t.equal(lab.state('b'), 'BACKUP')
  await lab.settle()
  t.same(
    a.platform.calls,
    ['del lan0 192.0.2.1/24', 'add lan0 192.0.2.1/24', 'garp lan0 192.0.2.1', 'garp lan0 192.0.2.1'],
    'stale VIP removed at start; VIP added, then ARP; ARP again',
  )
  t.same(b.platform.calls, ['del lan0 192.0.2.1/24'], 'the backup only clears a stale VIP')
  t.match(a.lines.join('\n'), /carp vhid=1 BACKUP->MASTER reason="no master heard in 3\.0s"/)
  const st = b.agent.status().vhids[0]!
  t.equal(st.master?.from, `${A}:${CARP_PORT}`)
  t.ok(st.received >= 10)
})

t.test('master death: the backup takes over after its master-down interval', async (t) => {
  const { lab, a } = pair()
  void a
  for (const n of lab.nodes.values()) n.agent.start()
  lab.clock.advance(5000)
  t.same(lab.masters(), ['a'])
  const cutAt = lab.clock.now()
  lab.net.cut(EP_A)
  let tookOverAt = -1
  for (let i = 0; i < 600 && tookOverAt < 0; i++) {
    lab.clock.advance(10)
    if (lab.state('b') === 'MASTER') tookOverAt = lab.clock.now()
  }
  const outage = tookOverAt - cutAt
  // Between masterDown (3.39 s) after the last advert and that plus one interval.
  t.ok(outage >= masterDownMs(1, 100) - 1000 && outage <= masterDownMs(1, 100) + 20, `outage ${outage} ms`)
  t.match(lab.nodes.get('b')!.lines.join('\n'), /BACKUP->MASTER reason="no advert from 192\.0\.2\.2:8240 for 3\.4s"/)
})

t.test('preempt on: a returning better board takes the VIP back; off: the running master stays', async (t) => {
  for (const preempt of [true, false]) {
    const lab = new Lab()
    const b = lab.add('b', B, makeConfig('b', [vhidConfig({ advskew: 100 })], { preempt }))
    b.agent.start()
    lab.clock.advance(5000)
    t.same(lab.masters(), ['b'], 'b alone becomes master')
    const a = lab.add('a', A, makeConfig('a', [vhidConfig()], { preempt }))
    a.agent.start()
    runChecked(t, lab, 10_000)
    t.same(lab.masters(), preempt ? ['a'] : ['b'], `preempt ${preempt}`)
    if (preempt) t.match(a.lines.join('\n'), /reason="preempt: ours demote=0 advbase=1 advskew=0 beats/)
  }
})

t.test('preempt hold-down delays the preemption', async (t) => {
  const lab = new Lab()
  const carp = { preemptHolddownMs: 8000 }
  const b = lab.add('b', B, makeConfig('b', [vhidConfig({ advskew: 100 })], carp))
  b.agent.start()
  lab.clock.advance(5000)
  const a = lab.add('a', A, makeConfig('a', [vhidConfig()], carp))
  const startA = lab.clock.now()
  a.agent.start()
  let preemptAt = -1
  for (let i = 0; i < 2000 && preemptAt < 0; i++) {
    lab.clock.advance(10)
    if (lab.state('a') === 'MASTER') preemptAt = lab.clock.now()
  }
  t.ok(preemptAt - startA >= 8000 && preemptAt - startA <= 9100, `preempted ${preemptAt - startA} ms after start`)
})

t.test('demotion: maint on hands the VIP over at once, maint off takes it back', async (t) => {
  const { lab, a, b } = pair()
  a.agent.start()
  b.agent.start()
  lab.clock.advance(5000)
  t.same(lab.masters(), ['a'])
  const r = control(a, { cmd: 'maint', on: true })
  t.ok(r.ok)
  lab.clock.advance(5) // link latency, a few ms
  t.same(lab.masters(), ['b'], 'switchover within a few ms, not a master-down interval')
  t.equal(a.agent.status().demote.total, 128)
  t.ok(a.agent.status().maint)
  runChecked(t, lab, 5000)
  t.same(lab.masters(), ['b'], 'a stays backup while in maintenance')
  control(a, { cmd: 'maint', on: false })
  runChecked(t, lab, 3000)
  t.same(lab.masters(), ['a'], 'preempt takes it back')
  t.match(a.lines.join('\n'), /demote 0->128 reason="maintenance mode on"/)
})

t.test('operator demote', async (t) => {
  const { lab, a, b } = pair()
  a.agent.start()
  b.agent.start()
  lab.clock.advance(5000)
  const bad = control(a, { cmd: 'demote', value: 300 })
  t.same(bad, { ok: false, error: 'demote must be an integer 0..255, got 300' })
  const r = control(a, { cmd: 'demote', value: 5 })
  t.ok(r.ok && 'status' in r && r.status.demote.reasons.operator === 5)
  lab.clock.advance(20)
  t.same(lab.masters(), ['b'])
  control(a, { cmd: 'demote', value: 0 })
  lab.clock.advance(3000)
  t.same(lab.masters(), ['a'])
  t.same((control(a, { cmd: 'bogus' } as never) as { ok: boolean }).ok, false)
})

t.test('bow-out: stopping the master hands over at once', async (t) => {
  const { lab, a } = pair()
  for (const n of lab.nodes.values()) n.agent.start()
  lab.clock.advance(5000)
  const stopAt = lab.clock.now()
  await a.agent.stop()
  lab.clock.advance(2)
  t.same(lab.masters(), ['b'])
  t.ok(lab.clock.now() - stopAt <= 2, 'within the link latency')
  t.match(lab.nodes.get('b')!.lines.join('\n'), /reason="master 192\.0\.2\.2:8240 bowed out"/)
  t.ok(a.platform.calls.includes('del lan0 192.0.2.1/24'), 'VIP removed on exit')
  await a.agent.stop() // idempotent
})

t.test('tie-break: equal settings end with exactly one master, the higher address', async (t) => {
  const { lab } = pair({}, 0)
  for (const n of lab.nodes.values()) n.agent.start()
  lab.clock.advance(3001)
  runChecked(t, lab, 10_000)
  t.same(lab.masters(), ['b'], '192.0.2.3 > 192.0.2.2')
})

t.test('unicast peers and two vhids with different masters (active/active)', async (t) => {
  const lab = new Lab()
  const peerOf = (addr: string) => [{ address: addr, port: 0 }]
  const v = (vhid: number, skew: number, peer: string) =>
    vhidConfig({ vhid, advskew: skew, peers: peerOf(peer), vips: [{ address: `192.0.2.${10 + vhid}`, prefix: 24 }] })
  lab.add('a', A, makeConfig('a', [v(1, 0, B), v(2, 100, B)])).agent.start()
  lab.add('b', B, makeConfig('b', [v(1, 100, A), v(2, 0, A)])).agent.start()
  runChecked(t, lab, 10_000)
  t.same(lab.masters(1), ['a'])
  t.same(lab.masters(2), ['b'])
  t.ok(lab.net.log.every((p) => p.to.address === A || p.to.address === B), 'only unicast')
  t.match(lab.nodes.get('a')!.agent.status().vhids[0]!.transport, /^unicast 192\.0\.2\.3/)
})

t.test('input ladder: bad password, replay, unknown vhid, unknown sender, own packets are dropped and counted', async (t) => {
  const { lab, a, b } = pair()
  a.agent.start()
  b.agent.start()
  lab.clock.advance(5000)
  // An intruder with the wrong password and a better priority must be ignored.
  const evil = lab.add('evil', '192.0.2.66', makeConfig('evil', [vhidConfig({ pass: 'wrong', advskew: 0 })], { preempt: true }))
  evil.agent.start()
  lab.clock.advance(5000)
  t.equal(lab.state('evil'), 'MASTER', 'the intruder hears nobody it trusts and claims')
  t.equal(lab.state('b'), 'BACKUP')
  t.ok(b.agent.status().drops.badAuth > 0, 'badAuth counted')
  t.ok(lab.state('a') === 'MASTER', 'the real master is not moved by the intruder')

  // Replay a captured advert of a's: refused, and b stays backup.
  const captured = lab.net.log.find((p) => p.from.address === A)!
  const before = b.agent.status().drops.replay
  lab.net.inject(EP_A, { address: B, port: CARP_PORT }, captured.payload)
  lab.clock.advance(2)
  t.equal(b.agent.status().drops.replay, before + 1)

  const other = Buffer.from(captured.payload)
  other[1] = 9 // vhid 9: not configured; fix the checksum so it gets that far
  other.writeUInt16BE(0, 6)
  const { internetChecksum } = await import('../../src/wire/checksum.js')
  other.writeUInt16BE(internetChecksum(other), 6)
  lab.net.inject(EP_A, { address: B, port: CARP_PORT }, other)
  lab.net.inject(EP_A, { address: B, port: CARP_PORT }, Buffer.from('garbage'))
  lab.clock.advance(2)
  t.equal(b.agent.status().drops.unknownVhid, 1)
  t.equal(b.agent.status().drops.shortPacket, 1)

  // b's own advert looped back to it.
  control(a, { cmd: 'maint', on: true })
  lab.clock.advance(5)
  const own = lab.net.log.filter((p) => p.from.address === B).at(-1)!
  lab.net.inject({ address: '192.0.2.99', port: CARP_PORT }, { address: B, port: CARP_PORT }, own.payload)
  lab.clock.advance(2)
  t.equal(b.agent.status().drops.ownPacket, 1)
})

t.test('unicast: adverts from an address that is not a configured peer are dropped', async (t) => {
  const lab = new Lab()
  const a = lab.add('a', A, makeConfig('a', [vhidConfig({ peers: [{ address: B, port: 0 }] })]))
  const c = lab.add('c', '192.0.2.77', makeConfig('c', [vhidConfig({ peers: [{ address: A, port: 0 }] })]))
  c.agent.start()
  lab.clock.advance(4000)
  a.agent.start()
  lab.clock.advance(4000)
  t.ok(a.agent.status().drops.unknownSender > 0)
  t.equal(lab.state('a'), 'MASTER', 'a did not defer to a stranger')
})

t.test('send errors demote the board with hysteresis and clear again', async (t) => {
  const { lab, a, b } = pair()
  a.agent.start()
  b.agent.start()
  lab.clock.advance(5000)
  lab.net.failing.add(`${A}:${CARP_PORT}`)
  lab.clock.advance(1000)
  await lab.settle()
  lab.clock.advance(1000)
  await lab.settle()
  t.equal(a.agent.status().demote.reasons.sendErrors, undefined, 'two failures are not enough')
  lab.clock.advance(1000)
  await lab.settle()
  t.equal(a.agent.status().demote.reasons.sendErrors, 10)
  t.ok(a.agent.status().sendErrors >= 3)
  lab.clock.advance(4000)
  await lab.settle()
  t.same(lab.masters(), ['b'], 'b heard nothing from a and took over')
  lab.net.failing.clear()
  lab.clock.advance(25_000)
  t.equal(a.agent.status().demote.reasons.sendErrors, 10, 'a backup sends nothing: still demoted')
  lab.clock.advance(10_000)
  t.equal(a.agent.status().demote.reasons.sendErrors, undefined, 'cleared after 30 s without a failure')
  t.match(a.lines.join('\n'), /demote 10->0 reason="no failed send for 30s"/)
  lab.clock.advance(1100)
  t.same(lab.masters(), ['a'], 'and preempts again')
  t.match(a.lines.join('\n'), /send failed: 192\.0\.2\.3:8240|send failed: 224\.0\.0\.18:8240/)
})

t.test('send errors while a link goes down are the link\'s: back, the board preempts at once (issue 11)', async (t) => {
  const { lab, a, b } = pair()
  a.agent.start()
  b.agent.start()
  lab.clock.advance(5000)
  t.same(lab.masters(), ['a'])
  // The cable is pulled: sends fail at once, the link reading needs two polls.
  lab.net.failing.add(`${A}:${CARP_PORT}`)
  for (let i = 0; i < 3; i++) {
    lab.clock.advance(1000)
    await lab.settle()
  }
  t.equal(a.agent.status().demote.reasons.sendErrors, 10, 'three failed sends demote, as before')
  a.platform.linksDown.add('lan0')
  lab.clock.advance(1000)
  await lab.settle()
  t.same(a.agent.status().demote.reasons, { 'link:lan0': 20 }, 'once the link is known down, its demotion alone stands')
  lab.clock.advance(3000)
  t.same(lab.masters(), ['b'])
  // The cable is back: a preempts after the hold-down (0) and b's next advert, not after 30 s.
  lab.net.failing.clear()
  a.platform.linksDown.delete('lan0')
  lab.clock.advance(3000)
  await lab.settle()
  t.same(a.agent.status().demote.reasons, {})
  t.same(lab.masters(), ['a'], 'a preempts within seconds of its link coming back')
  t.match(a.lines.join('\n'), /demote 30->20 reason="link lan0 down: failed sends were the link's"/)
})

t.test('hooks get vhid interface vip state; platform failures are logged, not fatal', async (t) => {
  const lab = new Lab()
  const a = lab.add('a', A, makeConfig('a', [vhidConfig()], { upscript: '/cf/up.sh', downscript: '/cf/down.sh' }))
  a.platform.fail = true
  a.agent.start()
  await lab.settle()
  lab.clock.advance(3001)
  await lab.settle()
  await a.agent.stop()
  t.same(a.platform.calls, [
    'del lan0 192.0.2.1/24',
    'del lan0 192.0.2.1/24', // the removal at start failed: tried again while BACKUP
    'hook /cf/up.sh 1 lan0 192.0.2.1 MASTER', // hooks have a queue of their own
    'add lan0 192.0.2.1/24',
    'garp lan0 192.0.2.1',
    'del lan0 192.0.2.1/24',
    'hook /cf/down.sh 1 lan0 192.0.2.1 INIT',
  ])
  t.match(a.lines.join('\n'), /platform vhid=1 add VIPs 192\.0\.2\.1 failed: command failed/)
  t.equal(a.agent.status().platformFailures, 7, 'every failed command counted')
  t.equal(a.agent.status().demote.reasons.platform, 10, 'and the board demoted')
})

t.test('reload: timing in place, changed VIPs restart the vhid, added and removed vhids, restart-only keys', async (t) => {
  const lab = new Lab()
  const a = lab.add('a', A, makeConfig('a', [vhidConfig(), vhidConfig({ vhid: 2 })]))
  a.agent.start()
  lab.clock.advance(4000)
  const next = makeConfig('a', [vhidConfig({ advskew: 20 }), vhidConfig({ vhid: 3 })], { port: 9999 })
  const notes = a.agent.reload(next)
  t.same(notes, [
    'carp.port changed (8240 -> 9999): takes effect after a restart',
    'vhid 1: advskew 0 -> 20',
    'vhid 2: removed',
    'vhid 3: added',
  ])
  const st = a.agent.status()
  t.same(st.vhids.map((v) => [v.vhid, v.state, v.advskew]), [
    [1, 'MASTER', 20],
    [3, 'BACKUP', 0],
  ])
  const moved = a.agent.reload(makeConfig('a', [vhidConfig({ advskew: 20, vips: [{ address: '192.0.2.5', prefix: 24 }] }), vhidConfig({ vhid: 3 })]))
  t.same(moved, ['vhid 1: interface or VIPs changed, restarted'])
  t.equal(a.agent.status().vhids.find((v) => v.vhid === 1)!.state, 'BACKUP')
})

t.test('an impossible event is counted as a bug, not a crash', async (t) => {
  const lab = new Lab()
  const a = lab.add('a', A, makeConfig('a', [vhidConfig()]))
  a.agent.start()
  // Fire a master-only timer at a backup by reaching into the machine's door.
  ;(a.agent.agent as unknown as { dispatch(v: unknown, ev: unknown): void }).dispatch(
    (a.agent.agent as unknown as { vhids: Map<number, unknown> }).vhids.get(1),
    { type: 'timer', timer: 'advertise' },
  )
  t.equal(a.agent.status().bugs, 1)
  t.match(a.lines.join('\n'), /bug carp vhid=1: impossible event timer advertise in state BACKUP/)
})

t.test('sub-second mode: a demoted backup with the smaller advskew does not flap', async (t) => {
  const lab = new Lab()
  const a = lab.add('a', A, makeConfig('a', [vhidConfig({ advbaseS: 0, advskew: 10 })]))
  const b = lab.add('b', B, makeConfig('b', [vhidConfig({ advbaseS: 0, advskew: 40 })]))
  a.agent.start()
  b.agent.start()
  lab.clock.advance(1000)
  t.same(lab.masters(), ['a'])
  control(a, { cmd: 'maint', on: true })
  lab.clock.advance(10)
  t.same(lab.masters(), ['b'])
  const before = a.agent.status().vhids[0]!.transitions
  runChecked(t, lab, 5000, 5)
  t.same(lab.masters(), ['b'])
  t.equal(a.agent.status().vhids[0]!.transitions, before, 'no transitions while in maintenance')
})

t.test('sequence wrap: a new boot epoch, which the backup accepts', async (t) => {
  const { lab, a, b } = pair()
  a.agent.start()
  b.agent.start()
  lab.clock.advance(5000)
  const inner = a.agent.agent as unknown as { sequence: number; epoch: number }
  const epochBefore = inner.epoch
  inner.sequence = 0xffffffff
  const received = b.agent.status().vhids[0]!.received
  lab.clock.advance(3000)
  t.not(inner.epoch, epochBefore, 'new epoch after the wrap')
  // The first advert of the new epoch comes only one gap after the last old one, so
  // it is refused (epochs need 1.5 gaps of quiet); the next ones are accepted.
  t.equal(b.agent.status().drops.epochSwitch, 1)
  t.equal(b.agent.status().vhids[0]!.received, received + 2, 'the backup accepts the new epoch')
  t.same(lab.masters(), ['a'])
})

t.test('a captured advert sent again from another port, or edited into a bow-out, is a replay', async (t) => {
  const { lab, a, b } = pair()
  a.agent.start()
  b.agent.start()
  lab.clock.advance(5000)
  const captured = lab.net.log.filter((p) => p.from.address === A).at(-1)!
  const elsewhere = { address: A, port: 40001 }
  lab.net.inject(elsewhere, { address: '224.0.0.18', port: CARP_PORT }, captured.payload)
  // The HMAC does not cover advbase/advskew (carp(4)'s definition): edit them into a
  // bow-out and fix the checksum. The counter was seen already, so it is refused.
  const bow = Buffer.from(captured.payload)
  bow[2] = 255
  bow[5] = 255
  bow.writeUInt16BE(0, 6)
  const { internetChecksum } = await import('../../src/wire/checksum.js')
  bow.writeUInt16BE(internetChecksum(bow), 6)
  lab.net.inject(elsewhere, { address: '224.0.0.18', port: CARP_PORT }, bow)
  lab.clock.advance(2)
  t.equal(b.agent.status().drops.replay, 2)
  t.same(lab.masters(), ['a'], 'no second master')
  void a
})

t.test('sender checks: unicast peers by address and port, multicast by the interface subnet', async (t) => {
  const lab = new Lab()
  const a = lab.add('a', A, makeConfig('a', [vhidConfig({ peers: [{ address: B, port: 0 }] })]))
  const b = lab.add('b', B, makeConfig('b', [vhidConfig({ advskew: 100, peers: [{ address: A, port: 0 }] })]))
  a.agent.start()
  b.agent.start()
  lab.clock.advance(5000)
  const captured = lab.net.log.filter((p) => p.from.address === A).at(-1)!
  lab.net.inject({ address: A, port: 40001 }, { address: B, port: CARP_PORT }, captured.payload)
  lab.clock.advance(2)
  t.equal(b.agent.status().drops.unknownSender, 1, 'right address, wrong port')

  const m = pair()
  m.a.agent.start()
  m.b.agent.start()
  m.lab.clock.advance(5000)
  const adv = m.lab.net.log.filter((p) => p.from.address === A).at(-1)!
  m.lab.net.inject({ address: '198.51.100.9', port: CARP_PORT }, { address: '224.0.0.18', port: CARP_PORT }, adv.payload)
  m.lab.clock.advance(2)
  t.equal(m.b.agent.status().drops.unknownSender, 1, 'multicast from outside 192.0.2.0/24')
})

t.test('reloading new VIPs on both boards keeps one master and drops nothing as replay', async (t) => {
  const { lab, a, b } = pair()
  a.agent.start()
  b.agent.start()
  lab.clock.advance(60_000)
  const moved = (skew: number) => makeConfig('x', [vhidConfig({ advskew: skew, vips: [{ address: '192.0.2.77', prefix: 24 }] })])
  t.same(a.agent.reload({ ...moved(0), node: 'a' }), ['vhid 1: interface or VIPs changed, restarted'])
  t.same(b.agent.reload({ ...moved(100), node: 'b' }), ['vhid 1: interface or VIPs changed, restarted'])
  runChecked(t, lab, 10_000)
  t.same(lab.masters(), ['a'])
  t.equal(a.agent.status().drops.replay + b.agent.status().drops.replay, 0)
})

t.test('reload: a multicast vhid on an interface the socket never joined waits for a restart', async (t) => {
  const lab = new Lab()
  const a = lab.add('a', A, makeConfig('a', [vhidConfig()]))
  a.agent.start()
  lab.clock.advance(4000)
  const notes = a.agent.reload(makeConfig('a', [vhidConfig({ interface: 'lan9' }), vhidConfig({ vhid: 2, interface: 'lan9' })]))
  t.same(notes, [
    'vhid 1: multicast to 224.0.0.18 on lan9 takes effect after a restart',
    'vhid 2: multicast to 224.0.0.18 on lan9 takes effect after a restart',
  ])
  t.same(a.agent.status().vhids.map((v) => [v.vhid, v.interface, v.state]), [[1, 'lan0', 'MASTER']], 'vhid 1 kept, vhid 2 not started')
  const more = a.agent.reload(makeConfig('a', [vhidConfig()], { preempt: false, preemptHolddownMs: 2000 }))
  t.same(more, ['carp.preempt yes -> no', 'carp.preempt.holddown 0 ms -> 2000 ms'])
  const peers = a.agent.reload(makeConfig('a', [vhidConfig({ pass: 'new', peers: [{ address: B, port: 9 }] })]))
  t.same(peers, [
    'vhid 1: password changed',
    'vhid 1: peers multicast -> 192.0.2.3:9',
    'carp.preempt no -> yes',
    'carp.preempt.holddown 2000 ms -> 0 ms',
  ])
})

t.test('control: maint and demote need the token from the configuration; status does not', async (t) => {
  const { lab, a } = pair()
  a.agent.start()
  lab.clock.advance(4000)
  t.ok(a.agent.control({ cmd: 'status' }).ok)
  const bare = a.agent.control({ cmd: 'maint', on: true })
  t.same(bare.ok, false)
  t.match((bare as { error: string }).error, /^maint: not authorised/)
  t.match(a.agent.control({ cmd: 'demote', value: 255, nonce: 'f'.repeat(76), mac: 'f'.repeat(64) }), { ok: false, error: /not authorised: a challenge this agent never issued/ })
  const challenge = a.agent.control({ cmd: 'challenge' })
  const nonce = challenge.ok && 'nonce' in challenge ? challenge.nonce : ''
  t.match(nonce, /^[0-9a-f]{76}$/)
  const config = (a.agent as unknown as { config: Parameters<typeof requestMac>[0] }).config
  const signed = { cmd: 'demote' as const, value: 2, nonce, mac: requestMac(config, nonce, { cmd: 'demote', value: 2 }) }
  t.same(a.agent.control({ ...signed, value: 255 }).ok, false, 'an answer for another request (demote 2, not 255)')
  t.same(a.agent.status().demote.total, 0, 'nothing changed')
  t.ok(a.agent.control(signed).ok, 'a wrong answer does not spend the challenge')
  t.match(a.agent.control(signed), { ok: false, error: /used already/ }, 'a right one does')
  control(a, { cmd: 'demote', value: 0 })
  // A request captured on its way (a user who bound the port while carpd was down)
  // cannot be replayed: its nonce was used up, or never the agent's.
  const fresh = a.agent.control({ cmd: 'challenge' })
  const n2 = fresh.ok && 'nonce' in fresh ? fresh.nonce : ''
  const captured = { cmd: 'maint' as const, on: true, nonce: n2, mac: requestMac(config, n2, { cmd: 'maint', on: true }) }
  t.ok(a.agent.control(captured).ok, 'the real request works once')
  t.same(a.agent.control(captured).ok, false, 'its replay does not')
  t.ok(control(a, { cmd: 'maint', on: false }).ok)
  // A challenge is answered within 5 s.
  const late = a.agent.control({ cmd: 'challenge' })
  const n3 = late.ok && 'nonce' in late ? late.nonce : ''
  lab.clock.advance(5001)
  t.same(a.agent.control({ cmd: 'demote', value: 1, nonce: n3, mac: requestMac(config, n3, { cmd: 'demote', value: 1 }) }).ok, false, 'too late')
  t.ok(control(a, { cmd: 'demote', value: 3 }).ok)
  t.equal(a.agent.status().demote.total, 3)
})

t.test('link down on the master: INIT and demoted at once, the backup takes over; link up: back, preempt', async (t) => {
  const { lab, a } = pair()
  for (const n of lab.nodes.values()) n.agent.start()
  lab.clock.advance(5000)
  t.same(lab.masters(), ['a'])
  a.platform.linksDown.add('lan0')
  lab.net.cut(EP_A) // no link: nothing leaves
  lab.clock.advance(200)
  t.equal(lab.state('a'), 'MASTER', 'one reading is not enough')
  lab.clock.advance(200)
  t.equal(lab.state('a'), 'INIT', 'two readings: down')
  t.equal(a.agent.status().demote.reasons['link:lan0'], 20)
  t.same(a.agent.status().links, { lan0: 'down' })
  await lab.settle()
  t.ok(a.platform.calls.includes('del lan0 192.0.2.1/24'), 'VIP removed')
  lab.clock.advance(3500)
  t.same(lab.masters(), ['b'])
  a.platform.linksDown.delete('lan0')
  lab.net.cut(EP_A, false)
  lab.clock.advance(400)
  t.equal(lab.state('a'), 'INIT', 'two good readings are not enough to come back')
  lab.clock.advance(200)
  t.equal(lab.state('a'), 'BACKUP')
  t.equal(a.agent.status().demote.total, 0)
  lab.clock.advance(1500)
  t.same(lab.masters(), ['a'], 'preempts again once the link is back')
  t.match(a.lines.join('\n'), /carp link lan0 down/)
  t.match(a.lines.join('\n'), /vhid=1 MASTER->INIT reason="lan0 has no link"/)
})

t.test('an interface without link at start keeps its vhid in INIT, even in sub-second mode', async (t) => {
  const lab = new Lab()
  const a = lab.add('a', A, makeConfig('a', [vhidConfig({ advbaseS: 0, advskew: 10 })]))
  a.platform.linksDown.add('lan0')
  a.agent.start()
  lab.clock.advance(5000)
  await lab.settle()
  t.equal(lab.state('a'), 'INIT')
  t.equal(a.agent.status().vhids[0]!.transitions, 0, 'never BACKUP, never MASTER')
  t.notOk(a.platform.calls.some((c) => c.startsWith('add')), 'never added the VIP')
  t.equal(a.agent.status().demote.reasons['link:lan0'], 20)
  // A second vhid added by a reload on the dead interface starts in INIT too.
  a.agent.reload(makeConfig('a', [vhidConfig(), vhidConfig({ vhid: 2 })]))
  t.equal(lab.state('a', 2), 'INIT')
  // A reload that moves every vhid off the dead interface drops its demotion.
  a.agent.reload(makeConfig('a', [vhidConfig({ interface: 'lan1', peers: [{ address: B, port: 0 }] })]))
  t.same(a.agent.status().demote.reasons, {})
  t.same(Object.keys(a.agent.status().links), [])
})

t.test('only a VIP that cannot be added demotes; it clears when adding works again', async (t) => {
  const { lab, a, b } = pair()
  a.platform.failing.add('garp')
  a.platform.failing.add('hook')
  for (const n of lab.nodes.values()) n.agent.start()
  lab.clock.advance(5000)
  await lab.settle()
  t.same(lab.masters(), ['a'])
  t.ok(a.agent.status().platformFailures >= 1, 'the failed ARP is counted')
  t.equal(a.agent.status().demote.total, 0, 'but does not demote')
  // b takes over (maint on a) and cannot add the VIP: b is demoted, a takes it back.
  b.platform.failing.add('add')
  control(a, { cmd: 'maint', on: true })
  lab.clock.advance(10)
  await lab.settle()
  t.equal(b.agent.status().demote.reasons.platform, 10)
  t.match(b.lines.join('\n'), /demote 0->10 reason="a VIP could not be added"/)
  control(a, { cmd: 'maint', on: false })
  lab.clock.advance(3000)
  t.same(lab.masters(), ['a'])
  // Equal demotion on both boards would not swap them back and forth: b stays demoted
  // until adding works or the hold (5 min) ends.
  lab.clock.advance(296_000) // the failure was 299 s ago
  t.equal(b.agent.status().demote.reasons.platform, 10)
  lab.clock.advance(2000)
  t.equal(b.agent.status().demote.reasons.platform, undefined)
  t.match(b.lines.join('\n'), /demote 10->0 reason="no failure to add a VIP for 300s"/)
})

t.test('adding the VIP again clears that demotion at once', async (t) => {
  const lab = new Lab()
  const a = lab.add('a', A, makeConfig('a', [vhidConfig()]))
  a.platform.failing.add('add')
  a.agent.start()
  lab.clock.advance(3001)
  await lab.settle()
  t.equal(a.agent.status().demote.reasons.platform, 10)
  a.platform.failing.delete('add')
  // Alone on the LAN, it stays master: a reload that moves the VIP re-adds it.
  a.agent.reload(makeConfig('a', [vhidConfig({ vips: [{ address: '192.0.2.9', prefix: 24 }] })]))
  lab.clock.advance(3001)
  await lab.settle()
  t.equal(a.agent.status().demote.reasons.platform, undefined)
})

t.test('with an arping that needs no address, the ARP leaves before the VIP is added', async (t) => {
  const lab = new Lab()
  const a = lab.add('a', A, makeConfig('a', [vhidConfig()]))
  a.platform.garpBeforeAddress = true
  a.agent.start()
  await lab.settle()
  lab.clock.advance(3001)
  await lab.settle()
  t.same(a.platform.calls.slice(1, 3), ['garp lan0 192.0.2.1', 'add lan0 192.0.2.1/24'])
})

t.test('a slow down-hook does not hold the VIP removal', async (t) => {
  const { lab, a } = pair({ downscript: '/cf/down.sh' })
  let finishHook: () => void = () => {}
  a.platform.runHook = (script: string, args: readonly string[]) => {
    a.platform.calls.push(`hook ${script} ${args.join(' ')}`)
    return new Promise<void>((r) => (finishHook = r))
  }
  for (const n of lab.nodes.values()) n.agent.start()
  lab.clock.advance(5000)
  control(a, { cmd: 'maint', on: true })
  lab.clock.advance(300)
  await lab.settle()
  t.ok(a.platform.calls.includes('del lan0 192.0.2.1/24'), 'VIP released after the grace time while the hook still runs')
  finishHook()
})


t.test('state sync: loads on promotion, demotes by reason, answers resync; without sync resync is an error', async (t) => {
  const { lab, a, b } = pair()
  const calls: string[] = []
  const fakeStatus = { peerAddress: '198.51.100.2:8242' } as never
  const fakeSync = {
    promoted: async () => void calls.push('promoted'),
    stoppedServing: () => void calls.push('stopped'),
    resync: () => void calls.push('resync'),
    status: () => fakeStatus,
    start: () => {},
    stop: async () => {},
  }
  // The board built without a sync link; this one stands in for SyncRuntime.
  const board = b.agent as unknown as { sync: unknown; desk: { deps: { resync: () => void } } }
  board.sync = fakeSync
  board.desk.deps.resync = () => fakeSync.resync()
  b.agent.agent.attachSync(fakeSync)
  b.agent.demotions.set('sync', 32, 'sync: waiting for the bulk transfer from the peer')
  for (const n of lab.nodes.values()) n.agent.start()
  lab.clock.advance(5000)
  t.same(b.agent.status().demote.reasons, { sync: 32 })
  t.equal(b.agent.status().sync, fakeStatus, 'status carries the sync status')
  t.equal(a.agent.status().sync, null)
  t.same(calls, [], 'not promoted while backup')
  lab.net.cut(EP_A)
  lab.clock.advance(5000)
  t.equal(lab.state('b'), 'MASTER')
  t.same(calls, ['promoted'], 'peer states loaded when the vhid became MASTER')
  const r = control(b, { cmd: 'resync' })
  t.ok(r.ok)
  t.same(calls, ['promoted', 'resync'])
  const none = control(a, { cmd: 'resync' })
  t.same(none, { ok: false, error: 'resync: state sync is not configured (sync.interface, sync.backend)' })
  b.agent.demotions.set('sync', 0, 'sync: bulk transfer done')
  t.same(b.agent.status().demote.reasons, {})
  t.match(b.lines.join('\n'), /demote 32->0 reason="sync: bulk transfer done"/)
  // a, back, preempts (carp.preempt on): b serves nothing any more and says so once.
  lab.net.cut(EP_A, false)
  lab.clock.advance(5000)
  t.equal(lab.state('b'), 'BACKUP')
  t.same(calls, ['promoted', 'resync', 'stopped'], 'the sync hears once that b serves no vhid')
})

t.test('reload: sync, serial, heartbeat and witness settings take effect after a restart, and say so', async (t) => {
  const lab = new Lab()
  const a = lab.add('a', A, makeConfig('a', [vhidConfig()]))
  a.agent.start()
  const next = makeConfig('a', [vhidConfig()])
  next.sync = { ...next.sync, interface: 'sync0', peer: { address: '198.51.100.2', port: 0 }, key: 'k' }
  next.serial = { device: '/dev/ttyUSB0', baud: 115200 }
  next.heartbeat = { intervalMs: 100, timeoutMs: 300 }
  next.witness = { ...next.witness, address: { address: '203.0.113.50', port: 8241 }, key: 'w', leaseMs: 1000 }
  t.same(a.agent.reload(next), [
    'sync.interface changed ( -> sync0): takes effect after a restart',
    'sync.peer changed ((none) -> 198.51.100.2): takes effect after a restart',
    'serial.device changed ( -> /dev/ttyUSB0): takes effect after a restart',
    'serial.baud changed (19200 -> 115200): takes effect after a restart',
    'heartbeat.interval changed (250 ms -> 100 ms): takes effect after a restart',
    'heartbeat.timeout changed (1000 ms -> 300 ms): takes effect after a restart',
    'witness changed ((none) -> 203.0.113.50:8241): takes effect after a restart',
    'witness.lease changed (3000 ms -> 1000 ms): takes effect after a restart',
    'sync.key changed: takes effect after a restart',
    'witness.key changed: takes effect after a restart',
  ])
  t.equal(a.agent.reload(next)?.length, 10, 'the running settings stay until a restart, so a second reload says it again')
  t.equal(a.agent.status().quorum, null, 'nothing was switched on')
})

t.test('review: carpd ctl signs with the file as last accepted, also what waits for a restart; no vhid, no ctl', async (t) => {
  const lab = new Lab()
  const a = lab.add('a', A, makeConfig('a', [vhidConfig()]))
  a.agent.start()
  lab.clock.advance(4000)
  const next = makeConfig('a-renamed', [vhidConfig({ pass: 'new password' })])
  a.agent.reload(next)
  const ask = (config: typeof next) => {
    const c = a.agent.control({ cmd: 'challenge' })
    const nonce = c.ok && 'nonce' in c ? c.nonce : ''
    return a.agent.control({ cmd: 'demote', value: 1, nonce, mac: requestMac(config, nonce, { cmd: 'demote', value: 1 }) })
  }
  t.ok(ask(next).ok, 'the new file signs (the node name waits for a restart)')
  t.notOk(ask(a.config).ok, 'the old one no longer does')
  const lone = new Lab().add('w', A, makeConfig('w', []))
  t.match(lone.agent.control({ cmd: 'maint', on: true }), { ok: false, error: /needs at least one carp\.N block/ })
})

t.test('a failed removal of the VIPs is tried again every second while the vhid is not MASTER, and stops once it works', async (t) => {
  const { lab, a } = pair()
  for (const n of lab.nodes.values()) n.agent.start()
  lab.clock.advance(5000)
  t.equal(lab.state('a'), 'MASTER')
  a.platform.failing.add('del')
  control(a, { cmd: 'maint', on: true })
  lab.clock.advance(1000)
  await lab.settle()
  t.equal(lab.state('a'), 'BACKUP')
  const dels = () => a.platform.calls.filter((c) => c.startsWith('del')).length
  const first = dels()
  t.ok(first >= 1, 'removed once, failed')
  lab.clock.advance(1000)
  await lab.settle()
  t.equal(dels(), first + 1, 'tried again a second later')
  a.platform.failing.delete('del')
  lab.clock.advance(1000)
  await lab.settle()
  const done = dels()
  lab.clock.advance(5000)
  await lab.settle()
  t.equal(dels(), done, 'no more tries once the VIPs are gone')
  t.match(a.lines.join('\n'), /remove VIPs 192\.0\.2\.1 failed: command failed/)
})

t.test('self-repair: a master whose VIP someone removed adds and announces it again; a backup holding the VIP removes it', async (t) => {
  const { lab, a, b } = pair()
  for (const n of [a, b]) n.platform.addresses = async () => new Set(n.platform.held)
  for (const n of lab.nodes.values()) n.agent.start()
  lab.clock.advance(5000)
  await lab.settle()
  t.equal(lab.state('a'), 'MASTER')
  t.ok(a.platform.held.has('192.0.2.1'))
  const before = a.platform.calls.length
  a.platform.held.delete('192.0.2.1') // `ip addr del` by someone else
  lab.clock.advance(REPAIR_CHECK_MS)
  await lab.settle()
  t.same(a.platform.calls.slice(before).filter((c) => !c.startsWith('hook')), ['add lan0 192.0.2.1/24', 'garp lan0 192.0.2.1'], 'added and announced again')
  t.ok(a.platform.held.has('192.0.2.1'))
  t.match(a.lines.join('\n'), /repair vhid=1 192\.0\.2\.1 removed from lan0 by someone else/)
  t.equal(a.agent.status().repairs, 1)
  b.platform.held.add('192.0.2.1') // a VIP left on the backup
  lab.clock.advance(REPAIR_CHECK_MS)
  await lab.settle()
  t.notOk(b.platform.held.has('192.0.2.1'), 'the backup removed it')
  t.match(b.lines.join('\n'), /repair vhid=1 192\.0\.2\.1 on lan0 while BACKUP: removing/)
  t.equal(b.agent.status().repairs, 1)
  const calls = a.platform.calls.length + b.platform.calls.length
  lab.clock.advance(3 * REPAIR_CHECK_MS)
  await lab.settle()
  t.equal(a.platform.calls.length + b.platform.calls.length, calls, 'nothing more to repair: no more calls')
})

t.test('an add that waited behind a slow removal is skipped when the vhid is no longer MASTER at its turn (simulator seed 210772)', async (t) => {
  const { lab, a } = pair()
  for (const n of lab.nodes.values()) n.agent.start()
  lab.clock.advance(5000)
  t.same(lab.masters(), ['a'])
  let finishDel: () => void = () => {}
  a.platform.removeVip = (iface: string, vip: { address: string; prefix: number }) => {
    a.platform.calls.push(`del ${iface} ${vip.address}/${vip.prefix}`)
    return new Promise<void>((r) => (finishDel = () => (a.platform.held.delete(vip.address), r())))
  }
  control(a, { cmd: 'maint', on: true }) // steps down: its removal hangs
  lab.clock.advance(300)
  await lab.settle()
  control(a, { cmd: 'maint', on: false }) // back to MASTER: the add waits behind the removal
  lab.clock.advance(1500)
  t.equal(lab.state('a'), 'MASTER')
  control(a, { cmd: 'maint', on: true }) // and down again before the add's turn
  lab.clock.advance(300)
  await lab.settle()
  t.equal(lab.state('a'), 'BACKUP')
  const adds = () => a.platform.calls.filter((c) => c.startsWith('add ')).length
  const before = adds()
  a.platform.removeVip = (iface: string, vip: { address: string; prefix: number }) => {
    a.platform.calls.push(`del ${iface} ${vip.address}/${vip.prefix}`)
    a.platform.held.delete(vip.address)
    return Promise.resolve()
  }
  finishDel()
  await lab.settle()
  lab.clock.advance(100)
  await lab.settle()
  t.equal(adds(), before, 'the queued add did not run: the vhid had left MASTER')
  t.notOk(a.platform.held.has('192.0.2.1'), 'no VIP on the backup')
})

/** Virtual MACs that record what the agent asks of them. */
function fakeVmacs(calls: string[], repairs: string[] = []) {
  return {
    setUp: async (vhids: readonly { vhid: number; parent: string }[], others: readonly number[] = []) => {
      calls.push(`setUp ${vhids.map((v) => `${v.vhid}@${v.parent}`).join(',')} others ${others.join(',')}`)
      return new Map(vhids.map((v) => [v.vhid, `carp${v.vhid}`]))
    },
    link: async (vhid: number, up: boolean) => void calls.push(`link carp${vhid} ${up ? 'up' : 'down'}`),
    tearDown: async () => void calls.push('tearDown'),
    check: async () => repairs.splice(0),
  }
}

t.test('virtual MAC: VIPs on carpN, brought up first and down first, one advert from it, the rest from the interface; strays on the interface removed', async (t) => {
  const { lab, a, b } = pair()
  const vmac: Record<string, string[]> = { a: [], b: [] }
  const repairs = ['net.ipv4.conf.lan0.arp_ignore was 0: set to 1 again']
  ;(a.platform as unknown as { vmacs: unknown }).vmacs = fakeVmacs(vmac.a!, repairs)
  ;(b.platform as unknown as { vmacs: unknown }).vmacs = fakeVmacs(vmac.b!)
  // The repair check runs when the platform can read addresses: lan0 has a stray VIP.
  let stray = false
  a.platform.addresses = async (iface) => (iface === 'lan0' ? new Set(stray ? ['192.0.2.2', '192.0.2.1'] : ['192.0.2.2']) : new Set(a.platform.held))
  await Promise.all([...lab.nodes.values()].map((n) => n.agent.start()))
  lab.clock.advance(5000)
  await lab.settle()
  t.same(lab.masters(), ['a'])
  t.same(vmac.a!.slice(0, 3), ['setUp 1@lan0 others ', 'link carp1 down', 'link carp1 up'], 'down with the start\'s clean-up, up to take over')
  t.same(a.platform.calls.filter((c) => !c.startsWith('del')).slice(0, 2), ['add carp1 192.0.2.1/24', 'garp carp1 192.0.2.1'], 'VIP and ARP on the macvlan, after it is up')
  t.same(b.platform.calls, ['del carp1 192.0.2.1/24'], 'the backup only clears a stale VIP, from its macvlan')
  const fromA = lab.net.log.filter((s) => s.from.address === A)
  t.same(fromA.filter((s) => s.iface === 'carp1').length, 1, 'one advert from the virtual MAC (the switch learns its port)')
  t.ok(fromA.filter((s) => s.iface === 'lan0').length >= 2, 'every other one from the interface')
  t.equal(a.agent.status().vhids[0]!.vmac, 'carp1 00:00:5e:00:01:01')
  t.match(a.agent.status().vhids[0], { interface: 'lan0' })
  // An advert whose source is the VIP (that one advert) is accepted.
  const advert = fromA.find((s) => s.iface === 'carp1')!.payload
  const before = b.agent.status().vhids[0]!.received
  lab.net.inject({ address: '192.0.2.1', port: CARP_PORT }, { address: '224.0.0.18', port: CARP_PORT }, advert)
  lab.clock.advance(5)
  t.equal(b.agent.status().drops.unknownSender ?? 0, 0, 'a VIP source is no unknown sender')
  t.ok(b.agent.status().vhids[0]!.received >= before, 'heard')
  // Self-repair: the platform's repairs are counted; a VIP on lan0 itself is removed from there.
  stray = true
  lab.clock.advance(REPAIR_CHECK_MS + 10)
  await lab.settle()
  lab.clock.advance(10)
  await lab.settle()
  t.match(a.lines.join('\n'), /repair net\.ipv4\.conf\.lan0\.arp_ignore was 0: set to 1 again/)
  t.match(a.lines.join('\n'), /repair vhid=1 192\.0\.2\.1 on lan0, not on its virtual MAC carp1: removing/)
  t.ok(a.platform.calls.includes('del lan0 192.0.2.1/24'), 'removed from lan0')
  t.ok(a.agent.status().repairs >= 2)
  // Stop: the bow-out leaves from the interface, the macvlan goes down before the VIP is removed.
  a.platform.calls.length = 0
  const sentBefore = lab.net.log.length
  await a.agent.stop()
  t.same(vmac.a!.slice(-2), ['link carp1 down', 'tearDown'])
  t.same(a.platform.calls, ['del carp1 192.0.2.1/24'])
  const bow = lab.net.log.slice(sentBefore).filter((s) => s.from.address === A)
  t.same(bow.map((s) => s.iface), ['lan0'], 'the bow-out from the interface')
})

t.test('virtual MAC: a reload that restarts a vhid leaves it on gratuitous ARP until a restart; a vhid without one gets its leftover cleaned', async (t) => {
  const lab = new Lab()
  const a = lab.add('a', A, makeConfig('a', [vhidConfig(), vhidConfig({ vhid: 2, vips: [{ address: '192.0.2.50', prefix: 24 }], vmac: false })]))
  const calls: string[] = []
  ;(a.platform as unknown as { vmacs: unknown }).vmacs = fakeVmacs(calls)
  await a.agent.start()
  t.same(calls.slice(0, 1), ['setUp 1@lan0 others 2'])
  lab.clock.advance(5000)
  await lab.settle()
  t.same(a.platform.calls.filter((c) => c.startsWith('add')).sort(), ['add carp1 192.0.2.1/24', 'add lan0 192.0.2.50/24'], 'vhid 2 keeps its VIP on lan0')
  const notes = a.agent.reload(makeConfig('a', [vhidConfig({ vips: [{ address: '192.0.2.9', prefix: 24 }] }), vhidConfig({ vhid: 2, vips: [{ address: '192.0.2.50', prefix: 24 }] })]))
  t.ok(notes?.includes('vhid 1: virtual MAC off until a restart'), (notes ?? []).join('; '))
  t.ok(notes?.includes('vhid 2: carp.2.vmac takes effect after a restart'))
  lab.clock.advance(5000)
  await lab.settle()
  t.ok(a.platform.calls.includes('add lan0 192.0.2.9/24'), 'the new VIP on lan0')
  t.notOk(a.agent.status().vhids[0]!.vmac)
})

t.test('IPv6: a vhid with only IPv6 VIPs advertises to ff02::12, hears link-local sources only, and holds its VIPs', async (t) => {
  const lab = new Lab()
  const vips = [{ address: '2001:db8::1', prefix: 64 }]
  const a = lab.add('a', 'fe80::a', makeConfig('a', [vhidConfig({ vips })]))
  const b = lab.add('b', 'fe80::b', makeConfig('b', [vhidConfig({ vips, advskew: 100 })]))
  a.agent.start()
  b.agent.start()
  runChecked(t, lab, 10_000)
  t.same(lab.masters(), ['a'])
  t.ok(lab.net.log.length > 5 && lab.net.log.every((p) => p.to.address === 'ff02::12'), 'every advert to ff02::12')
  await lab.settle()
  t.ok(['add lan0 2001:db8::1/64', 'garp lan0 2001:db8::1'].every((c) => a.platform.calls.includes(c)), 'the VIP goes on and is announced')
  t.match(a.agent.status().vhids[0], { transport: 'multicast ff02::12' })
  const adv = lab.net.log.filter((p) => p.from.address === 'fe80::a').at(-1)!
  for (const from of ['2001:db8::99', '192.0.2.9']) lab.net.inject({ address: from, port: CARP_PORT }, { address: 'ff02::12', port: CARP_PORT }, adv.payload)
  lab.clock.advance(2)
  t.equal(b.agent.status().drops.unknownSender, 2, 'a global source that is no VIP, and an IPv4 source, are refused')
  // fe80::/64 is on every link: an advert that came in on another interface is not the peer's.
  b.agent.agent.receive(adv.payload, { address: 'fe80::a', port: CARP_PORT }, 'wan0')
  t.equal(b.agent.status().drops.unknownSender, 3, 'a link-local source that came in on another interface is refused')
  b.agent.agent.receive(adv.payload, { address: 'fe80::a', port: CARP_PORT }, 'lan0')
  t.equal(b.agent.status().drops.unknownSender, 3, "one that came in on the vhid's interface is not")
  // A unicast link-local peer is on the vhid's link too.
  const u = new Lab()
  const peerCfg = (peer: string) => makeConfig('x', [vhidConfig({ vips, peers: [{ address: peer, port: 0 }] })])
  const ua = u.add('a', 'fe80::a', peerCfg('fe80::b'))
  const ub = u.add('b', 'fe80::b', peerCfg('fe80::a'))
  ua.agent.start()
  ub.agent.start()
  u.clock.advance(5000)
  const uAdv = u.net.log.filter((p) => p.from.address === 'fe80::a').at(-1)!
  const refused = ub.agent.status().drops.unknownSender
  ub.agent.agent.receive(uAdv.payload, { address: 'fe80::a', port: CARP_PORT }, 'wan0')
  t.equal(ub.agent.status().drops.unknownSender, refused + 1, 'a unicast link-local peer heard on another interface is refused')
  ub.agent.agent.receive(uAdv.payload, { address: 'fe80::a', port: CARP_PORT }, 'lan0')
  t.equal(ub.agent.status().drops.unknownSender, refused + 1, "and heard on the vhid's interface, it is not")
  // The master's cable is pulled: the backup takes over.
  lab.net.cut({ address: 'fe80::a', port: CARP_PORT })
  lab.clock.advance(5000)
  t.equal(lab.state('b'), 'MASTER')
})

t.test('IPv6: unicast IPv6 peers; a vhid with IPv4 and IPv6 VIPs advertises over IPv4 and announces both', async (t) => {
  const lab = new Lab()
  const vips = [{ address: '2001:db8::1', prefix: 64 }]
  const a = lab.add('a', '2001:db8::a', makeConfig('a', [vhidConfig({ vips, peers: [{ address: '2001:db8::b', port: 0 }] })]))
  lab.add('b', '2001:db8::b', makeConfig('b', [vhidConfig({ vips, advskew: 100, peers: [{ address: '2001:db8::a', port: 0 }] })]))
  for (const n of lab.nodes.values()) n.agent.start()
  runChecked(t, lab, 10_000)
  t.same(lab.masters(), ['a'])
  t.ok(lab.net.log.every((p) => p.to.address === '2001:db8::b' || p.to.address === '2001:db8::a'), 'unicast to the IPv6 peer')
  t.match(a.agent.status().vhids[0], { transport: 'unicast 2001:db8::b' })

  const mixed = new Lab()
  const both = [{ address: '192.0.2.1', prefix: 24 }, { address: '2001:db8::1', prefix: 64 }]
  const m = mixed.add('a', A, makeConfig('a', [vhidConfig({ vips: both })]))
  mixed.add('b', B, makeConfig('b', [vhidConfig({ vips: both, advskew: 100 })]))
  for (const n of mixed.nodes.values()) n.agent.start()
  runChecked(t, mixed, 10_000)
  t.same(mixed.masters(), ['a'])
  t.ok(mixed.net.log.every((p) => p.to.address === '224.0.0.18'), 'adverts over IPv4')
  await mixed.settle()
  t.ok(['add lan0 192.0.2.1/24', 'add lan0 2001:db8::1/64', 'garp lan0 192.0.2.1', 'garp lan0 2001:db8::1'].every((c) => m.platform.calls.includes(c)), `both VIPs on and announced: ${m.platform.calls.join(', ')}`)
})

t.test('IPv6: a reload cannot add adverts over IPv6 to a board started without an IPv6 socket; a unicast advert from the vhid\'s own VIP is heard', async (t) => {
  const lab = new Lab()
  const a = lab.add('a', A, makeConfig('a', [vhidConfig()]))
  a.agent.start()
  lab.clock.advance(4000)
  const v6 = vhidConfig({ vhid: 2, vips: [{ address: '2001:db8::1', prefix: 64 }], peers: [{ address: '2001:db8::b', port: 0 }] })
  const notes = a.agent.reload(makeConfig('a', [vhidConfig(), v6]))
  t.same(notes, ['vhid 2: adverts over IPv6 take effect after a restart'])
  t.same(a.agent.status().vhids.map((v) => v.vhid), [1], 'vhid 2 waits for a restart')

  const u = new Lab()
  const vips = [{ address: '2001:db8::3', prefix: 64 }]
  u.add('a', '2001:db8::1', makeConfig('a', [vhidConfig({ vips, peers: [{ address: '2001:db8::2', port: 0 }] })]))
  const b = u.add('b', '2001:db8::2', makeConfig('b', [vhidConfig({ vips, advskew: 100, peers: [{ address: '2001:db8::1', port: 0 }] })]))
  for (const n of u.nodes.values()) n.agent.start()
  u.clock.advance(10_000)
  t.same(u.masters(), ['a'])
  const adv = u.net.log.filter((p) => p.from.address === '2001:db8::1').at(-1)!
  // The kernel picked the VIP as the source (longest prefix match with the peer).
  u.net.inject({ address: '2001:db8::3', port: CARP_PORT }, { address: '2001:db8::2', port: CARP_PORT }, adv.payload)
  u.net.inject({ address: '2001:db8::3', port: 40000 }, { address: '2001:db8::2', port: CARP_PORT }, adv.payload)
  u.clock.advance(2)
  t.equal(b.agent.status().drops.unknownSender, 1, 'from the VIP at the CARP port: heard (a replay, here); from another port: refused')
  t.match(b.agent.status().vhids[0], { master: { from: '[2001:db8::1]:8240' } }, 'an IPv6 sender shows as [address]:port')
})
