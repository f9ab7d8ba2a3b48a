// `npm run sim -- --seeds N [--seed S] [--seconds T] [--shrink] [--keep I,J,...] [--no-skew]`: runs
// seeds S, S+1, ... through the simulated pair (world.ts) and reports every invariant
// violation with the seed's schedule, which replays exactly with --seed. --shrink
// also cuts a failing schedule down to the faults it needs; --keep replays a seed
// with only those faults (as --shrink prints it). --no-skew starts both boards at 0
// in every seed (the schedules seeds had before start skews were drawn).
import { type SimResult, faultText, shrink, simulate, witnessBoundMs } from './world.js'

export interface Budget {
  firstSeed: number
  seeds: number
  seconds: number
  shrink?: boolean
  keep?: number[]
  /** false: --no-skew. */
  startSkew?: boolean
}

const USAGE = '--seeds N, --seed S, --seconds T, --shrink, --keep I,J,..., --no-skew'

export function parseBudget(argv: readonly string[]): Budget | string {
  const b: Budget = { firstSeed: 1, seeds: 100, seconds: 120 }
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i]
    if (flag === '--shrink') {
      b.shrink = true
      continue
    }
    if (flag === '--no-skew') {
      b.startSkew = false
      continue
    }
    if (flag === '--keep') {
      const list = (argv[i + 1] ?? '').split(',').filter(Boolean).map(Number)
      if (list.length === 0 || !list.every((n) => Number.isInteger(n) && n >= 0)) return '--keep needs fault numbers, such as 0,3,5'
      b.keep = list
      i++
      continue
    }
    const value = Number(argv[i + 1])
    if (!Number.isInteger(value) || value < 0) return `${flag} needs a whole number`
    if (flag === '--seeds') b.seeds = value
    else if (flag === '--seed') [b.firstSeed, b.seeds] = [value, argv.includes('--seeds') ? b.seeds : 1]
    else if (flag === '--seconds') b.seconds = value
    else return `unknown option ${flag} (${USAGE})`
    i++
  }
  return b
}

