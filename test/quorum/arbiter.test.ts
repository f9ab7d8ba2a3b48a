import t from 'tap'
import type { VhidView } from '../../src/carp/vhid.js'
import { Arbiter, type ArbiterAction } from '../../src/quorum/arbiter.js'
import { BOOT_RACE_MS, FLAG_HEARS_MASTER } from '../../src/quorum/constants.js'
import type { VoteMessage } from '../../src/wire/vote.js'

const SELF = 0x0a0a0a0a
const PEER = 0x0b0b0b0b
const WIT = 0x0c0c0c0c

const view = (over: Partial<VhidView> = {}): VhidView => ({ state: 'BACKUP', claiming: false, hearsMaster: false, releasing: false, demote: 0, advbase: 1, advskew: 0, ...over })

/** An arbiter whose vhid 1 was created long ago: its restart silence is over at 0. */
function arbiter(witness = true): Arbiter {
  const a = fresh(witness)
  a.view(1, view(), -10_000)
  return a
}

function fresh(witness = true): Arbiter {
  let n = 0
  return new Arbiter({
    node: 'fw-a',
    selfId: SELF,
    epoch: 100,
    leaseMs: 1000,
    witness,
    pathTimeouts: { lan: 1000, sync: 300, serial: 300 },
    random: (bytes) => Buffer.alloc(bytes, ++n),
    startMs: -10_000,
    powerOn: true,
  })
}


const request = (over: Partial<Extract<VoteMessage, { kind: 'request' }>> = {}): VoteMessage => ({
  kind: 'request', sender: PEER, epoch: 50, seq: 1, vhid: 1, nonce: Buffer.alloc(8, 0xee), leaseMs: 1000, demote: 0, advbase: 1, advskew: 100, flags: 0, ...over,
})

const sent = (actions: ArbiterAction[]) => actions.filter((a) => a.type === 'toPeer' || a.type === 'toWitness').map((a) => (a as { msg: VoteMessage }).msg)
const votes = (actions: ArbiterAction[]) => actions.filter((a) => a.type === 'votes')

t.test('a candidate asks both voters and holds with one grant, counted from the send', async (t) => {
  const a = arbiter()
  const asks = sent(a.view(1, view({ claiming: true }), 0))
  t.equal(asks.length, 2)
  const [toPeer, toWitness] = asks as Extract<VoteMessage, { kind: 'request' }>[]
  t.equal(toPeer!.flags, 0)
  const grant: VoteMessage = { kind: 'grant', sender: WIT, epoch: 1, seq: 1, vhid: 1, nonce: toWitness!.nonce, holder: SELF, leaseMs: 1000 }
  t.same(votes(a.receive(grant, 'witness', null, 300)).map((v) => (v as { held: boolean }).held), [true])
  // A copy of the same grant (the other path) or a replay of it changes nothing.
  t.same(a.receive(grant, 'witness', null, 310), [])
  t.equal(a.status(310).drops.unmatched, 0)
  a.receive({ ...grant, nonce: Buffer.alloc(8, 0x77) }, 'witness', null, 320)
  t.equal(a.status(320).drops.unmatched, 1, 'an answer to nothing we asked is counted')
  // The lease runs from the send (0), not the answer (300).
  const expired = votes(a.tick(1000))
  t.same(expired.map((v) => (v as { held: boolean }).held), [false])
})

t.test('answers from the wrong voter, for another holder, or unasked are dropped and counted', async (t) => {
  const a = arbiter()
  const [toPeer, toWitness] = sent(a.view(1, view({ claiming: true }), 0)) as Extract<VoteMessage, { kind: 'request' }>[]
  a.receive({ kind: 'grant', sender: PEER, epoch: 50, seq: 2, vhid: 1, nonce: toWitness!.nonce, holder: SELF, leaseMs: 1000 }, 'peer', 'sync', 5)
  a.receive({ kind: 'grant', sender: WIT, epoch: 1, seq: 1, vhid: 1, nonce: toWitness!.nonce, holder: PEER, leaseMs: 1000 }, 'witness', null, 5)
  a.receive({ kind: 'grant', sender: PEER, epoch: 50, seq: 3, vhid: 9, nonce: toPeer!.nonce, holder: SELF, leaseMs: 1000 }, 'peer', 'sync', 5)
  a.receive({ kind: 'heartbeat', sender: PEER, epoch: 50, seq: 4, text: 'x' }, 'peer', 'sync', 5)
  a.receive(request(), 'witness', null, 5)
  const d = a.status(5).drops
  t.same(d, { replay: 0, unmatched: 1, notForUs: 1, wrongVoter: 1, unexpectedKind: 2, ownHeartbeat: 0, heartbeatReplay: 0 })
  t.equal(a.status(5).vhids[0]!.held, false)
})

