// State sync figures for npm run bench (issue "State sync"):
//   - changes per second synced between two carpd sync links over UDP (loopback, frames
//     capped at an Ethernet MTU), and CPU per 1,000 changes on each side;
//   - RSS of each side holding 100,000 flows;
//   - time to load 10k and 100k flows into a kernel table (root: in a namespace);
//   - connection survival across a master power-off in the lab (root), for carpd and,
//     when installed, keepalived + conntrackd;
//   - the pair under churn (root): 1,000 new UDP flows/s through the master, CPU and RSS
//     of every process of each router, carpd and keepalived + conntrackd in the same run
//     (CARPD_BENCH_CHURN=0 skips it; CARPD_BENCH_PERF=DIR records perf -g of each router);
//   - board scale (root): 250,000 flows, bulk transfer and promotion commit timed, the
//     master's advert intervals on the wire during both (CARPD_BENCH_SCALE=0 skips it).
// Exported for scripts/bench.mjs; runs alone too: node scripts/bench-sync.mjs
import { spawn, spawnSync } from 'node:child_process'
import { freePort } from './udp-ports.mjs'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { bundleTs, importTs } from './bench-lib.mjs'

const root = new URL('..', import.meta.url).pathname
const FLOWS = Number(process.env.CARPD_BENCH_SYNC_FLOWS ?? 100_000)
const CHANGES = Number(process.env.CARPD_BENCH_SYNC_CHANGES ?? 1_000_000)

const bundle = (entry, dir) => bundleTs(entry, entry.replace(/\W/g, '_') + '.mjs', dir)

/** Runs a peer and keeps its latest JSON report. */
function peer(script, args) {
  const child = spawn(process.execPath, [script, ...args], { stdio: ['pipe', 'pipe', 'pipe'] })
  const p = { child, last: null, reports: [], stderr: '' }
  let buf = ''
  child.stdout.setEncoding('utf8').on('data', (d) => {
    buf += d
    for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
      const line = buf.slice(0, nl)
      buf = buf.slice(nl + 1)
      if (!line.startsWith('{')) continue
      p.last = JSON.parse(line)
      p.reports.push(p.last)
    }
  })
  child.stderr.setEncoding('utf8').on('data', (d) => (p.stderr += d))
  return p
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

async function waitFor(check, timeoutMs, what) {
  const end = Date.now() + timeoutMs
  while (Date.now() < end) {
    if (check()) return
    await sleep(20)
  }
  throw new Error(`bench-sync: ${what} did not happen within ${timeoutMs} ms`)
}

/** Throughput, CPU and memory of two sync links on loopback. */
export async function syncThroughput() {
  const dir = mkdtempSync(join(tmpdir(), 'carpd-bench-sync-'))
  const script = await bundle('scripts/bench-sync-peer.ts', dir)
  const [pa, pb] = [await freePort(), await freePort()]
  const receiver = peer(script, ['receiver', String(pb), String(pa)])
  const sender = peer(script, ['sender', String(pa), String(pb), String(FLOWS), String(CHANGES)])
  try {
    await waitFor(() => receiver.last?.peerStates >= FLOWS && receiver.last?.lastIn, 60_000, `bulk of ${FLOWS} flows`)
    const bulkMs = receiver.last.lastIn.ms
    await sleep(300)
    const rssHeld = { sender: sender.last.rssMb, receiver: receiver.last.rssMb }
    const r0 = receiver.last
    const s0 = sender.last
    const goAt = performance.now()
    sender.child.stdin.write('go\n')
    await waitFor(() => receiver.last.changesReceived - r0.changesReceived >= CHANGES, 120_000, `${CHANGES} changes`)
    const doneAt = performance.now()
    // Both report every 100 ms: CPU is taken from the reports that bracket the run.
    await sleep(250)
    const r1 = receiver.last
    const s1 = sender.last
    const changes = r1.changesReceived - r0.changesReceived
    const seconds = (doneAt - goAt) / 1000
    return {
      flows: FLOWS,
      bulkMs,
      changes,
      changesPerS: Math.round(changes / seconds),
      cpuMsPer1000: {
        sender: +(((s1.cpuMs - s0.cpuMs) / changes) * 1000).toFixed(2),
        receiver: +(((r1.cpuMs - r0.cpuMs) / changes) * 1000).toFixed(2),
      },
      resends: sender.last.resends,
      rssMbHolding: { sender: +rssHeld.sender.toFixed(1), receiver: +rssHeld.receiver.toFixed(1) },
      rssMbAfter: { sender: +sender.last.rssMb.toFixed(1), receiver: +receiver.last.rssMb.toFixed(1) },
    }
  } catch (err) {
    err.message += `\nsender: ${JSON.stringify(sender.last)}\nreceiver: ${JSON.stringify(receiver.last)}\n${sender.stderr.slice(-2000)}\n${receiver.stderr.slice(-2000)}`
    throw err
  } finally {
    sender.child.kill('SIGKILL')
    receiver.child.kill('SIGKILL')
    rmSync(dir, { recursive: true, force: true })
  }
}

