// The soak (issue 15): the sync lab's pair under TCP connection churn through the
// master for MINUTES, a fault every minute (pause the master, pull its LAN cable,
// a planned switchover and back), sampling every 10 s each carpd's RSS, open file
// descriptors and child processes. Passes when, after the first 10 minutes, RSS grows
// at most 1 MB per hour and the floor of descriptors and children does not rise
// (short-lived commands come and go; a leak raises the floor).
// Root only; bounded in time; namespaces removed at the end.
import { readFileSync, readdirSync } from 'node:fs'
import { NetLab, sleep } from './netlab.js'
import { LAN_VIP, SERVER, buildLab, configText } from './sync-lab.js'

const PORT = 9100
const SAMPLE_MS = 10_000
const WARMUP_MS = 10 * 60_000

export interface Sample {
  atS: number
  router: string
  pid: number
  rssMb: number
  fds: number
  children: number
}

export interface SoakReport {
  minutes: number
  samples: number
  routers: Record<string, { rssSlopeMbPerH: number | null; rssMb: [number, number]; fds: [number, number]; children: [number, number] }>
  faults: string[]
  ok: boolean
  why: string[]
}

function sample(pid: number): { rssMb: number; fds: number; children: number } | null {
  try {
    const rss = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? NaN) / 1024
    const fds = readdirSync(`/proc/${pid}/fd`).length
    let children = 0
    for (const p of readdirSync('/proc')) {
      if (!/^\d+$/.test(p)) continue
      try {
        const stat = readFileSync(`/proc/${p}/stat`, 'utf8')
        if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === pid) children++
      } catch {
        // gone meanwhile
      }
    }
    return { rssMb: rss, fds, children }
  } catch {
    return null
  }
}

/** Least-squares slope of y over x. */
function slope(points: [number, number][]): number | null {
  if (points.length < 3) return null
  const n = points.length
  const mx = points.reduce((s, [x]) => s + x, 0) / n
  const my = points.reduce((s, [, y]) => s + y, 0) / n
  const sxx = points.reduce((s, [x]) => s + (x - mx) ** 2, 0)
  return sxx === 0 ? null : points.reduce((s, [x, y]) => s + (x - mx) * (y - my), 0) / sxx
}

const CHURN = `
import { connect } from 'node:net'
const [host, port, rate, seconds] = process.argv.slice(2)
const end = Date.now() + Number(seconds) * 1000
let opened = 0, failed = 0
const timer = setInterval(() => {
  if (Date.now() > end) { clearInterval(timer); console.log(JSON.stringify({ opened, failed })); return }
  const s = connect(Number(port), host, () => { opened++; s.end('x') })
  s.on('error', () => failed++)
  s.setTimeout(2000, () => s.destroy())
  s.on('data', () => {})
}, 1000 / Number(rate))
`

const SERVE = `
import { createServer } from 'node:net'
createServer((s) => { s.on('data', () => s.end()); s.on('error', () => {}) }).listen(Number(process.argv[2]))
`

export async function soak(minutes: number, carpdPath: string, say: (line: string) => void = () => {}): Promise<SoakReport> {
  const lab = new NetLab(carpdPath)
  const samples: Sample[] = []
  const faults: string[] = []
  try {
    buildLab(lab)
    // The lab's firewall passes new TCP connections from the LAN to any port.
    lab.spawnLines('server', [process.execPath, lab.writeFile('serve.mjs', SERVE), String(PORT)])
    const routers = { r1: lab.startCarpd('r1', configText('r1', 'conntrack', 'advbase1')), r2: lab.startCarpd('r2', configText('r2', 'conntrack', 'advbase1')) }
    await routers.r1.waitFor(/vhid=2 .*BACKUP->MASTER/, 15_000)
    await routers.r2.waitFor(/bulk transfer \d+ from the peer done/, 15_000)
    const churn = lab.spawnLines('client', [process.execPath, lab.writeFile('churn.mjs', CHURN), SERVER, String(PORT), '50', String(minutes * 60)])
    const t0 = Date.now()
    const end = t0 + minutes * 60_000
    let nextFault = t0 + 60_000
    let fault = 0
    while (Date.now() < end) {
      await sleep(SAMPLE_MS)
      const atS = Math.round((Date.now() - t0) / 1000)
      for (const [name, r] of Object.entries(routers)) {
        const s = r.child.pid === undefined ? null : sample(r.child.pid)
        if (s) samples.push({ atS, router: name, pid: r.child.pid!, ...s })
      }
      const last = samples.slice(-2).map((s) => `${s.router} ${s.rssMb.toFixed(1)} MB ${s.fds} fds ${s.children} children`).join(', ')
      say(`${atS} s: ${last}`)
      if (Date.now() < nextFault || Date.now() > end - 60_000) continue
      nextFault += 60_000
      const master = lab.hasAddress('r1', 'lan0', LAN_VIP) ? 'r1' : 'r2'
      const what = ['pause', 'cable', 'maint'][fault++ % 3]!
      faults.push(`${atS} s: ${what} ${master}`)
      say(`fault: ${what} ${master}`)
      const pid = routers[master].child.pid!
      if (what === 'pause') {
        process.kill(pid, 'SIGSTOP')
        await sleep(2000)
        process.kill(pid, 'SIGCONT')
      } else if (what === 'cable') {
        lab.plug(master, 'lan0', false)
        await sleep(5000)
        lab.plug(master, 'lan0', true)
      } else {
        lab.carpdOnce(master, ['ctl', 'maint', 'on', '-c', `${lab.dir}/${master}.conf`])
        await sleep(10_000)
        lab.carpdOnce(master, ['ctl', 'maint', 'off', '-c', `${lab.dir}/${master}.conf`])
      }
    }
    churn.child.kill('SIGTERM')
  } finally {
    await lab.teardown()
  }
  const report: SoakReport = { minutes, samples: samples.length, routers: {}, faults, ok: true, why: [] }
  for (const name of ['r1', 'r2']) {
    const mine = samples.filter((s) => s.router === name)
    const late = mine.filter((s) => s.atS * 1000 >= Math.min(WARMUP_MS, (minutes * 60_000) / 2))
    const perS = slope(late.map((s) => [s.atS, s.rssMb]))
    const band = (xs: number[]): [number, number] => [Math.min(...xs), Math.max(...xs)]
    const r = {
      rssSlopeMbPerH: perS === null ? null : Number((perS * 3600).toFixed(2)),
      rssMb: band(mine.map((s) => Number(s.rssMb.toFixed(1)))),
      fds: band(late.map((s) => s.fds)),
      children: band(late.map((s) => s.children)),
    }
    report.routers[name] = r
    if (r.rssSlopeMbPerH !== null && r.rssSlopeMbPerH > 1) report.why.push(`${name}: RSS grows ${r.rssSlopeMbPerH} MB/h after the warm-up`)
    // Commands come and go (ip, conntrack -R): a leak shows as a floor that rises, so
    // the lowest count of the last third is compared with the lowest of the first.
    const third = Math.max(1, Math.floor(late.length / 3))
    const floor = (xs: number[]): number => Math.min(...xs)
    for (const what of ['fds', 'children'] as const) {
      const first = floor(late.slice(0, third).map((s) => s[what]))
      const last = floor(late.slice(-third).map((s) => s[what]))
      if (last > first) report.why.push(`${name}: the floor of ${what === 'fds' ? 'open descriptors' : 'child processes'} rose from ${first} to ${last}`)
    }
    if (new Set(mine.map((s) => s.pid)).size !== 1) report.why.push(`${name}: carpd restarted during the soak`)
  }
  report.ok = report.why.length === 0
  return report
}