t.test('the peer vote: granted when idle, refused by a master, a master yields to a candidate that hears it', async (t) => {
  const a = arbiter()
  a.view(1, view(), 0)
  const idle = sent(a.receive(request(), 'peer', 'serial', 10))
  t.equal(idle[0]!.kind, 'grant')
  t.equal(a.status(10).vhids[0]!.deferringToPeerMs, 1260, 'the lease, plus drift and margin as the witness keeps')
  // A replayed request gets nothing.
  t.same(a.receive(request(), 'peer', 'serial', 20), [])
  t.equal(a.status(20).drops.replay, 1)
  // Its copy on the other path gets the same answer there, and changes nothing.
  const copy = a.receive(request(), 'peer', 'sync', 21)
  t.same(copy, [{ type: 'toPeer', msg: idle[0], path: 'sync' }])
  t.same(a.receive(request(), 'peer', 'sync', 22), [], 'a second copy on that path is a replay')
  // While the deferral runs, our own claim is held back.
  a.view(1, view({ claiming: true }), 30)
  t.match(a.status(30).vhids[0]!.why, /deferring to peer 0b0b0b0b/)

  const m = arbiter()
  const [, w] = sent(m.view(1, view({ claiming: true }), 0)) as Extract<VoteMessage, { kind: 'request' }>[]
  m.receive({ kind: 'grant', sender: WIT, epoch: 1, seq: 1, vhid: 1, nonce: w!.nonce, holder: SELF, leaseMs: 1000 }, 'witness', null, 1)
  m.view(1, view({ state: 'MASTER' }), 2)
  const refused = m.receive(request({ seq: 5 }), 'peer', 'sync', 3)
  t.equal(sent(refused)[0]!.kind, 'deny', 'a master refuses a candidate that cannot hear it (LAN fault)')
  t.ok(refused.some((x) => x.type === 'log' && /LAN fault/.test(x.message)))
  const yielded = m.receive(request({ seq: 6, flags: FLAG_HEARS_MASTER }), 'peer', 'sync', 4)
  t.same(yielded.map((x) => x.type), ['votes', 'toPeer'], 'steps down')
  t.match(sent(yielded)[0], { kind: 'deny', leaseMs: 0 }, '"ask again at once": the grant waits until our VIPs are gone')
  m.view(1, view(), 5)
  t.equal(sent(m.receive(request({ seq: 7, flags: FLAG_HEARS_MASTER }), 'peer', 'sync', 25))[0]!.kind, 'grant', 'the next ask is granted')
})

t.test('two candidates: the lower-ranked one defers', async (t) => {
  const a = arbiter()
  a.view(1, view({ claiming: true, advskew: 0 }), 0)
  t.equal(sent(a.receive(request({ advskew: 100 }), 'peer', 'sync', 1))[0]!.kind, 'deny')
  t.equal(sent(a.receive(request({ seq: 2, advskew: 0, epoch: 50, demote: 0 }), 'peer', 'sync', 2))[0]!.kind, 'deny', 'equal priority: the higher epoch (ours, 100) wins')
  t.equal(sent(a.receive(request({ seq: 3, demote: 0, advskew: 0, advbase: 0 }), 'peer', 'sync', 3))[0]!.kind, 'grant', 'a better candidate gets our vote')
})

t.test('peer paths: hysteresis and timeouts', async (t) => {
  const a = arbiter(false)
  const hb = (seq: number) => ({ node: 'fw-b', epoch: 7, seq, demote: 0, vhids: [{ vhid: 1, state: 'M' as const }] })
  t.same(a.heartbeat(hb(1), 'serial', 0), [], 'one frame is not enough')
  t.match(a.heartbeat(hb(2), 'serial', 100), [{ type: 'log', message: 'peer path serial alive' }])
  t.equal(a.peerSays(1, 150), 'M')
  // An older heartbeat arriving late on the slower path does not replace the newer one.
  a.heartbeat({ ...hb(1), vhids: [] }, 'sync', 160)
  t.equal(a.peerSays(1, 160), 'M')
  t.same(a.heartbeat({ ...hb(9), node: 'fw-a', epoch: 100 }, 'sync', 170), [], 'our own heartbeat looped back')
  t.match(a.tick(500), [{ type: 'log', message: /peer path serial dead/ }])
  t.equal(a.peerSays(1, 500), null)
  t.same(a.alivePaths(500), [])
  const st = a.status(500)
  t.equal(st.mode, 'two-node')
  t.same(st.paths.map((p) => p.state), ['unknown', 'dead', 'dead'], 'sync heard once: dead, not unknown')
  t.same(a.advertHeard(600), [])
  t.match(a.advertHeard(700), [{ message: 'peer path lan alive' }])
})

