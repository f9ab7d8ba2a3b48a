// Split-brain protection on real Linux, single failures: the master's LAN link, the
// whole LAN switch, the sync link, the serial line, the witness, the path to the
// witness, master power-off, witness restart. For each, `ip monitor` watches the VIP
// continuously: two routers never hold it at once, it is held whenever a router can
// serve it with quorum, and the console explains every transition. Needs root;
// skipped otherwise, a failure with CARPD_LAB=required.
import t from 'tap'
import { LAB_REQUIRED, labUnavailable } from './netlab.js'
import { type Scenario, runScenario, sleep } from './quorum-lab.js'

const SINGLE_FAILURES: Scenario[] = [
  {
    name: "master's LAN link down",
    fail: (q) => q.lab.linkSet('r1', 'eth0', 'down'),
    holder: 'r2',
    explains: ['r2', /BACKUP->MASTER reason=".*votes: self\+/],
  },
  {
    name: 'LAN switch dead (links stay up, nothing passes)',
    fail: (q) => void q.lab.ip('-n', q.lab.ns('lan'), 'link', 'set', 'br0', 'down'),
    holder: 'r1',
    unreachable: true,
    explains: ['r1', /LAN fault/],
  },
  {
    name: 'sync link cut',
    fail: (q) => q.lab.linkSet('r1', 'sync0', 'down'),
    holder: 'r1',
    explains: ['r1', /peer path sync dead/],
  },
  {
    name: 'serial line cut',
    fail: (q) => q.serialCut(true),
    holder: 'r1',
    explains: ['r1', /peer path serial dead/],
  },
  {
    name: 'witness dead',
    fail: (q) => q.lab.killAll('w'),
    holder: 'r1',
  },
  {
    name: "master's path to the witness cut",
    fail: (q) => q.lab.linkSet('r1', 'wit0', 'down'),
    holder: 'r1',
  },
  {
    name: 'master power-off',
    fail: (q) => q.powerOff('r1'),
    holder: 'r2',
    explains: ['r2', /BACKUP->MASTER reason=".*votes: self\+witness/],
  },
  {
    name: 'witness restart',
    fail: async (q) => {
      q.lab.killAll('w')
      await sleep(200)
      await q.startWitness()
    },
    holder: 'r1',
    explains: ['w', /granting nothing for/],
  },
]

const why = labUnavailable()
if (why !== null) {
  if (LAB_REQUIRED) t.fail(`CARPD_LAB=required but the lab cannot run: ${why}`)
  else t.plan(0, `lab skipped: ${why}`)
} else {
  for (const s of SINGLE_FAILURES) t.test(s.name, (t) => runScenario(t, s).then(() => {}))
}
