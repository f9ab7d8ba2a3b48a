import t, { type Test } from 'tap'
import {
  WITNESS_DRIFT_RATIO,
  WITNESS_MARGIN_MS,
  WitnessCore,
  renderWitnessStatus,
  surelyOverMs,
} from '../../src/quorum/witness.js'
import { idHex as hex } from '../../src/wire/ids.js'
import type { VoteMessage } from '../../src/wire/vote.js'
import { prng } from '../helpers/prng.js'

const A = 0xb251c07e // senderId('fw-a')
const B = 0x68c59148 // senderId('fw-b')
const W = 0xba1c566a // senderId('witness')
const MAX_LEASE_MS = 3000
const FREE_MS = 3280 // 3000 × 1.01 + 250: when a 3 s lease has surely expired
const EPOCH = 7

type Request = Extract<VoteMessage, { kind: 'request' }>

/** A simulated board: requests with its own epoch, increasing seq, fresh nonces. */
class Board {
  seq = 0
  private nonces = 0
  constructor(
    readonly id: number,
    public epoch: number,
  ) {}

  request(vhid = 1, leaseMs = MAX_LEASE_MS): Request {
    const nonce = Buffer.alloc(8)
    nonce.writeUInt32BE(this.id, 0)
    nonce.writeUInt32BE(++this.nonces, 4)
    return { kind: 'request', sender: this.id, epoch: this.epoch, seq: ++this.seq, vhid, nonce, leaseMs, demote: 0, advbase: 1, advskew: 0, flags: 0 }
  }
}


/** A witness whose restart silence is over at FREE_MS (it started at 0). */
function witness(startMs = 0): WitnessCore {
  return new WitnessCore({ epoch: EPOCH, maxLeaseMs: MAX_LEASE_MS, startMs, senderId: W })
}

function expectReply(t: Test, r: { reply: VoteMessage | null }, kind: 'grant' | 'deny', holder: number, leaseMs: number, what: string): void {
  const reply = r.reply
  if (reply === null || (reply.kind !== 'grant' && reply.kind !== 'deny')) {
    t.fail(`${what}: no grant or deny`)
    return
  }
  t.equal(reply.kind, kind, `${what}: ${kind}`)
  t.equal(hex(reply.holder), hex(holder), `${what}: holder`)
  t.equal(reply.leaseMs, leaseMs, `${what}: leaseMs`)
}

t.test('the constants: 1 % drift, 250 ms margin; a 3 s lease is surely over after 3280 ms', async (t) => {
  t.equal(WITNESS_DRIFT_RATIO, 0.01)
  t.equal(WITNESS_MARGIN_MS, 250)
  t.equal(surelyOverMs(3000), FREE_MS)
  t.equal(surelyOverMs(1), 252, 'rounded up, never down')
  t.equal(hex(A), 'b251c07e')
  t.equal(hex(1), '00000001')
})

t.test('a grant echoes the request and is signed by the witness, seq increasing', async (t) => {
  const w = witness()
  const a = new Board(A, 0x1111)
  const req = a.request(9)
  const r = w.receive(req, FREE_MS)
  t.same(r.reply, { kind: 'grant', sender: W, epoch: EPOCH, seq: 1, vhid: 9, nonce: req.nonce, holder: A, leaseMs: 3000 })
  t.equal(r.log, 'vhid=9 lease none -> b251c07e granted 3000ms reason="no holder yet"')
  const again = w.receive(a.request(9), FREE_MS + 10)
  t.equal(again.reply?.seq, 2)
  t.equal(again.log, null, 'a renewal is not a change of holder')
})

t.test('the second board gets the lease only after lease × 1.01 + 250 ms of the first one’s silence', async (t) => {
  const w = witness()
  const a = new Board(A, 1)
  const b = new Board(B, 2)
  const t0 = FREE_MS + 1000
  expectReply(t, w.receive(a.request(), t0), 'grant', A, 3000, 'a asks first')
  expectReply(t, w.receive(b.request(), t0 + 1), 'deny', A, FREE_MS - 1, 'b at once')
  expectReply(t, w.receive(b.request(), t0 + 3000), 'deny', A, 280, 'b when a’s lease ends on paper')
  const last = w.receive(b.request(), t0 + FREE_MS - 1)
  expectReply(t, last, 'deny', A, 1, 'b 1 ms before it has surely expired')
  t.equal(last.log, null)
  const got = w.receive(b.request(), t0 + FREE_MS)
  expectReply(t, got, 'grant', B, 3000, 'b once it has surely expired')
  t.equal(got.log, 'vhid=1 lease b251c07e -> 68c59148 granted 3000ms reason="b251c07e silent 3280ms, its 3000ms lease surely over"')
  expectReply(t, w.receive(a.request(), t0 + FREE_MS + 1), 'deny', B, FREE_MS - 1, 'a comes back too late')
  const st = w.status(t0 + FREE_MS + 1)
  t.same(st.vhids, [{ vhid: 1, holder: '68c59148', remainingMs: 2999, freeInMs: FREE_MS - 1, grants: 2, renewals: 0, denials: 4 }])
})

