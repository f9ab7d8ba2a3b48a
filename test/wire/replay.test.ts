import t from 'tap'
import { REPLAY_WINDOW, ReplayWindow } from '../../src/wire/replay.js'

const ctr = (epoch: number, seq: number): bigint => (BigInt(epoch) << 32n) | BigInt(seq)

t.test('in-order counters pass; the same counter twice is a replay', async (t) => {
  const w = new ReplayWindow()
  t.equal(w.check('a', ctr(7, 1), 0), 'ok')
  t.equal(w.check('a', ctr(7, 2), 0), 'ok')
  t.equal(w.check('a', ctr(7, 2), 0), 'replay')
  t.equal(w.check('a', ctr(7, 1), 0), 'replay')
})

t.test('reordering inside the window passes once; older than the window is refused', async (t) => {
  const w = new ReplayWindow()
  t.equal(w.check('a', ctr(7, 100), 0), 'ok')
  t.equal(w.check('a', ctr(7, 98), 0), 'ok', 'late but inside the window')
  t.equal(w.check('a', ctr(7, 98), 0), 'replay')
  t.equal(w.check('a', ctr(7, 100 - REPLAY_WINDOW), 0), 'replay', 'just outside')
  t.equal(w.check('a', ctr(7, 100 - REPLAY_WINDOW + 1), 0), 'ok', 'last slot inside')
  t.equal(w.check('a', ctr(7, 100 + REPLAY_WINDOW + 5), 0), 'ok', 'a big jump forward')
  t.equal(w.check('a', ctr(7, 100), 0), 'replay', 'slid out')
})

t.test('senders are independent', async (t) => {
  const w = new ReplayWindow()
  t.equal(w.check('a', ctr(1, 5), 0), 'ok')
  t.equal(w.check('b', ctr(1, 5), 0), 'ok')
  t.equal(w.size, 2)
})

t.test('a new epoch is a restart; an epoch seen before is refused', async (t) => {
  const w = new ReplayWindow()
  t.equal(w.check('a', ctr(1, 500), 0), 'ok')
  t.equal(w.check('a', ctr(2, 1), 0), 'ok', 'the peer rebooted: new random epoch, sequence from 1')
  t.equal(w.check('a', ctr(1, 501), 0), 'oldEpoch', 'a recording from before the reboot')
  t.equal(w.check('a', ctr(2, 2), 0), 'ok')
})

t.test('memory is bounded', async (t) => {
  const w = new ReplayWindow()
  for (let i = 0; i < 200; i++) w.check(`s${i}`, ctr(1, 1), i)
  t.equal(w.size, 64)
  // The most recent senders are kept.
  t.equal(w.check('s199', ctr(1, 1), 300), 'replay')
  for (let e = 10; e < 30; e++) w.check('s199', ctr(e, 1), 400)
  t.equal(w.check('s199', ctr(28, 2), 401), 'oldEpoch')
})
