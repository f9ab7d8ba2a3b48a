import t from 'tap'
import { dryRunPlatform, dryRunSyncBackend, quoteForDisplay } from '../../src/platform/dryrun.js'
import { flow } from '../helpers/sync-pair.js'

t.test('dry-run logs the exact Linux commands and runs nothing', async (t) => {
  const lines: string[] = []
  const p = dryRunPlatform({ event: (sub, msg) => lines.push(`${sub} ${msg}`) })
  const vip = { address: '192.0.2.1', prefix: 24 }
  await p.addVip('lan0', vip)
  await p.garp('lan0', vip)
  await p.removeVip('lan0', vip)
  await p.runHook('/cf/my hook.sh', ['1', 'lan0', '192.0.2.1', 'MASTER'])
  t.same(lines, [
    'platform dry-run: ip -4 addr add 192.0.2.1/24 dev lan0',
    'platform dry-run: arping -U -S 192.0.2.1 -i lan0 -c 1 192.0.2.1',
    'platform dry-run: ip -4 addr del 192.0.2.1/24 dev lan0',
    "platform dry-run: '/cf/my hook.sh' 1 lan0 192.0.2.1 MASTER",
  ])
  lines.length = 0
  const v6 = { address: '2001:db8::1', prefix: 64 }
  await p.addVip('lan0', v6)
  await p.garp('lan0', v6)
  t.same(lines, [
    'platform dry-run: ip -6 addr add 2001:db8::1/64 dev lan0 nodad preferred_lft 0',
    'platform dry-run: na6 -i lan0 -s 2001:db8::1 -d ff02::1 -t 2001:db8::1 -o -e',
  ], 'IPv6: without DAD, and an unsolicited neighbour advertisement')
})

t.test('quoteForDisplay', async (t) => {
  t.equal(quoteForDisplay('plain-1.2/3'), 'plain-1.2/3')
  t.equal(quoteForDisplay("it's"), `'it'\\''s'`)
  t.equal(quoteForDisplay(''), "''")
})

t.test('dry-run state sync: an empty table that never changes; loads and removals are logged', async (t) => {
  const lines: string[] = []
  const b = dryRunSyncBackend({ event: (sub, msg) => lines.push(`${sub} ${msg}`) })
  let seen = 0
  b.watch(
    () => seen++,
    () => seen++,
  )
  await b.snapshot(() => seen++)
  t.equal(seen, 0)
  t.same(await b.load([flow(1), flow(2)]), { loaded: 2, skipped: 0, failed: 0 })
  await b.remove([flow(3)])
  b.stop()
  t.same(lines, ['platform dry-run: conntrack -R - (2 flows)', 'platform dry-run: conntrack -D (1 flows)'])
  t.same(b.counters, { badLines: 0, otherFamily: 0, watchRestarts: 0, loadFailures: 0 })
})