t.test('the current holder is preferred: it renews, even past its lease, until another board got it', async (t) => {
  const w = witness()
  const a = new Board(A, 1)
  const b = new Board(B, 2)
  const t0 = FREE_MS
  w.receive(a.request(), t0)
  // Both ask at the same moment, again and again: the holder always wins.
  for (let i = 1; i <= 20; i++) {
    const now = t0 + i * 750
    expectReply(t, w.receive(b.request(), now), 'deny', A, FREE_MS - 750, `round ${i}: b first, denied`)
    expectReply(t, w.receive(a.request(), now), 'grant', A, 3000, `round ${i}: a renews`)
  }
  // A holder that restarted (a new epoch: the same board) renews too.
  const rebootedAt = t0 + 20 * 750 + 1500
  const a2 = new Board(A, 99)
  const rebooted = w.receive(a2.request(), rebootedAt)
  expectReply(t, rebooted, 'grant', A, 3000, 'a after its reboot')
  t.equal(rebooted.log, null)
  // Past its 3 s lease but before it has surely expired, the holder still renews.
  const late = rebootedAt + 3100
  const renewal = w.receive(a2.request(), late)
  expectReply(t, renewal, 'grant', A, 3000, 'a, 3.1 s after its last renewal')
  t.equal(renewal.log, null)
  expectReply(t, w.receive(b.request(), late + 1), 'deny', A, FREE_MS - 1, 'b still waits')
  const v = w.status(late).vhids[0]!
  t.equal(v.grants, 1)
  t.equal(v.renewals, 22)
  t.equal(v.denials, 21)
})

t.test('a holder asking after its lease surely expired gets a fresh grant, without a log line', async (t) => {
  const w = witness()
  const a = new Board(A, 1)
  w.receive(a.request(), FREE_MS)
  const r = w.receive(a.request(), FREE_MS + FREE_MS)
  expectReply(t, r, 'grant', A, 3000, 'again')
  t.equal(r.log, null)
  t.equal(w.status(FREE_MS * 2).vhids[0]!.grants, 2)
})

t.test('two boards asking over and over never both hold, with delays and slow clocks', async (t) => {
  const w = witness()
  const boards = [new Board(A, 1), new Board(B, 2)]
  const rand = prng(42)
  // When each board's lease runs out in real time: counted on the board from when it
  // sent its request, on a clock 0.5 % slow (half the drift the witness allows for).
  const holdsUntil = new Map<number, number>([
    [A, -Infinity],
    [B, -Infinity],
  ])
  const SLOW = 1.005
  const PERIOD_MS = new Map([
    [A, 13],
    [B, 7],
  ])
  let changes = 0
  for (let now = 0; now < 120_000; now++) {
    for (const asking of boards) {
      if (now % PERIOD_MS.get(asking.id)! !== 0) continue
      // B (the first holder: it asks first) falls silent for 10 s, later A does.
      const silent = (asking.id === B && now > 30_000 && now < 40_000) || (asking.id === A && now > 80_000 && now < 90_000)
      if (silent) continue
      // The request is up to 0.9 ms in flight; the witness timestamps its arrival.
      const r = w.receive(asking.request(), now + rand() * 0.9)
      if (r.log) changes++
      if (r.reply?.kind === 'grant') holdsUntil.set(asking.id, Math.max(holdsUntil.get(asking.id)!, now + r.reply.leaseMs * SLOW))
    }
    if (holdsUntil.get(A)! > now && holdsUntil.get(B)! > now) {
      t.fail(`both hold at ${now} ms`)
      break
    }
  }
  t.equal(changes, 3, 'the lease moved on the first grant and on each silence, never else')
  t.pass('never both')
})