/** Kernel load times in a namespace of its own (root only; null otherwise). */
export async function kernelLoad() {
  if (process.getuid?.() !== 0) return null
  const dir = mkdtempSync(join(tmpdir(), 'carpd-bench-load-'))
  const ns = `carpdbench-${process.pid}`
  try {
    const script = await bundle('scripts/bench-sync-load.ts', dir)
    spawnSync('ip', ['netns', 'add', ns])
    // Conntrack runs in a namespace once something needs it: a nat chain, as on a router.
    const nft = spawnSync('ip', ['netns', 'exec', ns, 'nft', '-f', '-'], {
      input: 'table ip nat {\n chain post {\n type nat hook postrouting priority 100;\n }\n}\n',
    })
    if (nft.status !== 0) throw new Error(`nft: ${nft.stderr}`)
    const r = spawnSync(process.execPath, [script, ns], { encoding: 'utf8', timeout: 300_000 })
    if (r.status !== 0) throw new Error(`bench-sync-load: ${r.stderr}`)
    return JSON.parse(r.stdout)
  } finally {
    spawnSync('ip', ['netns', 'del', ns])
    rmSync(dir, { recursive: true, force: true })
  }
}

/** The sync lab (test/lab/sync-lab.ts), bundled for the bench. */
async function syncLab() {
  return importTs({ contents: "export * from './netlab.ts'\nexport * from './sync-lab.ts'\n", resolveDir: join(root, 'test/lab') }, 'sync-lab.mjs')
}

/**
 * Runs `scenario(lab, lib, streamsScript)` in a fresh sync lab `runs` times and
 * collects what it returns. Root only; null otherwise.
 */
async function inSyncLab(runs, scenario) {
  if (process.getuid?.() !== 0) return null
  const lib = await syncLab()
  const results = []
  for (let i = 0; i < runs; i++) {
    const lab = new lib.NetLab(join(root, 'build/carpd.js'))
    try {
      results.push(await scenario(lab, lib, join(root, 'test/lab/streams.mjs')))
    } finally {
      await lab.teardown()
    }
  }
  return results
}

/** Connection survival: the lab of test/lab/sync.test.ts (100 TCP streams through the master, the master powered off). */
export function survival(runs, kind = 'carpd') {
  return inSyncLab(runs, async (lab, { failover }, streams) => {
    const o = await failover(lab, kind, 6000, streams)
    return {
      streams: o.report.bytes.length,
      survived: o.progressed,
      resets: o.report.errorCount,
      worstStallMs: o.worstStallMs,
      takeoverMs: Math.round(o.takeoverMs),
      syncedStates: o.syncedStates,
    }
  })
}

/**
 * Failback after a link loss (issue 11): test/lab/failback.test.ts's first case
 * (every cable of the master out for 10 s at advbase 1, advskew 0 / 100, then back;
 * it preempts) `runs` times. Root only; null otherwise.
 */
export function failbackSurvival(runs) {
  return inSyncLab(runs, async (lab, { failback }, streams) => {
    const o = await failback(lab, ['lan0', 'wan0', 'sync0'], 'advbase1', 10_000, 8000, streams)
    return {
      streams: o.report.bytes.length,
      onBackup: o.progressedOnR2,
      afterFailback: o.progressedOnR1,
      resets: o.report.errorCount,
      failbackMs: Math.round(o.failbackMs),
      failbackAfterBulkMs: o.failbackAfterBulkMs,
    }
  })
}

