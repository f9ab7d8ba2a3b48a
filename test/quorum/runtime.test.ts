import t, { type Test } from 'tap'
import { QuorumPair } from '../helpers/quorum-pair.js'

const VIP = '192.0.2.1/24'

t.test('witness mode: one master with 2 of 3 votes, the other backup', async (t) => {
  const p = new QuorumPair()
  p.start()
  await p.run(6000)
  t.same(p.holders(), ['fw-a'])
  t.equal(p.state('fw-a'), 'MASTER')
  t.equal(p.state('fw-b'), 'BACKUP')
  t.equal(p.maxDualMs, 0)
  const q = p.node('fw-a').agent.status().quorum!
  t.equal(q.mode, 'witness')
  t.equal(q.vhids[0]!.held, true)
  t.match(q.vhids[0]!.why, /votes: self\+peer/)
  const paths = Object.fromEntries(p.node('fw-b').agent.status().quorum!.paths.map((x) => [x.path, x.state]))
  t.same(paths, { lan: 'alive', sync: 'alive', serial: 'alive' })
  t.ok(p.node('fw-a').lines.some((l) => /BACKUP->MASTER reason=".*votes: self\+/.test(l)), 'the console explains the takeover')
})

t.test('witness mode: LAN switch down is a LAN fault, the master keeps the VIP, no flap', async (t) => {
  const p = new QuorumPair()
  p.start()
  await p.run(6000)
  p.cut('fw-a', 'lan')
  p.cut('fw-b', 'lan')
  await p.run(20_000)
  t.same(p.holders(), ['fw-a'])
  t.equal(p.maxDualMs, 0)
  t.equal(p.state('fw-b'), 'BACKUP')
  t.ok(p.node('fw-b').lines.some((l) => /wants MASTER: no advert/.test(l)), 'fw-b says why it wants MASTER')
  t.ok(p.node('fw-a').lines.some((l) => /LAN fault/.test(l)), 'fw-a explains the LAN fault')
  const transitions = p.node('fw-a').agent.status().vhids[0]!.transitions
  p.cut('fw-a', 'lan', false)
  p.cut('fw-b', 'lan', false)
  await p.run(3000)
  t.equal(p.node('fw-a').agent.status().vhids[0]!.transitions, transitions, 'no flap when the LAN comes back')
  t.ok(p.node('fw-a').lines.some((l) => /healed: .*announcing the VIPs again/.test(l)), 'gratuitous ARP again when the LAN heals')
  t.same(p.holders(), ['fw-a'])
})

t.test('witness mode: master power-off, the backup takes over once the lease is surely over', async (t) => {
  const p = new QuorumPair()
  p.start()
  await p.run(6000)
  p.powerOff('fw-a')
  const cut = p.clock.now()
  let tookOver = -1
  for (let i = 0; i < 100 && tookOver < 0; i++) {
    await p.run(100)
    if (p.node('fw-b').holds.has(VIP)) tookOver = p.clock.now() - cut
  }
  t.ok(tookOver > 0 && tookOver <= 3000 * 1.01 + 250 + 300, `fw-b holds the VIP ${tookOver} ms after the cut`)
  // Cut off from everything, fw-a still runs here: it must have let go first.
  t.equal(p.maxDualMs, 0, 'never both')
  t.ok(p.node('fw-a').lines.some((l) => /MASTER->BACKUP reason="lost quorum/.test(l)), 'the cut-off master drops the VIP when its lease ends')
})

/** Starts a pair and lets fw-a become master. */
async function steady(opts: ConstructorParameters<typeof QuorumPair>[0] = {}): Promise<QuorumPair> {
  const p = new QuorumPair(opts)
  p.start()
  await p.run(6000)
  if (p.holders().join() !== 'fw-a') throw new Error(`fw-a should hold the VIP, holders: ${p.holders().join()}`)
  return p
}

/** Runs `ms` and checks the pair: never two holders, and `holder` at the end. */
async function expectHolder(t: Test, p: QuorumPair, ms: number, holder: string | null, what: string): Promise<void> {
  await p.run(ms)
  t.equal(p.maxDualMs, 0, `${what}: never two holders`)
  t.same(p.holders(), holder ? [holder] : [], `${what}: ${holder ?? 'nobody'} holds the VIP`)
}

t.test('witness mode: single failures keep exactly one holder', async (t) => {
  const cases: [string, (p: QuorumPair) => void, string | null][] = [
    ['sync link and serial line cut', (p) => (p.cut('fw-a', 'sync'), p.cut('fw-a', 'serial')), 'fw-a'],
    ['sync link cut', (p) => p.cut('fw-b', 'sync'), 'fw-a'],
    ['serial line cut', (p) => p.cut('fw-b', 'serial'), 'fw-a'],
    ['witness down', (p) => (p.witnessDown = true), 'fw-a'],
    ['path to the witness cut (master)', (p) => p.cut('fw-a', 'witness'), 'fw-a'],
    ['master LAN cut, link stays up', (p) => p.cut('fw-a', 'lan'), 'fw-a'],
    ['witness restart', (p) => p.startWitness(), 'fw-a'],
  ]
  for (const [what, fail, holder] of cases) {
    const p = await steady()
    const before = p.node('fw-a').agent.status().vhids[0]!.transitions
    fail(p)
    await expectHolder(t, p, 20_000, holder, what)
    t.equal(p.node('fw-a').agent.status().vhids[0]!.transitions, before, `${what}: no flap`)
  }
})

t.test('witness mode: master LAN link down (carrier) hands over', async (t) => {
  const p = await steady()
  p.node('fw-a').platform.linksDown.add('lan0')
  // fw-a goes INIT (no adverts), so fw-b waits its master-down interval, then fw-a defers.
  await expectHolder(t, p, 4500, 'fw-b', 'link down')
  t.ok(p.node('fw-b').lines.some((l) => /BACKUP->MASTER reason=".*votes: self\+peer/.test(l)), 'fw-b holds with the peer deferring to it')
})

t.test('witness mode: planned switchover (maint on) moves the VIP without overlap', async (t) => {
  const p = await steady()
  const { requestMac } = await import('../../src/control/protocol.js')
  const a = p.node('fw-a')
  const challenge = a.agent.control({ cmd: 'challenge' })
  const nonce = challenge.ok && 'nonce' in challenge ? challenge.nonce : ''
  a.agent.control({ cmd: 'maint', on: true, nonce, mac: requestMac((a.agent as unknown as { config: never }).config, nonce, { cmd: 'maint', on: true }) })
  await expectHolder(t, p, 3000, 'fw-b', 'maint on')
  t.ok(a.lines.some((l) => /lost quorum: yielding: peer .* hears us and claims/.test(l)), 'fw-a says it yields')
})

t.test('witness mode: master hang (SIGSTOP) longer than the lease, then SIGCONT', async (t) => {
  const p = await steady({ preempt: false })
  p.freeze('fw-a')
  await p.run(8000)
  t.ok(p.node('fw-b').holds.size > 0, 'fw-b took over while fw-a was frozen')
  // fw-a still "holds" the VIP in its own view while frozen: the kernel keeps the
  // address, but a stopped process answers nothing; what matters is what happens on SIGCONT.
  const dualBefore = p.dualMs
  const thawAt = p.clock.now()
  p.thaw('fw-a')
  await p.run(2000)
  t.same(p.holders(), ['fw-b'], 'the stale master yields at once')
  t.equal(p.dualMs - dualBefore, 0, 'no dual holding after SIGCONT')
  const thawed = p.node('fw-a').lines.filter((l) => Number(l.split(' ')[0]) >= 14)
  t.match(thawed.find((l) => / carp /.test(l)), /MASTER->BACKUP reason="lost quorum/, 'the first thing fw-a does on SIGCONT is let go')
  const advertsAfter = p.net.log.filter((s) => s.atMs >= thawAt && s.from.address === '192.0.2.11' && s.from.port === 8240)
  t.equal(advertsAfter.length, 0, 'the stale master sends no advert after SIGCONT')
})

t.test('witness mode: double failures', async (t) => {
  const cases: [string, (p: QuorumPair) => void, string | null][] = [
    ['LAN switch and witness down', (p) => (p.cut('fw-a', 'lan'), p.cut('fw-b', 'lan'), (p.witnessDown = true)), 'fw-a'],
    ['LAN switch, sync link and serial line down', (p) => { for (const x of ['lan', 'sync', 'serial'] as const) p.cut('fw-a', x) }, 'fw-a'],
    ['master cut off from the peer paths and the witness, LAN up', (p) => { for (const x of ['sync', 'serial', 'witness'] as const) p.cut('fw-a', x) }, 'fw-b'],
  ]
  for (const [what, fail, holder] of cases) {
    const p = await steady()
    fail(p)
    await expectHolder(t, p, 20_000, holder, what)
  }
})

t.test('two-node mode: a LAN fault is not a dead peer; power-off is', async (t) => {
  const p = await steady({ witness: false })
  t.equal(p.node('fw-a').agent.status().quorum!.mode, 'two-node')
  p.cut('fw-a', 'lan')
  p.cut('fw-b', 'lan')
  await expectHolder(t, p, 10_000, 'fw-a', 'LAN switch down')
  t.ok(p.node('fw-b').agent.status().quorum!.vhids[0]!.why.startsWith('LAN fault'), 'fw-b status says LAN fault')
  p.cut('fw-a', 'lan', false)
  p.cut('fw-b', 'lan', false)
  await p.run(2000)
  p.powerOff('fw-a')
  const cut = p.clock.now()
  let tookOverMs = -1
  for (let i = 0; i < 60 && tookOverMs < 0; i++) {
    await p.run(100)
    if (p.node('fw-b').holds.size > 0) tookOverMs = p.clock.now() - cut
  }
  // fw-b's master-down interval is 3 x 1 s + 100/256 s: no extra wait in two-node mode.
  t.ok(tookOverMs > 3000 && tookOverMs <= 3400 + 200, `fw-b took over ${tookOverMs} ms after fw-a went silent on every path`)
  t.ok(p.node('fw-b').lines.some((l) => /BACKUP->MASTER reason="no advert .*two-node mode/.test(l)), 'the console says why')
})

t.test('two-node mode: both MASTER after a full partition, the lower-ranked yields when a path heals', async (t) => {
  const p = await steady({ witness: false })
  for (const x of ['lan', 'sync', 'serial'] as const) p.cut('fw-a', x)
  await p.run(6000)
  t.equal(p.holders().length, 2, 'a full partition without a witness: both serve (the witness is what prevents this)')
  p.cut('fw-a', 'serial', false)
  p.resetDual()
  await p.run(3000)
  t.equal(p.holders().length, 1, 'one yields as soon as the serial line is back')
  t.ok(p.maxDualMs <= 1500, `dual holding ended ${p.maxDualMs} ms after the serial line came back`)
})

t.test('status shows the quorum: mode, paths, peer, votes, serial counters', async (t) => {
  const { renderStatus } = await import('../../src/control/render.js')
  const p = await steady()
  const text = renderStatus(p.node('fw-a').agent.status())
  t.match(text, 'quorum: witness 192.0.2.50:8241 lease 3000 ms (2 of 3 votes to hold MASTER)')
  t.match(text, /peer paths: lan (alive|dead|unknown) .*, sync alive \(heard .* ago, timeout 1000 ms\), serial alive/)
  t.match(text, /peer fw-b: vhids 1:B demote 0, last heartbeat/)
  t.match(text, /vhid 1: may hold MASTER \(votes: self\+peer\+witness\); peer lease \d+ ms, witness lease \d+ ms/)
  t.match(text, /requests \d+, grants peer \d+ witness \d+, denials peer 0 witness \d+/)
  t.match(text, /serial \/dev\/mem open: frames \d+, garbage 0, bad CRC 0/)
  t.match(text, /heartbeats sent \d+, send errors 0; quorum drops: /)
  const b = renderStatus(p.node('fw-b').agent.status())
  t.match(b, /vhid 1: may not hold MASTER \(not a candidate\); deferring to the peer for \d+ ms/)
  const two = await steady({ witness: false, serial: false })
  const tt = renderStatus(two.node('fw-b').agent.status())
  t.match(tt, 'quorum: two-node mode (no witness): CARP plus the peer paths')
  t.notMatch(tt, /requests \d+/)
  t.notMatch(tt, /serial /)
})

t.test('the fence follows the lease of a master, and its expiry takes the vhid down', async (t) => {
  const p = await steady({ fence: true })
  const a = p.node('fw-a')
  const holds = a.fence.filter((l) => l.startsWith('hold 1 '))
  t.ok(holds.length >= 4, `the fence hears of every renewal (${holds.length} holds)`)
  for (const h of holds) {
    const at = Number(h.split(' ')[2])
    const end = a.quorum.leaseEndMs(1)
    t.ok(at <= end - 50 && at > p.clock.now() - 3000, `hold until ${at}: 50 ms before a lease end (the last ends at ${end})`)
  }
  t.same(p.node('fw-b').fence, [], 'a backup guards nothing')
  a.agent.agent.fenceExpired(1)
  t.equal(p.state('fw-a'), 'BACKUP')
  t.ok(a.lines.some((l) => /MASTER->BACKUP reason="lost quorum: the fence removed the VIPs: no lease renewal in time"/.test(l)))
  a.agent.agent.fenceExpired(1) // a late second report changes nothing
  a.agent.agent.fenceExpired(7) // nor one for a vhid we do not run
  await p.run(6000)
  t.equal(p.maxDualMs, 0)
  t.equal(p.holders().length, 1, 'one of them serves again')
  const master = p.holders()[0]!
  const other = master === 'fw-a' ? 'fw-b' : 'fw-a'
  t.match(p.node(other).fence.at(-1) ?? 'drop 1', /^drop 1$/, 'the board that let go lifted its hold')
})

t.test('multi-WAN health travels in the heartbeats to the peer', async (t) => {
  const p = await steady()
  p.node('fw-a').quorum.setWans(() => [{ wan: 1, state: 'offline' }, { wan: 2, state: 'degraded' }])
  await p.run(600)
  t.same(p.node('fw-b').quorum.peerWans(), [{ wan: 1, state: 'D' }, { wan: 2, state: 'G' }])
  t.equal(p.node('fw-a').quorum.peerWans(), null, 'fw-b has no WANs: nothing in its heartbeats')
  for (const x of ['sync', 'serial'] as const) p.cut('fw-a', x)
  await p.run(1500)
  t.equal(p.node('fw-b').quorum.peerWans(), null, 'stale once the peer paths are silent')
})

t.test('power-on with two vhids: the preferred board ends up holding both, whatever the gap between the starts', async (t) => {
  // The board lab runs two vhids (LAN and WAN); the simulator runs one.
  for (const witness of [true, false]) {
    for (let gapMs = 0; gapMs <= 6000; gapMs += 750) {
      const p = new QuorumPair({ witness, preempt: false, vhids: 2 })
      void p.node('fw-b').agent.start()
      await p.run(gapMs)
      void p.node('fw-a').agent.start()
      await p.run(25_000)
      t.same([1, 2].map((v) => `${p.state('fw-a', v)}/${p.state('fw-b', v)}`), ['MASTER/BACKUP', 'MASTER/BACKUP'], `${witness ? 'witness' : 'two-node'} mode, fw-a up ${gapMs} ms after fw-b`)
      const takes = [1, 2].map((v) => p.node('fw-a').lines.filter((l) => l.includes(`vhid=${v} BACKUP->MASTER`)).length)
      t.same(takes, [1, 1], 'fw-a took each vhid once')
    }
  }
})

t.test('power-on: the preferred board, up 20 s after the other, takes the vhid once, preempt off', async (t) => {
  for (const witness of [true, false]) {
    const p = new QuorumPair({ witness, preempt: false })
    void p.node('fw-b').agent.start()
    await p.run(20_000)
    t.same(p.holders(), ['fw-b'], 'alone, the other board takes the vhid')
    t.match(p.node('fw-b').agent.status().quorum!.peer, null, 'it has never heard the preferred board')
    void p.node('fw-a').agent.start()
    await p.run(12_000)
    t.same(p.holders(), ['fw-a'], `${witness ? 'witness' : 'two-node'} mode: the preferred board holds it`)
    t.equal(p.state('fw-b'), 'BACKUP')
    if (witness) t.equal(p.maxDualMs, 0, 'never both')
    else t.ok(p.maxDualMs <= 300, `two-node mode: both held it ${p.maxDualMs} ms, the handover's grace`)
    t.ok(p.node('fw-a').lines.some((l) => /BACKUP->MASTER reason="power-on: ours .* which took the vhid at its start before this board was up/.test(l)), 'the console says why')
    // Once: the preferred board then drops off every path (in witness mode its lease
    // ends, as at a power-off) and comes back; the other board keeps the vhid.
    if (!witness) continue
    p.powerOff('fw-a')
    await p.run(10_000)
    t.same(p.holders(), ['fw-b'])
    for (const path of ['lan', 'sync', 'serial', 'witness'] as const) p.cut('fw-a', path, false)
    await p.run(15_000)
    t.same(p.holders(), ['fw-b'], 'a master that saw the peer MASTER before is no boot master: no second handover')
  }
})
