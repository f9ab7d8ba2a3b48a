import t from 'tap'
import { EPOCH_QUIET_MIN_MS, REPLAY_WINDOW, ReplayWindow } from '../../src/wire/replay.js'

const ctr = (epoch: number, seq: number): bigint => (BigInt(epoch) << 32n) | BigInt(seq)

t.test('in-order counters pass; the same counter twice is a replay', async (t) => {
  const w = new ReplayWindow()
  t.equal(w.check('a', ctr(7, 1), 0), 'ok')
  t.equal(w.check('a', ctr(7, 2), 1000), 'ok')
  t.equal(w.check('a', ctr(7, 2), 1001), 'replay')
  t.equal(w.check('a', ctr(7, 1), 1002), 'replay')
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

t.test('a restarted sender (new epoch after a silence) is accepted', async (t) => {
  const w = new ReplayWindow()
  for (let i = 1; i <= 5; i++) t.equal(w.check('a', ctr(1, i), i * 1000), 'ok')
  // The old process died at 5 s; the new one claims after its 3 s master-down wait.
  t.equal(w.check('a', ctr(2, 1), 9000), 'ok', 'new random epoch, sequence from 1')
  t.equal(w.check('a', ctr(2, 2), 10_000), 'ok')
})

t.test('a recording from another boot cannot displace a sender that is talking', async (t) => {
  const w = new ReplayWindow()
  for (let i = 1; i <= 5; i++) w.check('a', ctr(2, i), i * 1000)
  // Adverts every second: another epoch needs 1.5 s of silence first.
  t.equal(w.check('a', ctr(1, 900), 5100), 'epochSwitch')
  t.equal(w.check('a', ctr(1, 901), 6400), 'epochSwitch')
  t.equal(w.check('a', ctr(2, 6), 6000), 'ok', 'the real sender is undisturbed')
})

t.test('every epoch keeps its window: switching back cannot replay', async (t) => {
  const w = new ReplayWindow()
  t.equal(w.check('a', ctr(1, 10), 0), 'ok')
  t.equal(w.check('a', ctr(2, 1), 20_000), 'ok', 'restart')
  t.equal(w.check('a', ctr(1, 10), 60_000), 'replay', 'an old packet of epoch 1, after silence')
  t.equal(w.check('a', ctr(1, 9), 60_001), 'ok', 'inside the old window, never seen: once')
  t.equal(w.check('a', ctr(1, 9), 100_000), 'replay')
})

t.test('the quiet time follows the longest recent gap, with a floor', async (t) => {
  const w = new ReplayWindow()
  t.equal(w.check('a', ctr(1, 1), 0), 'ok')
  t.equal(w.check('a', ctr(1, 2), 1), 'ok', 'two adverts 1 ms apart')
  t.equal(w.check('a', ctr(3, 1), EPOCH_QUIET_MIN_MS), 'epochSwitch', 'the floor')
  t.equal(w.check('a', ctr(3, 1), EPOCH_QUIET_MIN_MS + 2), 'ok')
  // A slow sender (advbase 8): a quick extra advert does not shorten the quiet time.
  const slow = new ReplayWindow()
  for (let i = 1; i <= 3; i++) slow.check('a', ctr(1, i), i * 8000)
  t.equal(slow.check('a', ctr(1, 4), 24_005), 'ok', 'a demotion advert right after a regular one')
  t.equal(slow.check('a', ctr(5, 1), 24_005 + 11_000), 'epochSwitch', '11 s < 1.5 x 8 s')
  t.equal(slow.check('a', ctr(5, 1), 24_005 + 12_001), 'ok')
})

t.test('memory is bounded', async (t) => {
  const w = new ReplayWindow()
  for (let i = 0; i < 200; i++) w.check(`s${i}`, ctr(1, 1), i)
  t.equal(w.size, 64)
  t.equal(w.check('s199', ctr(1, 1), 300), 'replay', 'the most recent senders are kept')
  t.equal(w.check('s0', ctr(1, 1), 301), 'ok', 'the oldest was forgotten')
  // Epochs per sender are bounded too: the oldest epoch's window is dropped.
  // (Each restart after twice the previous silence, so every switch is allowed.)
  for (let e = 10; e < 20; e++) t.equal(w.check('x', ctr(e, 1), 1000 * 2 ** e), 'ok')
  t.equal(w.check('x', ctr(10, 1), 1000 * 2 ** 21), 'ok', 'epoch 10 was forgotten (only the last 8 are kept)')
  t.equal(w.check('x', ctr(19, 1), 1000 * 2 ** 23), 'replay', 'epoch 19 is remembered')
})

t.test('a cap on the quiet a new epoch waits for (bursty senders)', async (t) => {
  const capped = new ReplayWindow(5000)
  const plain = new ReplayWindow()
  const c = (epoch: number, seq: number) => (BigInt(epoch) << 32n) | BigInt(seq)
  for (const w of [capped, plain]) {
    w.check('s', c(1, 1), 0)
    w.check('s', c(1, 2), 36_000_000) // a gap of 10 hours
  }
  t.equal(plain.check('s', c(2, 1), 36_000_000 + 6000), 'epochSwitch', 'uncapped: 1.5 x 10 h of quiet needed')
  t.equal(capped.check('s', c(2, 1), 36_000_000 + 6000), 'ok', 'capped: 5 s of quiet is enough')
  t.equal(capped.check('s', c(3, 1), 36_000_000 + 6100), 'epochSwitch', 'still not while the new epoch talks')
})

t.test('a cap given with the packet (the advert\'s own master-down) bounds the quiet an outage gap would stretch (simulator seed 1004257)', async (t) => {
  const w = new ReplayWindow(10_000)
  t.equal(w.check('vhid 1', ctr(1, 1), 0), 'ok')
  t.equal(w.check('vhid 1', ctr(1, 2), 5000), 'ok', 'heard again after a 5 s outage: its longest gap is now 5 s')
  t.equal(w.check('vhid 1', ctr(2, 1), 7000, 200), 'ok', '2 s of quiet: beyond the 200 ms cap, the new epoch counts')
  const plain = new ReplayWindow(10_000)
  plain.check('vhid 1', ctr(1, 1), 0)
  plain.check('vhid 1', ctr(1, 2), 5000)
  t.equal(plain.check('vhid 1', ctr(2, 1), 7000), 'epochSwitch', 'without it, 1.5 x 5 s of quiet is asked')
  t.equal(w.check('vhid 1', ctr(1, 3), 7010, 200), 'epochSwitch', 'the old epoch cannot displace the new one while it talks')
})
