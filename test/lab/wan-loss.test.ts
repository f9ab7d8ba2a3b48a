// Multi-WAN on real Linux: a lossy line is not a dead one (issue "Multi-WAN that a
// lossy line does not shake"). ISP 1 drops 5 % of what it forwards in each direction
// and of its resolver's traffic (about 10 % of the probe round trips) for 90 s, at
// the default probe settings: WAN 1 changes state at most once, to degraded, never
// goes offline, its connections are never drained and keep going, and new
// connections split as the router's plan says (3:1, or 3:2 once WAN 1 is degraded).
// Needs root; skipped otherwise, a failure with CARPD_LAB=required.
import t from 'tap'
import { LAB_REQUIRED, labUnavailable } from './netlab.js'
import { WanLab, lastHoldReport, shareBound, sleep } from './wan-lab.js'

const LOSSY_S = 90

const why = labUnavailable()
if (why !== null) {
  if (LAB_REQUIRED) t.fail(`CARPD_LAB=required but the lab cannot run: ${why}`)
  else t.plan(0, `lab skipped: ${why}`)
} else {
  // 90 s of loss and 600 connections over a lossy line: past tap's 120 s per file.
  t.setTimeout(300_000)
  t.test('a lossy ISP: degraded at most once, never offline, never drained, split as planned', async (t) => {
    const w = new WanLab({ flavour: 'iptables' })
    t.teardown(() => w.teardown())
    await w.start()
    const held = await w.hold(20)
    const seen = w.router!.lines.length
    w.ispLossy('isp1', 0.05)
    await sleep(LOSSY_S * 1000)
    const lines = w.router!.lines.slice(seen)
    const changes = lines.filter((l) => /wan1 wan1 \w+->\w+/.test(l))
    // At most one change is the goal; at ~10 % round-trip loss against the 5 % threshold it is exactly one.
    t.ok(changes.length === 1 && /online->degraded reason="loss [\d.]+% >= 5% over the last \d+ rounds"/.test(changes[0]!), `WAN 1 changed once, to degraded: ${changes.join(' | ') || 'no change'}`)
    t.notOk(lines.some((l) => /wan1 offline: removed/.test(l)), 'WAN 1 never drained')
    const report = lastHoldReport(held)
    const onWan1 = report.filter((c) => c.wan === 1)
    t.ok(onWan1.length > 0 && onWan1.every((c) => c.error === null && !c.closed), `all ${onWan1.length} held connections on WAN 1 are still open`)
    // The split the router planned last, against the connections made now.
    const plan = [...w.router!.lines].reverse().find((l) => /new connections: tier 1: wan1 x\d+, wan2 x\d+$/.test(l))!
    const [, w1, w2] = /wan1 x(\d+), wan2 x(\d+)$/.exec(plan)!.map(Number)
    const wans = (await w.connect(600)).filter((x) => x !== null)
    const share1 = wans.filter((x) => x === 1).length / wans.length
    const want = w1! / (w1! + w2!)
    const bound = shareBound(want, wans.length)
    t.ok(Math.abs(share1 - want) <= bound, `WAN 1 carried ${(share1 * 100).toFixed(1)} % of ${wans.length} new connections (plan ${w1}:${w2}, ${(want * 100).toFixed(1)} % ± ${(bound * 100).toFixed(1)})`)
    t.equal(`${w1}:${w2}`, '3:2', 'degraded: half its weight')
  })
}
