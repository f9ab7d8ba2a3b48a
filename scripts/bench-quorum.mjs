// The split-brain section of npm run bench (needs root: network namespaces), in the
// lab of test/lab/quorum-lab.ts (client, two routers, sync cable, serial pty pair,
// witness on a network of its own).
//
// - Detection time per peer path: the path is cut (LAN switch stops forwarding, sync
//   cable down, serial line stopped) and the backup's console says "peer path X dead";
//   the time between, median of RUNS cuts, at carpd's defaults and at the lab's
//   sub-second settings.
// - Failover outage on a master power-off, pinged by the client every 10 ms: plain
//   CARP (no peer paths, no witness) against witness + serial + sync, median of RUNS.
import { importTs, median } from './bench-lib.mjs'
import { join } from 'node:path'
import { spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { outageOf, startPing } from './bench-failover.mjs'
import { cpuSeconds, rss } from './proc-stats.mjs'

const root = new URL('..', import.meta.url).pathname
const RUNS = Number(process.env.CARPD_BENCH_QUORUM_RUNS ?? 3)
const CPU_WINDOW_MS = Number(process.env.CARPD_BENCH_CPU_MS ?? 30_000)
const SETTINGS = {
  defaults: { advbase: 1, advskew: [0, 100], leaseMs: 3000, heartbeatMs: 250, heartbeatTimeoutMs: 1000 },
  'sub-second': { advbase: 0, advskew: [26, 29], leaseMs: 1000, heartbeatMs: 100, heartbeatTimeoutMs: 300 },
}


const loadLab = () => importTs('test/lab/quorum-lab.ts', 'quorum-lab.mjs')

/** ms from `cutAt` (unix ms) to the first console line of `proc` matching `re`, or NaN. */
async function lineAfter(proc, re, cutAt, timeoutMs) {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    for (const line of proc.lines) {
      const m = /^(\S+Z) /.exec(line)
      if (!m || !re.test(line)) continue
      const at = Date.parse(m[1])
      if (at >= cutAt) return at - cutAt
    }
    await new Promise((r) => setTimeout(r, 20))
  }
  return NaN
}

const PATHS = {
  sync: { cut: (q) => q.lab.linkSet('r1', 'sync0', 'down'), heal: (q) => q.lab.linkSet('r1', 'sync0', 'up') },
  serial: { cut: (q) => q.serialCut(true), heal: (q) => q.serialCut(false) },
  lan: {
    cut: (q) => q.lab.ip('-n', q.lab.ns('lan'), 'link', 'set', 'br0', 'down'),
    heal: (q) => q.lab.ip('-n', q.lab.ns('lan'), 'link', 'set', 'br0', 'up'),
  },
}

/** carpd's own processes in a router namespace: the agent and its fence, by command line. */
function carpdPids(q, router) {
  const pids = spawnSync('ip', ['netns', 'pids', q.lab.ns(router)], { encoding: 'utf8' }).stdout.split(/\s+/).filter(Boolean)
  const found = {}
  for (const pid of pids) {
    let cmd = ''
    try {
      cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ')
    } catch {
      continue
    }
    if (/carpd\.js run /.test(cmd)) found.agent = Number(pid)
    if (/carpd\.js fence /.test(cmd)) found.fence = Number(pid)
  }
  return found
}

/** The master's CPU and memory with every path and the witness on (heartbeats, renewals). */
async function idleGuarded(q) {
  const { agent, fence } = carpdPids(q, 'r1')
  const before = cpuSeconds(agent) + (fence ? cpuSeconds(fence) : 0)
  await new Promise((r) => setTimeout(r, CPU_WINDOW_MS))
  const cpuS = cpuSeconds(agent) + (fence ? cpuSeconds(fence) : 0) - before
  return { windowS: CPU_WINDOW_MS / 1000, cpuS, cpuPercent: (cpuS / (CPU_WINDOW_MS / 1000)) * 100, agent: rss(agent), fence: fence ? rss(fence) : null }
}

