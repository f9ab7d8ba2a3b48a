import t from 'tap'
import { fmtDuration, renderStatus } from '../../src/control/render.js'
import { DROP_REASONS } from '../../src/carp/status.js'
import type { BoardStatus } from '../../src/control/status.js'

t.test('status text', async (t) => {
  const drops = Object.fromEntries(DROP_REASONS.map((r) => [r, 0])) as BoardStatus['drops']
  const s: BoardStatus = {
    node: 'fw-b',
    version: '0.1.0',
    uptimeMs: 3_725_000,
    maint: true,
    demote: { total: 128, reasons: { maint: 128 } },
    vhids: [
      {
        vhid: 1,
        interface: 'lan0',
        vips: ['192.0.2.1/24'],
        state: 'BACKUP',
        forMs: 65_000,
        reason: 'master 192.0.2.2:8240 bowed out',
        advbaseS: 1,
        advskew: 100,
        transport: 'multicast 224.0.0.18',
        master: { from: '192.0.2.2:8240', demote: 0, advbase: 1, advskew: 0, heardMsAgo: 400 },
        transitions: 3,
        received: 42,
        sent: 7,
      },
    ],
    drops: { ...drops, badAuth: 2, replay: 1 },
    sendErrors: 0,
    platformFailures: 2,
    repairs: 1,
    links: { lan0: 'up', lan1: 'down' },
    sync: null,
    quorum: null,
    wan: null,
    bugs: 1,
  }
  t.equal(
    renderStatus(s),
    [
      'carpd fw-b version 0.1.0 up 1h02m',
      'demote 128 (maint=128)  maint on',
      'vhid 1 BACKUP for 1m05s on lan0 vip 192.0.2.1/24 advbase 1 advskew 100 multicast 224.0.0.18',
      '  reason: master 192.0.2.2:8240 bowed out',
      '  master 192.0.2.2:8240 demote 0 advbase 1 advskew 0 heard 0.4s ago',
      '  adverts received 42 sent 7 transitions 3',
      'links: lan0 up, lan1 down',
      'drops: badAuth=2 replay=1',
      'send errors: 0  OS command failures: 2  repairs: 1',
      'internal errors: 1 (see the console log)',
      '',
    ].join('\n'),
  )
  t.match(renderStatus({ ...s, vhids: [], drops, bugs: 0, links: {}, demote: { total: 0, reasons: {} }, maint: false }), /demote 0  maint off\ndrops: none\n/)
})

t.test('fmtDuration', async (t) => {
  t.equal(fmtDuration(1234), '1.2s')
  t.equal(fmtDuration(42_000), '42s')
  t.equal(fmtDuration(61_000), '1m01s')
  t.equal(fmtDuration(7_260_000), '2h01m')
})

t.test('status text with state sync', async (t) => {
  const bulk = (direction: 'in' | 'out', done: number) => ({ direction, id: 3, total: 100, done, ms: 12, agoMs: 65_000 })
  const sync = {
    peer: { state: 'up' as const, heardMsAgo: 300, epoch: 7 },
    states: { local: 120, peer: 100 },
    lag: { queued: 2, unacked: 1, oldestUnackedMs: 4 },
    counters: {
      framesSent: 10, framesReceived: 9, changesSent: 130, changesReceived: 100, bulkRecordsSent: 120,
      resends: 1, duplicates: 0, outOfOrder: 0, lostFrames: 0, overflows: 0, sessionResets: 0, bulkRetries: 0, gapsSkipped: 0, staleRecords: 0, ipv6HeldBack: 0,
    },
    drops: { badAuth: 2, replay: 0 } as never,
    bulk: { wanted: 'operator' as const, receiving: bulk('in', 40), sending: bulk('out', 60), lastIn: bulk('in', 100), lastOut: null },
    peerAddress: '198.51.100.2:8242',
    backend: { badLines: 1, otherFamily: 0, watchRestarts: 0, loadFailures: 0, snapshots: 2, snapshotFailures: 0, unsyncable: 0 },
    sendErrors: 0,
    lastCommit: { loaded: 98, replaced: 3, expired: 1, skipped: 2, failed: 0, leftOut: 0, ms: 40, agoMs: 5000 },
  }
  const drops = Object.fromEntries(DROP_REASONS.map((r) => [r, 0])) as BoardStatus['drops']
  const s: BoardStatus = { node: 'fw-b', version: '0.1.0', uptimeMs: 1000, maint: false, demote: { total: 0, reasons: {} }, vhids: [], drops, sendErrors: 0, platformFailures: 0, repairs: 0, links: {}, sync, quorum: null, wan: null, bugs: 0 }
  const text = renderStatus(s)
  t.match(text, "sync peer 198.51.100.2:8242 up (heard 0.3s ago)  states: own 120, peer's 100\n")
  t.match(text, '  lag: 2 queued, 1 frames unacked (oldest 4 ms)\n')
  t.match(text, "  bulk: waiting for the peer's table (operator); receiving 40/100 states for 0.0s; sending 60/100 states for 0.0s; last in: 100 states in 12 ms, 1m05s ago; last out: none\n")
  t.match(text, 'last load on promotion: 98 states loaded, 3 stale replaced, 1 ended removed (2 present, 0 failed) in 40 ms, 5.0s ago\n')
  const leftOut = renderStatus({ ...s, sync: { ...sync, lastCommit: { ...sync.lastCommit!, leftOut: 7 } } })
  t.match(leftOut, '(2 present, 0 failed, 7 left out) in 40 ms', 'connections of a WAN dead on this board, not loaded, are counted')
  t.match(text, '  sync drops: badAuth=2\n')
  const quiet = renderStatus({ ...s, sync: { ...sync, peer: { state: 'unknown', heardMsAgo: null, epoch: null }, drops: {} as never, lastCommit: null, bulk: { wanted: null, receiving: null, sending: null, lastIn: null, lastOut: bulk('out', 100) } } })
  t.match(quiet, 'sync peer 198.51.100.2:8242 unknown (never heard)')
  t.match(quiet, 'bulk: last in: none; last out: 100 states, 1m05s ago')
  t.match(quiet, 'last load on promotion: never')
  t.match(quiet, 'sync drops: none')
})
