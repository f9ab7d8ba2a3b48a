// npm run bench: the goals, measured on this machine.
//   bundle size ≤ 250 KB (plain minified); idle RSS ≤ 45 MB; start to first packet ≤ 150 ms;
//   CPU per hour of an idle master at advbase 1 (reported); failover against
//   keepalived and ucarp (bench-failover.mjs); state sync (bench-sync.mjs);
//   split-brain detection and failover with a witness (bench-quorum.mjs); multi-WAN
//   detection, rule load times and distribution (bench-wan.mjs).
// Prints a table, then the same figures as JSON (also written to build/bench.json), and
// the table's rows to bench/figures.json, from which `npm run docs` makes README's table.
import { spawn } from 'node:child_process'
import { freePort, listener } from './udp-ports.mjs'
import { cpuSeconds, rss } from './proc-stats.mjs'
import { mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { failoverBench, failoverRows } from './bench-failover.mjs'
import { syncBench, syncBenchRows } from './bench-sync.mjs'
import { quorumBench, quorumRows } from './bench-quorum.mjs'
import { wanBench, wanRows } from './bench-wan.mjs'
import { idleBench, idleRows } from './bench-idle.mjs'

const root = new URL('..', import.meta.url).pathname
const CARPD = join(root, 'build/carpd.js')
const START_RUNS = 7
const CPU_WINDOW_MS = Number(process.env.CARPD_BENCH_CPU_MS ?? 30_000)

const dir = mkdtempSync(join(tmpdir(), 'carpd-bench-'))
const children = new Set()
process.on('exit', () => {
  for (const c of children) c.kill('SIGKILL')
  rmSync(dir, { recursive: true, force: true })
})

const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]

async function writeConfig(name, peerPort, advbase, advskew) {
  const file = join(dir, `${name}.conf`)
  writeFileSync(
    file,
    [
      `node = ${name}`,
      `control.port = ${await freePort()}`,
      `carp.port = ${await freePort()}`,
      'carp.1.interface = lo',
      'carp.1.vip = 192.0.2.1/24',
      `carp.1.advbase = ${advbase}`,
      `carp.1.advskew = ${advskew}`,
      'carp.1.pass = bench',
      `carp.1.peer = 127.0.0.1:${peerPort}`,
      '',
    ].join('\n'),
  )
  return file
}

function run(conf) {
  const child = spawn(process.execPath, [CARPD, 'run', '-c', conf, '--dry-run'], { stdio: ['ignore', 'ignore', 'inherit'] })
  children.add(child)
  child.on('exit', () => children.delete(child))
  return child
}

async function stop(child) {
  const exited = new Promise((r) => child.on('exit', r))
  child.kill('SIGTERM')
  await exited
}

/** Spawn to first advert, with sub-second mode so the protocol wait is only 3 × 1/256 s. */
async function startToFirstPacket() {
  const times = []
  for (let i = 0; i < START_RUNS; i++) {
    const sock = await listener()
    const conf = await writeConfig(`start${i}`, sock.address().port, 0, 1)
    const first = new Promise((resolve) => sock.once('message', () => resolve(performance.now())))
    const t0 = performance.now()
    const child = run(conf)
    const t1 = await Promise.race([first, sleep(5000).then(() => NaN)])
    times.push(t1 - t0)
    await stop(child)
    sock.close()
  }
  return { medianMs: median(times), runsMs: times.map((x) => Math.round(x)), protocolWaitMs: (3 * 1000) / 256 }
}

/** The same measure for an idle `node` that does nothing, to show what carpd itself adds. */
async function nodeBaseline() {
  const child = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' })
  children.add(child)
  await sleep(3000)
  const r = rss(child.pid)
  await stop(child)
  return r
}

/** An idle master at advbase 1: resident memory and CPU over a window, scaled to an hour. */
async function idleMaster() {
  const sock = await listener()
  let adverts = 0
  sock.on('message', () => adverts++)
  const conf = await writeConfig('idle', sock.address().port, 1, 0)
  const child = run(conf)
  await sleep(5000) // 3 s master-down wait, then settle as master
  const before = cpuSeconds(child.pid)
  const advertsBefore = adverts
  await sleep(CPU_WINDOW_MS)
  const after = cpuSeconds(child.pid)
  const mem = rss(child.pid)
  await stop(child)
  sock.close()
  const cpuS = after - before
  return {
    rss: mem,
    windowS: CPU_WINDOW_MS / 1000,
    cpuS,
    cpuSPerHour: (cpuS * 3600_000) / CPU_WINDOW_MS,
    advertsInWindow: adverts - advertsBefore,
  }
}