t.test('restart silence: a new record claims nothing until a deferral from before could have run out', async (t) => {
  const a = fresh()
  a.view(1, view({ claiming: true }), 0)
  t.match(a.status(0).vhids[0]!.why, /restart silence: a deferral granted before this start may still run \(1260 ms\)/)
  t.equal(a.status(0).vhids[0]!.deferringToPeerMs, 1260)
  t.same(votes(a.tick(1260)).length, 0, 'no votes yet, so nothing to hold')
  t.match(a.status(1260).vhids[0]!.why, /1 vote of 2 needed/)
  // Two-node mode has no promises, so no silence.
  const b = fresh(false)
  t.match(votes(b.view(1, view({ claiming: true }), 0)), [{ held: true }])
})

t.test('crossed grants: at most one side releases its deferral', async (t) => {
  const mk = (selfId: number, epoch: number) => {
    let n = selfId
    const x = new Arbiter({ node: `n${selfId}`, selfId, epoch, leaseMs: 3000, witness: true, pathTimeouts: { lan: 3500, sync: 1000, serial: 1000 }, random: (b) => Buffer.alloc(b, ++n & 0xff), startMs: -100_000, powerOn: true })
    x.view(1, view(), -100_000)
    return x
  }
  const A = mk(0xa, 100)
  const B = mk(0xb, 200)
  const [reqB] = sent(B.view(1, view({ advskew: 100, claiming: true }), 1000))
  const [gA] = sent(A.receive(reqB!, 'peer', 'serial', 1005)) // A grants, defers to B
  const [reqA] = sent(A.view(1, view({ advskew: 0, claiming: true }), 1006))
  const [gB] = sent(B.receive(reqA!, 'peer', 'sync', 1007)) // B grants, defers to A
  const heldA = votes(A.receive(gB!, 'peer', 'sync', 1008)).map((v) => (v as { held: boolean }).held)
  const heldB = votes(B.receive(gA!, 'peer', 'serial', 1010)).map((v) => (v as { held: boolean }).held)
  t.same(heldA, [true], 'A asked after its promise to B: released')
  t.same(heldB, [], 'B asked before its promise to A: still bound')
})

t.test('two-node: the peer stepping down just after a takeover is a handover; later, a split healed (issue 11)', async (t) => {
  const a = arbiter(false)
  // The peer ranks lower (an older boot epoch): this board keeps the vhid while both say MASTER.
  const hb = (seq: number, state: 'M' | 'B') => ({ node: 'fw-b', epoch: 7, seq, demote: 0, vhids: [{ vhid: 1, state }] })
  const garps = (actions: ArbiterAction[]) => actions.filter((x) => x.type === 'garp').map((x) => (x as { reason: string }).reason)
  a.heartbeat(hb(1, 'M'), 'sync', 0)
  // This board preempts: the old master says MASTER until it hears our first advert.
  a.view(1, view({ state: 'MASTER' }), 100)
  t.same(garps(a.heartbeat(hb(2, 'M'), 'sync', 200)), [])
  t.same(garps(a.heartbeat(hb(3, 'B'), 'sync', 350)), ['handover done: the peer stepped down 250 ms after this board took over'])
  // Much later the peer says MASTER too (the LAN between the boards broke), then stops.
  for (let i = 0; i < 20; i++) t.same(garps(a.heartbeat(hb(4 + i, i < 10 ? 'B' : 'M'), 'sync', 3000 + 100 * i)), [])
  t.same(garps(a.heartbeat(hb(30, 'B'), 'sync', 5100)), ['split healed: the peer is no longer MASTER'])
})