/** hold-down 0 + two of the backup's advert intervals (advbase 1, advskew 100). */
const FAILBACK_GOAL_MS = 2 * (1000 + (100 * 1000) / 256)

export function failbackRows(runs) {
  if (runs === null) return [['sync: streams surviving a link loss and the failback (needs root)', 'skipped', '', null]]
  const total = runs.reduce((n, r) => n + r.streams, 0)
  const sum = (f) => runs.reduce((n, r) => n + f(r), 0)
  const after = runs.map((r) => r.failbackAfterBulkMs).sort((a, b) => a - b)
  const median = after[Math.floor(after.length / 2)]
  return [
    [
      `sync: streams surviving a 10 s link loss of the master, then its failback (${runs.length} runs)`,
      `${sum((r) => r.onBackup)} / ${sum((r) => r.afterFailback)} of ${total}, ${sum((r) => r.resets)} resets`,
      '100 % / 100 %',
      sum((r) => r.onBackup) === total && sum((r) => r.afterFailback) === total && sum((r) => r.resets) === 0,
    ],
    [
      '  failback after the returning board\'s bulk transfer (median)',
      `${median} ms (${after.join('/')})`,
      `≤ ${Math.round(FAILBACK_GOAL_MS)} ms`,
      median >= 0 && median <= FAILBACK_GOAL_MS,
    ],
  ]
}

export function syncRows(r) {
  return [
    ['sync: changes/s over the sync link (loopback, 1472-byte frames)', `${r.changesPerS}`, '≥ 50,000', r.changesPerS >= 50_000],
    ['sync: CPU per 1,000 changes (sender / receiver)', `${r.cpuMsPer1000.sender} / ${r.cpuMsPer1000.receiver} ms`, '', null],
    [`sync: bulk transfer of ${r.flows} flows`, `${r.bulkMs} ms`, '', null],
    [
      `sync: RSS holding ${r.flows} flows (sender / receiver)`,
      `${r.rssMbHolding.sender} / ${r.rssMbHolding.receiver} MB`,
      '≤ 80 MB',
      Math.max(r.rssMbHolding.sender, r.rssMbHolding.receiver) <= 80,
    ],
    [`  after ${r.changes} changes at full speed`, `${r.rssMbAfter.sender} / ${r.rssMbAfter.receiver} MB`, '', null],
  ]
}

export function survivalRows(runs, who = 'carpd') {
  if (runs === null) return [[`sync: ${who}: connections surviving a master power-off (needs root${who === 'carpd' ? '' : ', keepalived, conntrackd'})`, 'skipped', '', null]]
  const total = runs.reduce((n, r) => n + r.streams, 0)
  const survived = runs.reduce((n, r) => n + r.survived, 0)
  const resets = runs.reduce((n, r) => n + r.resets, 0)
  const stalls = runs.map((r) => r.worstStallMs).sort((a, b) => a - b)
  return [
    [
      `sync: ${who}: TCP streams surviving a master power-off (${runs.length} runs)`,
      `${survived} of ${total}, ${resets} resets; longest stall ${stalls[0]}..${stalls[stalls.length - 1]} ms; takeover ${runs.map((r) => r.takeoverMs).join('/')} ms`,
      who === 'carpd' ? '100 %' : '',
      who === 'carpd' ? survived === total && resets === 0 : null,
    ],
  ]
}