t.test('restart silence: nothing is granted for maxLease × 1.01 + 250 ms after start', async (t) => {
  const start = 50_000
  const w = witness(start)
  const a = new Board(A, 1)
  t.equal(w.silentUntil, start + FREE_MS)
  t.equal(w.status(start).silentForMs, FREE_MS)
  const first = w.receive(a.request(), start)
  expectReply(t, first, 'deny', 0, FREE_MS, 'at start: promised nobody, ask again in 3280 ms')
  t.equal(first.log, null)
  expectReply(t, w.receive(a.request(), start + 3000), 'deny', 0, 280, 'later')
  expectReply(t, w.receive(a.request(), start + FREE_MS - 1), 'deny', 0, 1, 'last ms of silence')
  t.equal(w.status(start + FREE_MS - 1).silentForMs, 1)
  expectReply(t, w.receive(a.request(), start + FREE_MS), 'grant', A, 3000, 'then granted')
  t.equal(w.status(start + FREE_MS).silentForMs, 0)
  t.same(w.status(start + FREE_MS).vhids[0], { vhid: 1, holder: 'b251c07e', remainingMs: 3000, freeInMs: FREE_MS, grants: 1, renewals: 0, denials: 3 })
})

t.test('restart silence follows the configured maximum lease', async (t) => {
  const w = new WitnessCore({ epoch: 1, maxLeaseMs: 10_000, startMs: 0, senderId: W })
  expectReply(t, w.receive(new Board(A, 1).request(1, 500), 0), 'deny', 0, 10_350, '10 s × 1.01 + 250')
})

t.test('a replayed request gets no reply and is counted', async (t) => {
  const w = witness()
  const a = new Board(A, 1)
  const b = new Board(B, 2)
  const first = a.request()
  const second = a.request()
  t.ok(w.receive(first, FREE_MS).reply)
  t.ok(w.receive(second, FREE_MS + 10).reply)
  // A recording of either, played while A is silent, changes nothing and says nothing.
  t.same(w.receive(first, FREE_MS + 3200), { reply: null, log: null }, 'old request replayed')
  t.same(w.receive(second, FREE_MS + 3300), { reply: null, log: null }, 'newest request replayed')
  t.equal(w.status(FREE_MS + 3300).drops.replay, 2)
  // The replays did not renew A's lease: B gets it once the real one surely expired.
  expectReply(t, w.receive(b.request(), FREE_MS + 10 + FREE_MS), 'grant', B, 3000, 'b')
  // A new epoch while the old one is still talking is held back (ReplayWindow's rule).
  const a2 = new Board(A, 2)
  const a3 = new Board(A, 3)
  w.receive(a2.request(), 20_000)
  t.same(w.receive(a3.request(), 20_001), { reply: null, log: null }, 'epoch switch while talking')
  t.equal(w.status(20_001).drops.epochSwitch, 1)
  t.equal(w.status(20_001).seq, 4, 'dropped requests consume no reply seq')
})

t.test('a lease asked longer than the witness’s maximum is cut to it', async (t) => {
  const w = witness()
  const a = new Board(A, 1)
  const b = new Board(B, 2)
  expectReply(t, w.receive(a.request(1, 60_000), FREE_MS), 'grant', A, 3000, 'cut to 3 s')
  expectReply(t, w.receive(b.request(), FREE_MS + FREE_MS), 'grant', B, 3000, 'free after 3 s × 1.01 + 250, not 60 s')
  expectReply(t, w.receive(b.request(2, 1000), FREE_MS), 'grant', B, 1000, 'a shorter lease is granted as asked')
  const c = new WitnessCore({ epoch: 1, maxLeaseMs: 3000, startMs: 0, senderId: W })
  const board = new Board(A, 1)
  expectReply(t, c.receive(board.request(1, 0), FREE_MS), 'grant', A, 0, 'zero asked, zero granted')
  expectReply(t, c.receive(new Board(B, 1).request(1), FREE_MS + 252), 'grant', B, 3000, 'and free 252 ms later')
})

t.test('a shorter renewal never cuts the lease the holder may still count on', async (t) => {
  const w = witness()
  const a = new Board(A, 1)
  const b = new Board(B, 2)
  w.receive(a.request(1, 3000), FREE_MS)
  // Its reply may be lost: A still counts on the 3 s lease.
  expectReply(t, w.receive(a.request(1, 500), FREE_MS + 100), 'grant', A, 500, 'a renews for 500 ms')
  expectReply(t, w.receive(b.request(), FREE_MS + 1000), 'deny', A, FREE_MS - 1000, 'b waits for the 3 s lease')
  expectReply(t, w.receive(b.request(), FREE_MS + FREE_MS), 'grant', B, 3000, 'b then')
})