export function report(r: SimResult): string {
  const s = r.scenario
  return [
    `seed ${s.seed}: ${r.violations.length} violation(s); ${s.mode}, advbase ${s.advbaseS} advskew ${s.advskew.join('/')}, preempt ${s.preempt ? 'on' : 'off'}, lease ${s.leaseMs} ms, heartbeat ${s.heartbeat.intervalMs}/${s.heartbeat.timeoutMs} ms${s.startMs.some((ms) => ms > 0) ? `, carpd starts at ${s.startMs.map((ms) => (ms / 1000).toFixed(3)).join('/')} s` : ''}`,
    ...r.violations.map((v) => `  VIOLATION at ${(v.atMs / 1000).toFixed(3)}s: ${v.what}`),
    '  faults:',
    ...s.faults.map((f, i) => `    ${r.kept ? `#${r.kept[i]} ` : ''}${faultText(f)}`),
    ...(r.violations.length > 0 ? ['  console, the 3 s before the first violation:', ...linesBefore(r, r.violations[0]!.atMs).map((l) => `    ${l}`)] : []),
    `  replay: npm run sim -- --seed ${s.seed} --seconds ${s.durationMs / 1000}${r.kept ? ` --keep ${r.kept.join(',')}` : ''}${s.noSkew ? ' --no-skew' : ''}`,
  ].join('\n')
}

function linesBefore(r: SimResult, atMs: number): string[] {
  return r.lines.filter((l) => {
    const t = Number(l.slice(0, l.indexOf(' '))) * 1000
    return t >= atMs - 3000 && t <= atMs + 100 && !/ heartbeat /.test(l)
  }).slice(-40)
}

export interface Totals {
  seeds: number
  failed: number[]
  simulatedS: number
  faultS: number
  events: number
  /** witnessFast: scenarios whose commands are never slowed beyond the lease margin (the bound is 0 there). */
  maxOverlapMs: { witness: number; witnessFast: number; twoNode: number }
  maxSettleMs: number
  /** Live flows at the ends of the runs, and those whose newest state the master lacked then (reported, not a failure yet). */
  flows: { live: number; stale: number; seedsWithStale: number }
  /** Takeover commits checked by invariant (c). */
  commits: number
  wallMs: number
}

export async function runBudget(b: Budget, onFail: (text: string) => void = () => {}): Promise<Totals> {
  const t0 = performance.now()
  const totals: Totals = { seeds: 0, failed: [], simulatedS: 0, faultS: 0, events: 0, maxOverlapMs: { witness: 0, witnessFast: 0, twoNode: 0 }, maxSettleMs: 0, flows: { live: 0, stale: 0, seedsWithStale: 0 }, commits: 0, wallMs: 0 }
  for (let seed = b.firstSeed; seed < b.firstSeed + b.seeds; seed++) {
    const r: SimResult = { ...(await simulate(seed, b.seconds * 1000, b.keep, b.startSkew ?? true)), kept: b.keep }
    totals.seeds++
    totals.simulatedS += b.seconds
    totals.faultS += r.scenario.faults.reduce((sum, f) => sum + ('forMs' in f ? f.forMs : 0), 0) / 1000
    totals.events += r.events
    const key = r.scenario.mode === 'witness' ? 'witness' : 'twoNode'
    totals.maxOverlapMs[key] = Math.max(totals.maxOverlapMs[key], r.maxOverlapMs)
    if (key === 'witness' && witnessBoundMs(r.scenario) === 0) totals.maxOverlapMs.witnessFast = Math.max(totals.maxOverlapMs.witnessFast, r.maxOverlapMs)
    if (r.settledAtMs !== null) totals.maxSettleMs = Math.max(totals.maxSettleMs, r.settledAtMs)
    totals.commits += r.commits
    totals.flows.live += r.flows.live
    totals.flows.stale += r.flows.stale
    if (r.flows.stale > 0) totals.flows.seedsWithStale++
    if (r.violations.length > 0) {
      totals.failed.push(seed)
      onFail(report(r))
      if (b.shrink && !b.keep) {
        const small = await shrink(seed, b.seconds * 1000, undefined, b.startSkew ?? true)
        onFail(`  shrunk to ${small.keep.length} of ${r.scenario.faults.length} faults:\n${report({ ...small.result, kept: small.keep })}`)
      }
    }
  }
  totals.wallMs = performance.now() - t0
  return totals
}

const isMain = process.argv[1] !== undefined && /run\.(ts|mjs)$/.test(process.argv[1])
if (isMain) {
  const b = parseBudget(process.argv.slice(2))
  if (typeof b === 'string') {
    process.stderr.write(`sim: ${b}\n`)
    process.exit(1)
  }
  const totals = await runBudget(b, (text) => process.stdout.write(`${text}\n`))
  process.stdout.write(
    `sim: ${totals.seeds} seeds x ${b.seconds} s = ${totals.simulatedS} simulated s (${Math.round(totals.faultS)} fault-seconds), ` +
      `${totals.events} events in ${(totals.wallMs / 1000).toFixed(1)} s; ${totals.failed.length} failed${totals.failed.length ? ` (seeds ${totals.failed.join(', ')})` : ''}; ` +
      `longest two-holder overlap: witness ${totals.maxOverlapMs.witnessFast} ms (${totals.maxOverlapMs.witness} ms where \`ip addr del\` was slowed past the lease margin), two-node ${totals.maxOverlapMs.twoNode} ms; longest settle after the faults ${totals.maxSettleMs} ms; ` +
      `takeover commits checked: ${totals.commits}; flows at the end: ${totals.flows.live} live, ${totals.flows.stale} without their newest state in the master's table (${totals.flows.seedsWithStale} seeds; states that never reached the master: reported)\n`,
  )
  process.exit(totals.failed.length > 0 ? 1 : 0)
}
