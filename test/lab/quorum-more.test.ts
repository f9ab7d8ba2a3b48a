// Split-brain protection on real Linux: master hang (SIGSTOP), double failures, and
// two-node mode (no witness). Same checks as quorum.test.ts. Needs root; skipped
// otherwise, a failure with CARPD_LAB=required.
import t from 'tap'
import { LAB_REQUIRED, labUnavailable } from './netlab.js'
import { type Scenario, runScenario, sleep } from './quorum-lab.js'

const lanSwitchDead = (q: Parameters<Scenario['fail']>[0]) => void q.lab.ip('-n', q.lab.ns('lan'), 'link', 'set', 'br0', 'down')

const SCENARIOS: Scenario[] = [
  {
    name: 'master hang: carpd stopped for 3 s (SIGSTOP), then continued',
    fail: async (q) => {
      q.hang('r1', true)
      await sleep(3000)
      q.hang('r1', false)
    },
    // r1 ranks higher and preempts, through the votes, once it runs again.
    holder: 'r1',
    maxTakeovers: 2,
    explains: ['r1', /fence vhid=1 no lease renewal from carpd/],
  },
  {
    name: 'LAN switch and witness dead',
    fail: (q) => {
      lanSwitchDead(q)
      q.lab.killAll('w')
    },
    holder: 'r1',
    unreachable: true,
  },
  {
    name: 'LAN switch dead, sync link and serial line cut',
    fail: (q) => {
      lanSwitchDead(q)
      q.lab.linkSet('r1', 'sync0', 'down')
      q.serialCut(true)
    },
    holder: 'r1',
    unreachable: true,
  },
  {
    name: 'master cut from the sync link, the serial line and the witness (LAN up)',
    fail: (q) => {
      q.lab.linkSet('r1', 'sync0', 'down')
      q.serialCut(true)
      q.lab.linkSet('r1', 'wit0', 'down')
    },
    holder: 'r2',
    explains: ['r1', /MASTER->BACKUP reason="lost quorum/],
  },
  {
    name: 'two-node mode (no witness): LAN switch dead is a LAN fault',
    options: { witness: false },
    fail: lanSwitchDead,
    holder: 'r1',
    unreachable: true,
    explains: ['r2', /LAN fault: no advert, but peer r1 is MASTER/],
  },
  {
    name: 'two-node mode (no witness): master power-off',
    options: { witness: false },
    fail: (q) => q.powerOff('r1'),
    holder: 'r2',
    explains: ['r2', /BACKUP->MASTER reason="no advert .*two-node mode/],
  },
]

const why = labUnavailable()
if (why !== null) {
  if (LAB_REQUIRED) t.fail(`CARPD_LAB=required but the lab cannot run: ${why}`)
  else t.plan(0, `lab skipped: ${why}`)
} else {
  for (const s of SCENARIOS) t.test(s.name, (t) => runScenario(t, s).then(() => {}))
}