t.test('two-node: a preempt over a master it hears is held through the handover, then the rank rule applies (issue 11)', async (t) => {
  const a = arbiter(false)
  // The peer ranks higher (a later boot epoch) and is alive on the sync link.
  const hb = (seq: number, state: 'M' | 'B') => ({ node: 'fw-b', epoch: 200, seq, demote: 0, vhids: [{ vhid: 1, state }] })
  const held = (actions: ArbiterAction[]) => votes(actions).map((x) => (x as { held: boolean }).held)
  a.heartbeat(hb(1, 'M'), 'sync', 0)
  a.heartbeat(hb(2, 'M'), 'sync', 100)
  // Back from a link loss, this board hears one advert of the peer and preempts it:
  // the LAN path is not alive yet (one advert), the peer still says MASTER.
  a.advertHeard(150)
  t.same(held(a.view(1, view({ claiming: true, hearsMaster: true }), 150)), [true], 'the claim holds')
  t.same(held(a.view(1, view({ state: 'MASTER' }), 151)), [], 'and so does the new master')
  t.same(held(a.heartbeat(hb(3, 'M'), 'sync', 200)), [], 'while the old master steps down')
  // A peer that stays MASTER past the handover (it does not hear us) is a split: the
  // lower-ranked board yields.
  t.ok(a.nextWakeMs(200) <= 151 + 300, 'the end of the handover is a wake-up of its own')
  const changes: [number, boolean[]][] = []
  for (let ms = 300, seq = 4; ms <= 1400; ms += 100, seq++) {
    const h = held(a.heartbeat(hb(seq, 'M'), 'sync', ms))
    if (h.length > 0) changes.push([ms, h])
  }
  t.same(changes, [[500, [false]]], 'past the handover (a heartbeat timeout, 300 ms) the higher-ranked peer keeps it')
  // A one-way LAN: this board hears the peer's adverts, the peer never hears ours.
  // The next preempt gets no handover: it would be two masters for another 300 ms.
  a.view(1, view(), 1450)
  t.same(held(a.view(1, view({ claiming: true, hearsMaster: true }), 1500)), [true], 'it may claim again')
  t.same(held(a.view(1, view({ state: 'MASTER' }), 1501)), [false], 'but the next preempt yields at once')
})

t.test('two-node: a peer that was MASTER too and then falls silent is not called a handover', async (t) => {
  const a = arbiter(false)
  const hb = (seq: number, state: 'M' | 'B') => ({ node: 'fw-b', epoch: 7, seq, demote: 0, vhids: [{ vhid: 1, state }] })
  const garps = (actions: ArbiterAction[]) => actions.filter((x) => x.type === 'garp').map((x) => (x as { reason: string }).reason)
  a.heartbeat(hb(1, 'M'), 'sync', 0)
  a.view(1, view({ state: 'MASTER' }), 100)
  a.heartbeat(hb(2, 'M'), 'sync', 200)
  t.same(garps(a.tick(600)), ['the peer, MASTER too a moment ago, fell silent on every other path'])
})

t.test('hardening: a heartbeat of our own name is never the peer, and each heartbeat counts once per path', async (t) => {
  const a = arbiter(false)
  a.view(1, view({ state: 'MASTER' }), 0)
  // The master's own heartbeat from an earlier boot (epoch 99, not 100), replayed with
  // the peer's address: it says MASTER and would rank higher. It must change nothing.
  const own = { node: 'fw-a', epoch: 99, seq: 7, demote: 0, vhids: [{ vhid: 1, state: 'M' as const }] }
  const logs: string[] = []
  for (let ms = 100; ms <= 5000; ms += 250) {
    const actions = a.heartbeat(own, 'sync', ms)
    t.same(votes(actions), [])
    for (const x of actions) if (x.type === 'log') logs.push(x.message)
  }
  t.equal(a.status(5000).drops.ownHeartbeat, 20, 'every copy dropped and counted')
  t.same(logs, ["heartbeat on sync bears this board's node name fw-a with another boot epoch 00000063: dropped (a replay, or is the peer configured with node = fw-a too?)"], 'said once: two boards with one name show here')
  t.equal(a.status(5000).vhids[0]!.held, true, 'the master keeps the vhid')
  // The peer's heartbeat replayed again and again: once, then dropped; one frame does
  // not make a path alive (two in a row do), so a dead peer stays dead.
  const peer = { node: 'fw-b', epoch: 7, seq: 3, demote: 0, vhids: [{ vhid: 1, state: 'M' as const }] }
  for (let ms = 6000; ms <= 9000; ms += 250) a.heartbeat(peer, 'sync', ms)
  t.equal(a.status(9000).drops.heartbeatReplay, 12)
  t.notOk(a.alivePaths(9000).includes('sync'), 'the sync path does not come alive on one recorded heartbeat')
  // The same heartbeat on the serial line is its own copy, not a replay.
  a.heartbeat({ ...peer, seq: 4 }, 'sync', 9100)
  a.heartbeat({ ...peer, seq: 4 }, 'serial', 9100)
  t.equal(a.status(9100).drops.heartbeatReplay, 12)
  // A peer talking in a new epoch cannot be displaced by a recording of its old one.
  // (The restart: epoch 8 is taken once epoch 7 has been quiet for 1.5 of its
  // longest recent gap, here 3.1 s.)
  for (let seq = 1, ms = 14_000; seq <= 8; seq++, ms += 100) a.heartbeat({ ...peer, epoch: 8, seq }, 'sync', ms)
  t.equal(a.status(14_700).drops.heartbeatReplay, 12, 'the new epoch was taken')
  t.ok(a.alivePaths(14_700).includes('sync'))
  a.heartbeat({ ...peer, seq: 90 }, 'sync', 14_750)
  t.equal(a.status(14_750).drops.heartbeatReplay, 13, "the old boot's heartbeat is refused while the new one talks")
})

