// State sync of IPv6 flows on real Linux (issue 14): the sync lab of sync.test.ts with
// IPv6 on the LAN and WAN (routed, no NAT; the sync cable stays IPv4). 100 TCP streams
// over IPv6 run through the master, behind the stateful firewall; the master is
// powered off and every stream goes on through the backup, none reset; without sync
// none does. Needs root;
// skipped otherwise, a failure with CARPD_LAB=required.
import t from 'tap'
import { LAB_REQUIRED, NetLab, labUnavailable } from './netlab.js'
import { STREAMS, failover } from './sync-lab.js'

const why = labUnavailable()
if (why !== null) {
  if (LAB_REQUIRED) t.fail(`CARPD_LAB=required but the lab cannot run: ${why}`)
  else t.plan(0, `lab skipped: ${why}`)
} else {
  t.test('IPv6 with sync: every stream survives the master power-off, no reset, no byte lost', async (t) => {
    const lab = new NetLab()
    t.teardown(() => lab.teardown())
    const { flowingMs, syncedStates, r2MasterBeforeCut, takeoverMs, progressed, worstStallMs, report, r2 } = await failover(lab, 'carpd', 6000, undefined, 6)
    t.equal(r2MasterBeforeCut, 0, 'r2 stayed backup until the cut')
    t.ok(flowingMs >= 0, `${STREAMS} IPv6 streams flowing through r1`)
    t.ok(syncedStates >= STREAMS, `r2 held ${syncedStates} of r1's states before the cut`)
    t.ok(takeoverMs >= 0, `r2 MASTER of both vhids ${Math.round(takeoverMs)} ms after the cut`)
    t.equal(report.errorCount, 0, `no stream error (${report.errors.join(', ')})`)
    t.equal(report.closed, 0, 'no stream closed')
    t.equal(report.bad, 0, 'every byte in order, none lost or repeated')
    t.equal(progressed, STREAMS, `${progressed} of ${STREAMS} IPv6 streams go on through r2`)
    t.comment(`longest stall of a stream across the failover: ${worstStallMs} ms`)
    const loaded = await r2.waitFor(/MASTER: kernel table made current in \d+ ms: \d+ peer states loaded/, 3000)
    t.match(loaded, /: (\d{3,}) peer states loaded/, 'r2 loaded the IPv6 states on promotion')
    t.match(lab.exec('r2', ['conntrack', '-L', '-f', 'ipv6', '-p', 'tcp', '--dport', '9000']), /tcp\s+6 \d+ ESTABLISHED src=2001:db8:1::10 dst=2001:db8:2::100 /, "r2's kernel holds the IPv6 streams")
  })

  t.test('IPv6 with sync.backend = none: the streams die at the failover (the firewall drops what it has no state of)', async (t) => {
    const lab = new NetLab()
    t.teardown(() => lab.teardown())
    const { flowingMs, takeoverMs, progressed } = await failover(lab, 'carpd-nosync', 6000, undefined, 6)
    t.ok(flowingMs >= 0, `${STREAMS} IPv6 streams flowing through r1`)
    t.ok(takeoverMs >= 0, `r2 MASTER of both vhids ${Math.round(takeoverMs)} ms after the cut`)
    t.equal(progressed, 0, `no stream moved after the failover (${progressed} of ${STREAMS} did)`)
  })
}
