import t from 'tap'
import { fmtDuration, renderStatus } from '../src/status.js'
import { DROP_REASONS, type AgentStatus } from '../src/agent.js'

t.test('status text', async (t) => {
  const drops = Object.fromEntries(DROP_REASONS.map((r) => [r, 0])) as AgentStatus['drops']
  const s: AgentStatus = {
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
    links: { lan0: 'up', lan1: 'down' },
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
      'send errors: 0  OS command failures: 2',
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