t.test('a board whose VIPs are still being removed promises them to nobody, INIT or BACKUP (simulator seed 18)', async (t) => {
  for (const state of ['BACKUP', 'INIT'] as const) {
    const a = arbiter()
    a.view(1, view({ state, releasing: true }), 0)
    const [answer] = sent(a.receive(request(), 'peer', 'sync', 10)) as Extract<VoteMessage, { kind: 'grant' | 'deny' }>[]
    t.equal(answer?.kind, 'deny', `${state}, releasing: denied`)
    t.ok(answer!.leaseMs > 0 && answer!.leaseMs <= 1000, 'ask again soon')
    a.view(1, view({ state, releasing: false }), 20)
    const [later] = sent(a.receive(request({ seq: 2, nonce: Buffer.alloc(8, 0xef) }), 'peer', 'sync', 30))
    t.equal(later?.kind, 'grant', `${state}, VIPs gone: granted`)
  }
})

t.test('a yielding master lets the peer take over: no ask of its own, and the preferred peer stops renewing its deferral (simulator seed 100494)', async (t) => {
  // The master yields to a candidate that hears it...
  const m = arbiter()
  const hb = (seq: number, at: number) => m.heartbeat({ node: 'fw-b', epoch: 50, seq, demote: 0, vhids: [{ vhid: 1, state: 'B' }] }, 'sync', at)
  hb(1, 0)
  hb(2, 100)
  const [, w] = sent(m.view(1, view({ claiming: true }), 100)) as Extract<VoteMessage, { kind: 'request' }>[]
  m.receive({ kind: 'grant', sender: WIT, epoch: 1, seq: 1, vhid: 1, nonce: w!.nonce, holder: SELF, leaseMs: 1000 }, 'witness', null, 101)
  m.view(1, view({ state: 'MASTER' }), 102)
  t.same(votes(m.receive(request({ seq: 6, flags: FLAG_HEARS_MASTER }), 'peer', 'sync', 150)).length, 1, 'steps down')
  m.view(1, view(), 151)
  // ...then hears no master for a moment and wants the vhid back: it asks nobody,
  // so the witness's lease to it runs out for the peer, while the peer is alive.
  hb(3, 200)
  t.same(sent(m.view(1, view({ claiming: true }), 380)), [], 'no request while the peer takes over')
  t.match(m.status(380).vhids[0]!.why, /yielded to the peer's claim: it takes over \(asking again in \d+ ms\)/)
  t.equal(m.nextWakeMs(380) > 380, true, 'and no busy wake-up meanwhile')
  // When the peer falls silent, it asks again at once.
  t.equal(sent(m.tick(520)).length, 2, 'the peer went silent: ask both voters')

  // The preferred candidate that still defers to the peer (it granted a moment ago)
  // refuses to renew: each grant would stretch the deferral, forever.
  const a = arbiter()
  t.equal(sent(a.receive(request({ seq: 1 }), 'peer', 'sync', 0))[0]!.kind, 'grant')
  a.view(1, view({ claiming: true, advskew: 0 }), 10)
  t.match(sent(a.receive(request({ seq: 2 }), 'peer', 'sync', 240))[0], { kind: 'deny' }, 'a worse candidate is refused while we defer to it')
  t.equal(a.status(240).vhids[0]!.deferringToPeerMs, 1020, 'the deferral given runs out as promised, not stretched')
})

t.test('review: a LAN fault keeps the VIPs on the MASTER we defer to, witness or not; the yield ends when the peer stops asking or falls silent', async (t) => {
  // A defers to B, which is MASTER (its heartbeats say so); A hears no adverts (a LAN
  // fault) and claims, ranking better: B's renewals still get A's vote.
  const a = arbiter()
  const hbB = (seq: number, at: number, state: 'M' | 'B') => a.heartbeat({ node: 'fw-b', epoch: 50, seq, demote: 0, vhids: [{ vhid: 1, state }] }, 'sync', at)
  hbB(1, 0, 'M')
  hbB(2, 100, 'M')
  t.equal(sent(a.receive(request({ seq: 1 }), 'peer', 'sync', 100))[0]!.kind, 'grant')
  a.view(1, view({ claiming: true, advskew: 0 }), 110)
  hbB(3, 200, 'M')
  t.equal(sent(a.receive(request({ seq: 2 }), 'peer', 'sync', 300))[0]!.kind, 'grant', 'the MASTER keeps our vote: a LAN fault, not a takeover')

  // The yield: over when the peer stops asking (it lost its link, it says INIT now).
  const m = arbiter()
  const hbA = (seq: number, at: number, epoch = 50) => m.heartbeat({ node: 'fw-b', epoch, seq, demote: 0, vhids: [{ vhid: 1, state: 'I' }] }, 'sync', at)
  hbA(1, 0)
  hbA(2, 100)
  const [, w] = sent(m.view(1, view({ claiming: true }), 100)) as Extract<VoteMessage, { kind: 'request' }>[]
  m.receive({ kind: 'grant', sender: WIT, epoch: 1, seq: 1, vhid: 1, nonce: w!.nonce, holder: SELF, leaseMs: 1000 }, 'witness', null, 101)
  m.view(1, view({ state: 'MASTER' }), 102)
  m.receive(request({ seq: 6, flags: FLAG_HEARS_MASTER }), 'peer', 'sync', 150)
  m.view(1, view(), 151)
  t.same(sent(m.view(1, view({ claiming: true }), 400)), [], 'yielding while the peer just asked')
  for (let i = 3, at = 200; at <= 2400; i++, at += 100) hbA(i, at) // alive, but asks nothing more
  const quiet = m.nextWakeMs(400)
  t.ok(quiet <= 150 + 2000, `a wake-up when the peer's asking would be overdue (${quiet})`)
  t.equal(sent(m.tick(2400)).length, 2, 'the peer stopped asking: we ask again')
  t.notMatch(m.status(2400).vhids[0]!.why, /yielded/)
})

t.test('power-on: a vhid taken before the peer was seen MASTER is a boot master for BOOT_RACE_MS after the start', async (t) => {
  const mk = (startMs: number) => new Arbiter({ node: 'fw-b', selfId: PEER, epoch: 50, leaseMs: 1000, witness: false, pathTimeouts: { lan: 3000, sync: 300, serial: 300 }, random: (b) => Buffer.alloc(b, 1), startMs, powerOn: true })
  const backupHb = (seq: number) => ({ node: 'fw-a', epoch: 100, seq, demote: 0, vhids: [{ vhid: 1, state: 'B' as const }] })

  // Started at 0, heard the peer only as BACKUP, took the vhid at 3.4 s.
  const b = mk(0)
  b.view(1, view(), 0)
  b.heartbeat(backupHb(1), 'sync', 1000)
  b.heartbeat(backupHb(2), 'sync', 1100)
  b.view(1, view({ claiming: true }), 3400)
  b.view(1, view({ state: 'MASTER' }), 3400)
  t.equal(b.bootMaster(1, 3400), true, 'a peer heard as BACKUP does not count')
  t.equal(b.bootMaster(1, BOOT_RACE_MS - 1), true)
  t.equal(b.bootMaster(1, BOOT_RACE_MS), false, 'the window counts from the start')
  t.equal(b.bootMaster(2, 3400), false, 'a vhid it does not have')
  b.view(1, view(), 5000)
  t.equal(b.bootMaster(1, 5000), false, 'no longer MASTER')
  b.view(1, view({ state: 'MASTER' }), 6000)
  t.equal(b.bootMaster(1, 6000), true, 'taken again, still before the peer was seen MASTER')

  // The peer seen MASTER (an advert, or a heartbeat saying M) ends it for every later take.
  const c = mk(0)
  c.view(1, view(), 0)
  c.advertHeard(1000)
  c.view(1, view({ state: 'MASTER' }), 4000)
  t.equal(c.bootMaster(1, 4000), false, 'after an advert of the peer')
  const d = mk(0)
  d.view(1, view(), 0)
  d.heartbeat({ ...backupHb(1), vhids: [{ vhid: 2, state: 'M' }] }, 'serial', 1000)
  d.view(1, view({ state: 'MASTER' }), 4000)
  t.equal(d.bootMaster(1, 4000), false, 'after a heartbeat saying M for any vhid')
  const late = mk(0)
  late.view(1, view(), 0)
  late.view(1, view({ state: 'MASTER' }), BOOT_RACE_MS)
  t.equal(late.bootMaster(1, BOOT_RACE_MS), false, 'taken after the window')
})

t.test('power-on: the other side replaces a boot master only from a fresh heartbeat of the advert\'s epoch, within its own window', async (t) => {
  const mk = () => new Arbiter({ node: 'fw-a', selfId: SELF, epoch: 100, leaseMs: 1000, witness: true, pathTimeouts: { lan: 3000, sync: 300, serial: 300 }, random: (b) => Buffer.alloc(b, 2), startMs: 20_000, powerOn: true })
  const hb = (seq: number, letter: 'P' | 'M' | 'B') => ({ node: 'fw-b', epoch: 50, seq, demote: 0, vhids: [letter === 'P' ? { vhid: 1, state: 'M' as const, boot: true as const } : { vhid: 1, state: letter }] })
  const a = mk()
  a.view(1, view(), 20_000)
  a.heartbeat(hb(1, 'P'), 'sync', 20_100)
  t.equal(a.bootRace(1, 50, 20_100), false, 'one frame: the path is not alive yet')
  a.heartbeat(hb(2, 'P'), 'sync', 20_200)
  t.equal(a.bootRace(1, 50, 20_200), true)
  t.equal(a.bootRace(2, 50, 20_200), false, 'another vhid')
  t.equal(a.bootRace(1, 51, 20_200), false, 'the advert is of another boot epoch than the heartbeat (a recording)')
  t.match(a.status(20_200).peer, { vhids: '1:P' }, 'carpd status shows it')
  // The boot master yields to the claim and says B; its advert sent just before still
  // comes (board lab: taken as "master heard again", it ended the claim).
  a.heartbeat(hb(3, 'B'), 'sync', 20_300)
  t.equal(a.bootRace(1, 50, 20_350), true, 'seen once, it holds for that epoch: the boot master saying B after it yielded')
  t.equal(a.bootRace(1, 50, 20_900), true, 'and with its heartbeats stale')
  t.equal(a.bootRace(1, 51, 20_900), false, 'not for another epoch')
  a.view(1, view({ state: 'MASTER' }), 21_000)
  t.equal(a.bootRace(1, 50, 21_000), false, 'until this board is MASTER of the vhid: the race is over')
  a.view(1, view(), 21_500)
  t.equal(a.bootRace(1, 50, 21_500), false, 'once')

  // Held only while the claim it started stands (adversarial review).
  /** A board up at 20 s that has two fresh P heartbeats of the peer's epoch 50 at 20.2 s. */
  const raced = (): Arbiter => {
    const x = mk()
    x.view(1, view(), 20_000)
    x.heartbeat(hb(1, 'P'), 'sync', 20_100)
    x.heartbeat(hb(2, 'P'), 'sync', 20_200)
    return x
  }
  const won = raced()
  won.view(1, view({ state: 'MASTER' }), 20_200)
  t.equal(won.bootRace(1, 50, 20_250), false, 'not seen while MASTER: an advert the old master sent before stepping down')
  won.view(1, view(), 21_000) // maint on, a link flap...: back to BACKUP
  won.heartbeat(hb(3, 'M'), 'sync', 21_100)
  won.heartbeat(hb(4, 'M'), 'sync', 21_200)
  t.equal(won.bootRace(1, 50, 21_200), false, 'the peer took it back as an ordinary master: no second handover')
  const down = raced()
  t.equal(down.bootRace(1, 50, 20_200), true)
  down.view(1, view({ claiming: true, hearsMaster: true }), 20_200)
  down.view(1, view({ state: 'INIT' }), 20_500)
  down.view(1, view(), 21_000)
  t.equal(down.bootRace(1, 50, 21_000), false, 'the claim ended with the link: no latch left for later')
  const ordinary = raced()
  t.equal(ordinary.bootRace(1, 50, 20_200), true)
  ordinary.view(1, view({ claiming: true, hearsMaster: true }), 20_200)
  ordinary.heartbeat(hb(3, 'M'), 'sync', 20_300)
  t.equal(ordinary.bootRace(1, 50, 20_300), false, 'a heartbeat of that epoch saying M (not P) ends it')

  const b = mk()
  b.view(1, view(), 20_000)
  b.heartbeat(hb(1, 'P'), 'sync', 20_100)
  b.heartbeat(hb(2, 'P'), 'sync', 20_200)
  t.equal(b.bootRace(1, 50, 20_600), false, 'a P heartbeat gone stale before an advert came')
  b.heartbeat(hb(3, 'M'), 'sync', 20_700)
  b.heartbeat(hb(4, 'M'), 'sync', 20_800)
  t.equal(b.bootRace(1, 50, 20_800), false, 'an ordinary master')
  b.heartbeat(hb(5, 'P'), 'sync', 20_000 + BOOT_RACE_MS - 100)
  b.heartbeat(hb(6, 'P'), 'sync', 20_000 + BOOT_RACE_MS - 50)
  t.equal(b.bootRace(1, 50, 20_000 + BOOT_RACE_MS - 50), true)
  t.equal(b.bootRace(1, 50, 20_000 + BOOT_RACE_MS), false, 'this board booted too long ago')
})

t.test('a claim on a master it hears waits for the end of the restart silence: asked earlier, the master would yield to nobody', async (t) => {
  const a = new Arbiter({ node: 'fw-a', selfId: SELF, epoch: 100, leaseMs: 1000, witness: true, pathTimeouts: { lan: 3000, sync: 300, serial: 300 }, random: (b) => Buffer.alloc(b, 3), startMs: 0, powerOn: true })
  a.view(1, view(), 0) // created now: the restart silence runs 1260 ms
  t.same(sent(a.view(1, view({ claiming: true, hearsMaster: true }), 500)), [], 'no request during the silence')
  t.same(sent(a.tick(1000)), [])
  t.ok(a.nextWakeMs(1000) <= 1260, 'it wakes when the silence ends')
  const asks = sent(a.tick(1260)) as Extract<VoteMessage, { kind: 'request' }>[]
  t.equal(asks.length, 2, 'then it asks both voters')
  t.equal(asks[0]!.flags, FLAG_HEARS_MASTER)
  const b = new Arbiter({ node: 'fw-a', selfId: SELF, epoch: 100, leaseMs: 1000, witness: true, pathTimeouts: { lan: 3000, sync: 300, serial: 300 }, random: (x) => Buffer.alloc(x, 4), startMs: 0, powerOn: true })
  b.view(1, view(), 0)
  t.equal(sent(b.view(1, view({ claiming: true }), 500)).length, 2, 'a claim on no master asks at once, as before (the answers wait out the silence)')
})

t.test('power-on: a carpd restarted on a board up for a while takes no part in the race', async (t) => {
  const mk = (powerOn: boolean) => new Arbiter({ node: 'fw-b', selfId: PEER, epoch: 50, leaseMs: 1000, witness: false, pathTimeouts: { lan: 3000, sync: 300, serial: 300 }, random: (b) => Buffer.alloc(b, 5), startMs: 0, powerOn })
  for (const powerOn of [true, false]) {
    const x = mk(powerOn)
    x.view(1, view(), 0)
    x.view(2, view(), 0)
    x.view(1, view({ state: 'MASTER' }), 3400)
    t.equal(x.bootMaster(1, 3400), powerOn, `boot master: ${powerOn ? 'a power-on' : 'no, a restart'}`)
    const hb = (seq: number) => ({ node: 'fw-a', epoch: 7, seq, demote: 0, vhids: [{ vhid: 2, state: 'M' as const, boot: true as const }] })
    x.heartbeat(hb(1), 'sync', 3500)
    x.heartbeat(hb(2), 'sync', 3600)
    t.equal(x.bootRace(2, 7, 3600), powerOn, `replaces a boot master: ${powerOn ? 'yes' : 'no, a restart'}`)
  }
})