t.test('leases are per vhid', async (t) => {
  const w = witness()
  const a = new Board(A, 1)
  const b = new Board(B, 2)
  expectReply(t, w.receive(a.request(1), FREE_MS), 'grant', A, 3000, 'a vhid 1')
  expectReply(t, w.receive(b.request(2), FREE_MS), 'grant', B, 3000, 'b vhid 2')
  expectReply(t, w.receive(b.request(1), FREE_MS), 'deny', A, FREE_MS, 'b vhid 1')
  expectReply(t, w.receive(a.request(2), FREE_MS), 'deny', B, FREE_MS, 'a vhid 2')
  t.same(
    w.status(FREE_MS).vhids.map((v) => [v.vhid, v.holder]),
    [
      [1, 'b251c07e'],
      [2, '68c59148'],
    ],
  )
})

t.test('anything but a request is counted as unexpectedKind and dropped', async (t) => {
  const w = witness()
  const msgs: VoteMessage[] = [
    { kind: 'grant', sender: A, epoch: 1, seq: 1, vhid: 1, nonce: Buffer.alloc(8), holder: A, leaseMs: 3000 },
    { kind: 'deny', sender: A, epoch: 1, seq: 2, vhid: 1, nonce: Buffer.alloc(8), holder: B, leaseMs: 3000 },
    { kind: 'heartbeat', sender: A, epoch: 1, seq: 3, text: 'hello' },
  ]
  for (const msg of msgs) t.same(w.receive(msg, FREE_MS), { reply: null, log: null }, msg.kind)
  t.equal(w.status(FREE_MS).drops.unexpectedKind, 3)
  t.same(w.status(FREE_MS).vhids, [], 'no vhid touched')
  // They did not consume A's counters either: its request with seq 1 is answered.
  t.ok(w.receive(new Board(A, 1).request(), FREE_MS).reply)
})

t.test('an exhausted reply sequence stops answering rather than wrap', async (t) => {
  const w = witness()
  ;(w as unknown as { seq: number }).seq = 0xfffffffe
  const a = new Board(A, 1)
  t.equal(w.receive(a.request(), FREE_MS).reply?.seq, 0xffffffff, 'the last seq is used')
  t.same(w.receive(a.request(), FREE_MS + 1), { reply: null, log: null })
  t.equal(w.status(FREE_MS + 1).drops.seqExhausted, 1)
})

t.test('status and its console lines', async (t) => {
  const w = witness(1000)
  const lines0 = renderWitnessStatus(w.status(1000))
  t.same(lines0, ['witness ba1c566a epoch=7 max lease 3000ms restart silence: granting nothing for 3280ms', 'drops none'])
  w.drop('badAuth')
  w.drop('badAuth')
  w.drop('shortPacket')
  w.drop('sendError')
  const a = new Board(A, 1)
  w.receive(a.request(3), 1000) // denied: silence
  w.receive(a.request(1), 1000 + FREE_MS)
  const st = w.status(1000 + FREE_MS + 1000)
  t.equal(st.epoch, 7)
  t.equal(st.senderId, 'ba1c566a')
  t.equal(st.maxLeaseMs, 3000)
  t.equal(st.drops.badAuth, 2)
  t.equal(st.drops.shortPacket, 1)
  t.equal(st.drops.sendError, 1)
  t.equal(st.drops.replay, 0)
  t.same(renderWitnessStatus(st), [
    'witness ba1c566a epoch=7 max lease 3000ms granting',
    'vhid 1 holder b251c07e lease 2000ms left, free in 2280ms grants=1 renewals=0 denials=0',
    'vhid 3 holder none grants=0 renewals=0 denials=1',
    'drops shortPacket=1 badAuth=2 sendError=1',
  ])
  const later = w.status(1000 + FREE_MS + 10_000).vhids[0]!
  t.equal(later.remainingMs, 0, 'clamped at 0 once over')
  t.equal(later.freeInMs, 0)
  // The status is a copy: changing it changes nothing.
  st.drops.badAuth = 99
  t.equal(w.status(0).drops.badAuth, 2)
})
