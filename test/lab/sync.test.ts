// State sync on real Linux: client — LAN switch — two routers — WAN switch — server,
// a stateful firewall and source NAT to the WAN VIP on the routers, a crossover sync
// link between them. 100 TCP streams run through the master; the master is powered
// off (carpd killed, every cable pulled). With sync every stream goes on through the
// backup with no reset and no byte lost; with sync.backend = none they all stop,
// which shows it is the sync that saves them. Needs root; skipped otherwise, a
// failure with CARPD_LAB=required.
import t, { type Test } from 'tap'
import { LAB_REQUIRED, NetLab, labUnavailable } from './netlab.js'
import { STREAMS, failover } from './sync-lab.js'

const why = labUnavailable()
if (why !== null) {
  if (LAB_REQUIRED) t.fail(`CARPD_LAB=required but the lab cannot run: ${why}`)
  else t.plan(0, `lab skipped: ${why}`)
} else {
  const lab = (t: Test): NetLab => {
    const lab = new NetLab()
    t.teardown(() => lab.teardown())
    return lab
  }

  t.test('with sync: every stream survives the master power-off, no reset, no byte lost', async (t) => {
    const { flowingMs, syncedStates, r2MasterBeforeCut, takeoverMs, progressed, worstStallMs, report, r2 } = await failover(lab(t), 'carpd', 6000)
    t.equal(r2MasterBeforeCut, 0, `r2 stayed backup until the cut (the later board never preempts the serving one; ${r2.lines.filter((l) => /->MASTER|demote/.test(l)).join('; ')})`)
    t.ok(flowingMs >= 0, `${STREAMS} streams flowing through r1`)
    t.ok(syncedStates >= STREAMS, `r2 held ${syncedStates} of r1's states before the cut`)
    t.ok(takeoverMs >= 0, `r2 MASTER of both vhids ${Math.round(takeoverMs)} ms after the cut`)
    t.equal(report.errorCount, 0, `no stream error (${report.errors.join(', ')})`)
    t.equal(report.closed, 0, 'no stream closed')
    t.equal(report.bad, 0, 'every byte in order, none lost or repeated')
    t.equal(progressed, STREAMS, `${progressed} of ${STREAMS} streams go on through r2`)
    t.comment(`longest stall of a stream across the failover: ${worstStallMs} ms`)
    const loaded = await r2.waitFor(/MASTER: kernel table made current in \d+ ms: \d+ peer states loaded/, 3000)
    t.match(loaded, /: (\d{3,}) peer states loaded/, 'r2 loaded the states on promotion')
  })

  t.test('with sync.backend = none: the streams die at the failover', async (t) => {
    const l = lab(t)
    const { flowingMs, r2MasterBeforeCut, takeoverMs, progressed, report, r2 } = await failover(l, 'carpd-nosync', 6000)
    // If a stream did move, say through what: r2's states of the streams.
    if (progressed > 0) t.comment(l.exec('r2', ['conntrack', '-L', '-p', 'tcp', '--orig-port-dst', '9000']).split('\n').slice(0, 5).join('\n'))
    t.equal(r2MasterBeforeCut, 0, `r2 stayed backup until the cut (${r2.lines.filter((l) => /->MASTER/.test(l)).join('; ')})`)
    t.ok(flowingMs >= 0, `${STREAMS} streams flowing through r1`)
    t.ok(takeoverMs >= 0, `r2 MASTER of both vhids ${Math.round(takeoverMs)} ms after the cut`)
    t.equal(progressed, 0, `no stream moved after the failover (${progressed} of ${STREAMS} did)`)
    t.equal(report.bad, 0)
  })
}