const bundleBytes = statSync(CARPD).size
const failover = process.env.CARPD_BENCH_FAILOVER === '0' ? { skipped: 'CARPD_BENCH_FAILOVER=0' } : await failoverBench()
const sync = process.env.CARPD_BENCH_SYNC === '0' ? null : await syncBench()
const quorum = process.env.CARPD_BENCH_QUORUM === '0' ? null : await quorumBench()
const wan = process.env.CARPD_BENCH_WAN === '0' ? null : await wanBench()
const start = await startToFirstPacket()
const idle = await idleMaster()
const idleFast = process.env.CARPD_BENCH_IDLE === '0' ? null : await idleBench()
const baseline = await nodeBaseline()
const fmtRss = (r) => `${r.totalMb.toFixed(1)} MB (anon ${r.anonMb.toFixed(1)}, file ${r.fileMb.toFixed(1)})`

const rows = [
  ['bundle size (plain minified)', `${(bundleBytes / 1024).toFixed(1)} KB`, '≤ 250 KB', bundleBytes <= 250 * 1024],
  ['idle RSS (master, advbase 1)', fmtRss(idle.rss), '≤ 45 MB', idle.rss.totalMb <= 45],
  ['  for scale: idle `node` doing nothing', fmtRss(baseline), '', null],
  [
    'start to first packet (median of ' + START_RUNS + ')',
    `${start.medianMs.toFixed(0)} ms (incl. ${start.protocolWaitMs.toFixed(1)} ms master-down wait)`,
    '≤ 150 ms',
    start.medianMs <= 150,
  ],
  [
    'CPU per hour, idle master advbase 1',
    `${idle.cpuSPerHour.toFixed(2)} s/h = ${((idle.cpuSPerHour / 3600) * 100).toFixed(3)} % of a core (${(idle.cpuS * 1000).toFixed(1)} ms in ${idle.windowS} s, ${idle.advertsInWindow} adverts)`,
    'near zero (reported)',
    null,
  ],
]
rows.push(...failoverRows(failover))
if (idleFast) rows.push(...idleRows(idleFast))
if (sync) rows.push(...syncBenchRows(sync))
if (quorum) rows.push(...quorumRows(quorum))
if (wan) rows.push(...wanRows(wan))
const w0 = Math.max(...rows.map((r) => r[0].length))
const w1 = Math.max(...rows.map((r) => r[1].length))
process.stdout.write(`\ncarpd bench (${new Date().toISOString()}, node ${process.version})\n\n`)
process.stdout.write(`${'measure'.padEnd(w0)}  ${'result'.padEnd(w1)}  goal\n`)
for (const [name, value, goal, ok] of rows) {
  process.stdout.write(`${name.padEnd(w0)}  ${value.padEnd(w1)}  ${goal}${ok === null ? '' : ok ? '  met' : '  MISSED'}`.trimEnd() + '\n')
}
const json = {
  date: new Date().toISOString(),
  node: process.version,
  bundleBytes,
  idleRssMb: Number(idle.rss.totalMb.toFixed(2)),
  idleRss: idle.rss,
  nodeBaselineRss: baseline,
  startToFirstPacketMs: { median: Number(start.medianMs.toFixed(1)), runs: start.runsMs, protocolWaitMs: start.protocolWaitMs },
  failover,
  idleFast,
  sync,
  quorum,
  wan,
  idleMasterCpu: { windowS: idle.windowS, cpuS: idle.cpuS, cpuSPerHour: Number(idle.cpuSPerHour.toFixed(3)), adverts: idle.advertsInWindow },
}
writeFileSync(join(root, 'build/bench.json'), JSON.stringify(json, null, 2) + '\n')
// The README's figures table comes from this file (scripts/figures.mjs, npm run docs).
const skipped = [['CARPD_BENCH_FAILOVER', 'failover against keepalived and ucarp'], ['CARPD_BENCH_SYNC', 'state sync'], ['CARPD_BENCH_QUORUM', 'split-brain protection'], ['CARPD_BENCH_WAN', 'multi-WAN'], ['CARPD_BENCH_IDLE', 'idle CPU at 11.7 ms adverts against keepalived'], ['CARPD_BENCH_QUOTA', 'failover under a 25 % CPU quota'], ['CARPD_BENCH_CHURN', 'state sync under churn against keepalived + conntrackd']]
  .filter(([env]) => process.env[env] === '0')
  .map(([, what]) => what)
const figures = { date: json.date, node: process.version, skipped, rows: rows.map(([measure, result, goal, met]) => ({ measure: measure.trim(), result, goal, met })) }
mkdirSync(join(root, 'bench'), { recursive: true })
writeFileSync(join(root, 'bench/figures.json'), JSON.stringify(figures, null, 2) + '\n')
process.stdout.write(`\n${JSON.stringify(json)}\n`)