export function kernelRows(k, r) {
  if (k === null) return [['sync: kernel load (needs root)', 'skipped', '', null]]
  return [
    ['sync: load 10k flows into the kernel', `${k.load10k.ms} ms`, '', null],
    ['sync: load 100k flows into the kernel', `${k.load100k.ms} ms`, '≤ 1.5 s', k.load100k.ms <= 1500],
    ['sync: read a table of 100k flows', `${k.snapshot100k.ms} ms`, '', null],
    [
      `sync: load 250k flows into the kernel (nf_conntrack_max here ${k.conntrackMax})`,
      `${k.load250k.ms} ms (${k.load250k.loaded} loaded, conntrack CPU ${k.load250k.cpuS} s)`,
      '≤ 3 s (a promotion commit at board scale)',
      k.load250k.ms <= 3000,
    ],
    ['sync: read a table of 250k flows', `${k.snapshot250k.ms} ms (${k.snapshot250k.flows} flows)`, '', null],
    [
      'sync: backup CPU per 1,000 changes: in memory / into the kernel per frame',
      `${r.cpuMsPer1000.receiver} / ${k.perFrame.cpuMsPer1000} ms`,
      'least CPU: in memory',
      null,
    ],
  ]
}

const installed = (program) => spawnSync('sh', ['-c', `command -v ${program}`]).status === 0

/** Issue 14's churn (test/lab/sync-lab.ts churn()): the pair under 1,000 new UDP flows/s, every process of each router measured. */
const CHURN = { rate: 1000, warmupS: 20, windowS: 60 }

export async function churnBench() {
  if (process.env.CARPD_BENCH_CHURN === '0') return null
  // CARPD_BENCH_PERF=DIR: perf record -g of each router over the window, DIR/{carpd,keepalived}-r{1,2}.perf.data
  const perfDir = process.env.CARPD_BENCH_PERF
  const run = (kind) => inSyncLab(1, (lab, lib) => lib.churn(lab, kind, CHURN.rate, CHURN.warmupS, CHURN.windowS, perfDir))
  const carpd = await run('carpd')
  if (carpd === null) return null
  const keepalived = installed('keepalived') && installed('conntrackd') ? await run('keepalived') : null
  return { ...CHURN, carpd: carpd[0], keepalivedConntrackd: keepalived?.[0] ?? null }
}

export function churnRows(c) {
  if (c === null) return [['sync under churn (1,000 new UDP flows/s)', 'skipped (needs root; CARPD_BENCH_CHURN=0 skips it)', '', null]]
  const pct = (r) => (r.ticks / c.windowS).toFixed(1) // USER_HZ ticks per second = % of a core
  const cpu = (x) => `${pct(x.r1)} % / ${pct(x.r2)} %`
  const k = c.keepalivedConntrackd
  const ratio = k ? (c.carpd.r1.ticks + c.carpd.r2.ticks) / (k.r1.ticks + k.r2.ticks) : NaN
  const parts = (r) => Object.entries(r.byCommand).filter(([, t]) => t > 0).map(([cmd, t]) => `${cmd} ${(t / c.windowS).toFixed(1)}`).join(', ')
  return [
    [
      `sync under churn, ${c.rate} new UDP flows/s: CPU of every process, master / backup (${c.windowS} s)`,
      `carpd ${cpu(c.carpd)} of a core (master: ${parts(c.carpd.r1)}); ${k ? `keepalived + conntrackd ${cpu(k)}; carpd/anchors ${ratio.toFixed(2)}` : 'keepalived + conntrackd not installed'}`,
      '≤ 1.0x keepalived + conntrackd',
      k ? ratio <= 1 : null,
    ],
    [
      'sync under churn: RSS of every process, master / backup',
      `carpd ${c.carpd.r1.rssMb.toFixed(1)} / ${c.carpd.r2.rssMb.toFixed(1)} MB (anon ${c.carpd.r1.anonMb.toFixed(1)} / ${c.carpd.r2.anonMb.toFixed(1)}) (${c.carpd.backupStates} states on the backup, the master read its kernel table ${c.carpd.masterRereads} time(s))${k ? `; keepalived + conntrackd ${k.r1.rssMb.toFixed(1)} / ${k.r2.rssMb.toFixed(1)} MB` : ''}`,
      'master ≤ 60 MB',
      c.carpd.r1.rssMb <= 60,
    ],
  ]
}

/**
 * Issue 14's board scale (test/lab/sync-lab.ts scale()): 250,000 flows in the master's
 * kernel, the backup's bulk transfer, the master powered off and the backup's commit,
 * the master's adverts on the wire meanwhile; at sub-second timing (advskew 26) and at
 * advbase 1. CARPD_BENCH_SCALE=0 skips it, CARPD_BENCH_SCALE_FLOWS sets the size.
 */
