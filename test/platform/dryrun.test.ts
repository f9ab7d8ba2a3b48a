import t from 'tap'
import { dryRunPlatform, quoteForDisplay } from '../../src/platform/dryrun.js'

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
})

t.test('quoteForDisplay', async (t) => {
  t.equal(quoteForDisplay('plain-1.2/3'), 'plain-1.2/3')
  t.equal(quoteForDisplay("it's"), `'it'\\''s'`)
  t.equal(quoteForDisplay(''), "''")
})
