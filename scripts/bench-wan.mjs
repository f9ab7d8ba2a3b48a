// The multi-WAN section of npm run bench (needs root: network namespaces).
//
// - Time to detect a dead WAN at the default probe settings: in the lab of
//   test/lab/wan-lab.ts an ISP starts dropping everything (silently: its link stays
//   up) and carpd's console says the WAN went offline; median of RUNS.
// - Time to generate and load the rules for 2, 4 and 8 WANs, both flavours: the text
//   made by the same generators carpd runs, then checked and loaded as carpd does
//   (iptables-restore --test then --noflush; nft -c -f then nft -f), in a namespace
//   of its own; median of RUNS.
// - Distribution error: 1,000 new connections through the lab router at weights 3:1.
import { spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { importTs, median } from './bench-lib.mjs'

const root = new URL('..', import.meta.url).pathname
const RUNS = Number(process.env.CARPD_BENCH_WAN_RUNS ?? 3)


const bundle = importTs

/** ms from now until a console line of `proc` after index `from` matches `re`. */
async function lineWithin(proc, from, re, timeoutMs) {
  const start = Date.now()
  while (Date.now() - start < timeoutMs) {
    if (proc.lines.slice(from).some((l) => re.test(l))) return Date.now() - start
    await new Promise((r) => setTimeout(r, 10))
  }
  return NaN
}

async function detection(WanLab) {
  const runs = []
  let share1 = NaN
  for (let i = 0; i < RUNS; i++) {
    const w = new WanLab({ flavour: 'iptables', failbackHold: '10s', carpdPath: join(root, 'build/carpd.js'), toolsPath: join(root, 'test/lab/wan-tools.mjs') })
    try {
      await w.start()
      if (i === 0) {
        const wans = (await w.connect(1000)).filter((x) => x !== null)
        share1 = wans.filter((x) => x === 1).length / wans.length
      }
      await new Promise((r) => setTimeout(r, 1000))
      const from = w.router.lines.length
      w.ispDown('isp2', true)
      runs.push(await lineWithin(w.router, from, /wan2 wan2 (online|degraded)->offline/, 20_000))
    } finally {
      await w.teardown()
    }
  }
  return { detectMs: { median: median(runs), runs: runs.map((x) => Math.round(x)) }, share1 }
}

function wansOf(n) {
  return Array.from({ length: n }, (_, i) => ({
    wan: i + 1,
    interface: `wan${i + 1}`,
    gateway: `198.18.${i + 1}.1`,
    weight: 1 + (i % 3),
    tier: 1,
    probes: [`198.18.${i + 1}.53`],
    probeNeed: 1,
    address: `198.18.${i + 1}.2`,
  }))
}

function loadTimes(rules) {
  const ns = `carpdbench-${process.pid}-${Math.random().toString(16).slice(2, 6)}`
  const dir = mkdtempSync(join(tmpdir(), 'carpd-bench-wan-'))
  const out = {}
  spawnSync('ip', ['netns', 'add', ns])
  try {
    for (const n of [2, 4, 8]) {
      for (const flavour of ['iptables', 'nft']) {
        const runs = []
        for (let i = 0; i < RUNS; i++) {
          const t0 = process.hrtime.bigint()
          const wans = wansOf(n)
          const plan = { mode: 'normal', tier: 1, active: wans.map((w) => ({ wan: w.wan, weight: w.weight })) }
          const set = rules.renderWanSet(flavour, wans, plan)
          const file = join(dir, `${flavour}-${n}`)
          writeFileSync(file, set.text)
          const steps = flavour === 'nft' ? [['nft', '-c', '-f', file], ['nft', '-f', file]] : [['iptables-restore', '--test', '--noflush', file], ['iptables-restore', '--noflush', file]]
          for (const argv of steps) {
            const r = spawnSync('ip', ['netns', 'exec', ns, ...argv], { encoding: 'utf8' })
            if (r.status !== 0) throw new Error(`${argv.join(' ')}: ${r.stderr}`)
          }
          runs.push(Number(process.hrtime.bigint() - t0) / 1e6)
        }
        out[`${flavour} ${n}`] = { medianMs: median(runs), runsMs: runs.map((x) => Number(x.toFixed(1))) }
      }
    }
  } finally {
    spawnSync('ip', ['netns', 'del', ns])
    rmSync(dir, { recursive: true, force: true })
  }
  return out
}

export async function wanBench() {
  if (process.getuid?.() !== 0) return { skipped: 'needs root (network namespaces)' }
  const rules = await bundle('src/wan/rules/index.ts', 'wan-rules.mjs')
  const { WanLab } = await bundle('test/lab/wan-lab.ts', 'wan-lab.mjs')
  const load = loadTimes(rules)
  const det = await detection(WanLab)
  return { runs: RUNS, load, ...det }
}

export function wanRows(r) {
  if (r.skipped) return [['multi-WAN', `skipped: ${r.skipped}`, '', null]]
  const ms = (x) => `${x.toFixed(1)} ms`
  const rows = [
    [
      'dead WAN detected (defaults: probe every 250 ms, timeout 1 s, 6 failed rounds in a row)',
      `${Math.round(r.detectMs.median)} ms (runs ${r.detectMs.runs.join('/')})`,
      '≤ 3 s',
      r.detectMs.median <= 3000,
    ],
  ]
  for (const n of [2, 4, 8]) {
    const i = r.load[`iptables ${n}`]
    const f = r.load[`nft ${n}`]
    rows.push([`rules for ${n} WANs generated, checked and loaded: iptables / nft`, `${ms(i.medianMs)} / ${ms(f.medianMs)}`, n === 8 ? '≤ 100 ms' : '', n === 8 ? Math.max(i.medianMs, f.medianMs) <= 100 : null])
  }
  const err = Math.abs(r.share1 - 0.75) * 100
  rows.push(['distribution of 1,000 new connections at weights 3:1', `${(r.share1 * 100).toFixed(1)} % on WAN 1 (error ${err.toFixed(1)} points)`, '± 5 %', err <= 5])
  return rows
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const r = await wanBench()
  for (const row of wanRows(r)) process.stdout.write(`${row[0]}: ${row[1]}  ${row[2]}${row[3] === null ? '' : row[3] ? ' met' : ' MISSED'}\n`)
  process.stdout.write(JSON.stringify(r) + '\n')
}