const SCALE_FLOWS = Number(process.env.CARPD_BENCH_SCALE_FLOWS ?? 250_000)

export async function scaleBench() {
  if (process.env.CARPD_BENCH_SCALE === '0') return null
  const out = []
  for (const timing of ['subsecond', 'advbase1']) {
    const r = await inSyncLab(1, (lab, lib) => lib.scale(lab, SCALE_FLOWS, timing, process.env.CARPD_BENCH_PERF))
    if (r === null) return null
    out.push(r[0])
  }
  return out
}

export function scaleRows(runs) {
  if (runs === null) return [['sync at board scale', 'skipped (needs root; CARPD_BENCH_SCALE=0 skips it)', '', null]]
  const n = runs[0].flows.toLocaleString('en')
  const timing = (r) => (r.timing === 'subsecond' ? `advskew ${Math.round(((r.intervalMs.r1 * 256) / 1000))}` : 'advbase 1')
  const window = (w, nominal) => `longest advert gap ${w.worstMs} ms of ${nominal} (+${w.jitterPct} %)`
  const jitterOk = runs.every((r) => r.bulk.jitterPct <= 10 && r.commit.jitterPct <= 10)
  return [
    [`sync, ${n} flows: bulk transfer to the backup`, runs.map((r) => `${timing(r)}: ${r.bulk.ms} ms (${r.bulk.states} states)`).join('; '), '≤ 2 s', runs.every((r) => r.bulk.ms <= 2000)],
    [`sync, ${n} flows: promotion commit into the kernel`, runs.map((r) => `${timing(r)}: ${r.commit.ms} ms (${r.commit.loaded} loaded)`).join('; '), '≤ 3 s', runs.every((r) => r.commit.ms <= 3000)],
    [
      `sync, ${n} flows: advert timing on the wire during the bulk transfer / the commit`,
      runs.map((r) => `${timing(r)}: bulk ${window(r.bulk, r.intervalMs.r1)}, commit ${window(r.commit, r.intervalMs.r2)} (quiet: ${window(r.quiet, r.intervalMs.r1)})`).join('; '),
      '≤ +10 % of the interval',
      jitterOk,
    ],
    [`sync, ${n} flows: RSS of carpd, master after the bulk / backup after its commit`, runs.map((r) => `${timing(r)}: ${r.rssMb.r1} / ${r.rssMb.r2} MB`).join('; '), '≤ 150 MB', runs.every((r) => r.rssMb.r1 <= 150 && r.rssMb.r2 <= 150)],
    [`sync, ${n} flows: the master reading its kernel table at start`, runs.map((r) => `${timing(r)}: ${r.readMs} ms`).join('; '), '', null],
  ]
}

export async function syncBench() {
  const throughput = await syncThroughput()
  const kernel = await kernelLoad()
  const runs = Number(process.env.CARPD_BENCH_SYNC_RUNS ?? 3)
  const carpd = await survival(runs)
  const keepalived = carpd !== null && installed('keepalived') && installed('conntrackd') ? await survival(runs, 'keepalived') : null
  const failback = await failbackSurvival(runs)
  const churn = await churnBench()
  const scale = await scaleBench()
  return { throughput, kernel, survival: carpd, keepalivedConntrackd: keepalived, failback, churn, scale }
}

export function syncBenchRows(b) {
  return [
    ...syncRows(b.throughput),
    ...kernelRows(b.kernel, b.throughput),
    ...survivalRows(b.survival),
    ...survivalRows(b.keepalivedConntrackd, 'keepalived + conntrackd'),
    ...failbackRows(b.failback),
    ...(b.churn === undefined ? [] : churnRows(b.churn)),
    ...(b.scale === undefined ? [] : scaleRows(b.scale)),
  ]
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const b = await syncBench()
  for (const [name, v, goal, ok] of syncBenchRows(b)) console.log(`${name.padEnd(72)} ${v.padEnd(50)} ${goal}${ok === null ? '' : ok ? '  met' : '  MISSED'}`)
  console.log(JSON.stringify(b))
}
