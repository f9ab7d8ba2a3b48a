// Multi-WAN on real Linux: the router's own traffic follows the plan (issue
// "Multi-WAN ... a router that keeps its own way out"). The operator's main table
// sends the router's traffic out through ISP 1; ISP 1 goes silent: within the
// detection time the router's own pings to the server behind both ISPs go out
// through ISP 2 (from WAN 2's address), and after ISP 1 is back and its failback
// hold, through ISP 1 again. Needs root; skipped otherwise, a failure with
// CARPD_LAB=required.
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { LAB_REQUIRED, labUnavailable } from './netlab.js'
import { SERVER, WanLab, sleep, until } from './wan-lab.js'

/** Issue goal: the router's own traffic reaches the internet within 3 s of its WAN dying; the lab allows 3 x. */
const BOUND_MS = 9000

const why = labUnavailable()
if (why !== null) {
  if (LAB_REQUIRED) t.fail(`CARPD_LAB=required but the lab cannot run: ${why}`)
  else t.plan(0, `lab skipped: ${why}`)
} else {
  t.test("the router's own traffic leaves a dead WAN and comes back with the failback", async (t) => {
    const w = new WanLab({ flavour: 'iptables' })
    t.teardown(() => w.teardown())
    const ns = w.lab.ns('router')
    // As an operator (or DHCP) sets it: the router's default route through ISP 1.
    w.lab.ip('-n', ns, 'route', 'add', 'default', 'via', '203.0.113.1')
    await w.start()
    const ping = (): boolean => spawnSync('ip', ['netns', 'exec', ns, 'ping', '-n', '-c', '1', '-W', '0.3', SERVER]).status === 0
    const via = (): string => spawnSync('ip', ['netns', 'exec', ns, 'ip', 'route', 'get', SERVER], { encoding: 'utf8' }).stdout.trim()
    t.ok(ping(), 'the router reaches the server')
    t.match(via(), /dev wan1 .*src 203\.0\.113\.2\b/, `through WAN 1 (${via()})`)
    const cutAt = Date.now()
    w.ispDown('isp1', true)
    const back = await until(() => ping(), 20_000, 100)
    t.ok(back >= 0 && back <= BOUND_MS, `the router's own ping got through again ${Math.round(back)} ms after ISP 1 went silent (bound ${BOUND_MS})`)
    t.match(via(), /dev wan2 .*src 203\.0\.113\.18\b/, `through WAN 2, from its address (${via()})`)
    await sleep(3000)
    t.ok(ping() && ping(), `and it stays there (${Date.now() - cutAt} ms after the cut)`)
    const seen = w.router!.lines.length
    w.ispDown('isp1', false)
    const healed = await until(() => w.router!.lines.slice(seen).some((l) => /wan1 wan1 offline->online/.test(l)), 30_000, 50)
    t.ok(healed >= 0, `WAN 1 came back (${Math.round(healed)} ms after ISP 1 answered again)`)
    await until(() => /dev wan1/.test(via()), 5000, 100)
    t.match(via(), /dev wan1 .*src 203\.0\.113\.2\b/, `back through WAN 1 after the failback (${via()})`)
    t.ok(ping(), 'and the router reaches the server')
  })
}