async function detection(QuorumLab, setting, measureIdle) {
  const out = {}
  const q = new QuorumLab({ ...setting, carpdPath: join(root, 'build/carpd.js') })
  try {
    await q.start()
    if (measureIdle) {
      await new Promise((r) => setTimeout(r, 3000))
      out.idle = await idleGuarded(q)
    }
    const r2 = q.carpd.get('r2')
    for (const [path, { cut, heal }] of Object.entries(PATHS)) {
      const runs = []
      for (let i = 0; i < RUNS; i++) {
        await new Promise((r) => setTimeout(r, 1500))
        const at = Date.now()
        cut(q)
        runs.push(await lineAfter(r2, new RegExp(`peer path ${path} dead`), at, 10_000))
        heal(q)
        await lineAfter(r2, new RegExp(`peer path ${path} alive`), Date.now() - 1, 10_000)
      }
      out[path] = { medianMs: median(runs), runsMs: runs.map((x) => Math.round(x)) }
    }
  } finally {
    await q.teardown()
  }
  return out
}

async function outage(QuorumLab, setting, guarded) {
  const runs = []
  for (let i = 0; i < RUNS; i++) {
    const opts = guarded ? setting : { ...setting, witness: false, serial: false, sync: false }
    const q = new QuorumLab({ ...opts, carpdPath: join(root, 'build/carpd.js') })
    try {
      await q.start()
      await new Promise((r) => setTimeout(r, 1000))
      const ping = startPing(q.lab)
      await new Promise((r) => setTimeout(r, 500))
      q.powerOff('r1')
      const deadline = Date.now() + 15_000
      while (q.holders().join() !== 'r2' && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20))
      await new Promise((r) => setTimeout(r, 1000))
      runs.push(outageOf(await ping.stop()).outageMs)
    } finally {
      await q.teardown()
    }
  }
  return { medianMs: median(runs), runsMs: runs }
}

export async function quorumBench() {
  if (process.getuid?.() !== 0) return { skipped: 'needs root (network namespaces)' }
  const { QuorumLab } = await loadLab()
  const result = { runs: RUNS, settings: SETTINGS, detection: {}, outage: {} }
  for (const [name, setting] of Object.entries(SETTINGS)) {
    result.detection[name] = await detection(QuorumLab, setting, name === 'defaults')
    result.outage[name] = { plain: await outage(QuorumLab, setting, false), guarded: await outage(QuorumLab, setting, true) }
  }
  return result
}

export function quorumRows(r) {
  if (r.skipped) return [['split-brain', `skipped: ${r.skipped}`, '', null]]
  const rows = []
  const ms = (x) => (Number.isFinite(x) ? `${Math.round(x)} ms` : 'n/a')
  for (const [name, s] of Object.entries(r.settings)) {
    const d = r.detection[name]
    const timeouts = `backup's lan timeout ${s.advbase ? `${3 * s.advbase} s + ${s.advskew[1]}/256 s` : `3 x ${s.advskew[1]}/256 s`}, heartbeat timeout ${s.heartbeatTimeoutMs} ms`
    rows.push([`peer path detection, ${name} (${timeouts})`, `lan ${ms(d.lan.medianMs)}, sync ${ms(d.sync.medianMs)}, serial ${ms(d.serial.medianMs)}`, '(reported)', null])
    if (d.idle) {
      const i = d.idle
      const mb = (m) => `RSS ${m.totalMb.toFixed(1)} MB, PSS ${m.pssMb.toFixed(1)} MB`
      rows.push([
        `idle master with witness, serial and sync on (${name})`,
        `CPU ${i.cpuPercent.toFixed(3)} % of a core (agent + fence, ${i.windowS} s); agent ${mb(i.agent)}; fence ${i.fence ? mb(i.fence) : 'not running'}`,
        '(reported)',
        null,
      ])
    }
    const o = r.outage[name]
    const extra = o.guarded.medianMs - o.plain.medianMs
    rows.push([
      `failover outage, ${name}, lease ${s.leaseMs} ms: witness+serial+sync vs plain CARP`,
      `${ms(o.guarded.medianMs)} vs ${ms(o.plain.medianMs)} (+${ms(extra)}; runs ${o.guarded.runsMs.join('/')} vs ${o.plain.runsMs.join('/')})`,
      '≤ plain + 1 s',
      Number.isFinite(extra) && extra <= 1000,
    ])
  }
  return rows
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const r = await quorumBench()
  for (const row of quorumRows(r)) process.stdout.write(`${row[0]}: ${row[1]}  ${row[2]}${row[3] === null ? '' : row[3] ? ' met' : ' MISSED'}\n`)
  process.stdout.write(JSON.stringify(r) + '\n')
}
