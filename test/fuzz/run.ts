// `npm run fuzz -- [--inputs N] [--seed S] [--target NAME]`: mutation-based fuzzing of
// every target in targets.ts. Each input is a seed (or a splice of two) mutated a few
// times, re-signed half of the time where the format has an HMAC or checksum; a
// failure is an exception, a check that fails, or one input taking longer than
// SLOW_MS each of three times. Deterministic from --seed: a failure prints the input in hex to replay.
import { prng } from '../helpers/prng.js'
import { TARGETS, type Target } from './targets.js'

export const SLOW_MS = 100

export interface FuzzResult {
  target: string
  inputs: number
  failures: { input: string; problem: string }[]
  slowestMs: number
  accepted: number // decoded as valid
}

function mutate(seeds: readonly Buffer[], r: () => number): Buffer {
  const pick = () => seeds[Math.floor(r() * seeds.length)]!
  let b = Buffer.from(pick())
  const rounds = 1 + Math.floor(r() * 4)
  for (let i = 0; i < rounds; i++) {
    const at = Math.floor(r() * (b.length + 1))
    switch (Math.floor(r() * 9)) {
      case 0: // flip a bit
        if (b.length) b[at % b.length]! ^= 1 << Math.floor(r() * 8)
        break
      case 1: // an interesting byte
        if (b.length) b[at % b.length] = [0, 0xff, 0x7f, 0x80, 0x20, 0x0a, 0x0d, 0x3d, 0x2c][Math.floor(r() * 9)]!
        break
      case 2: // delete a run
        b = Buffer.concat([b.subarray(0, at), b.subarray(at + 1 + Math.floor(r() * 8))])
        break
      case 3: // insert random bytes
        b = Buffer.concat([b.subarray(0, at), Buffer.from(Array.from({ length: 1 + Math.floor(r() * 8) }, () => Math.floor(r() * 256))), b.subarray(at)])
        break
      case 4: // duplicate a chunk
        b = Buffer.concat([b.subarray(0, at), b.subarray(at, at + 1 + Math.floor(r() * 16)), b.subarray(at)])
        break
      case 5: // truncate
        b = b.subarray(0, at)
        break
      case 6: // splice with another seed
        b = Buffer.concat([b.subarray(0, at), pick().subarray(Math.floor(r() * pick().length))])
        break
      case 7: // a 16- or 32-bit edge value
        if (b.length >= 4) {
          const v = [0, 1, 0xffff, 0x7fff, 0x8000, 0xffffffff, 0x7fffffff][Math.floor(r() * 7)]!
          const o = at % (b.length - 3)
          if (v > 0xffff) b.writeUInt32BE(v, o)
          else b.writeUInt16BE(v, o)
        }
        break
      default: // grow (length limits)
        if (r() < 0.1) b = Buffer.concat([b, Buffer.alloc(Math.floor(r() * 70_000), b[0] ?? 0x41)])
    }
  }
  return b
}

/**
 * A slow input is timed twice more: a hang or a blow-up is slow every time, a
 * garbage collection or a busy machine once (config inputs of 300 bytes took 100 to
 * 300 ms in a 1 M run on a loaded machine, and 0.2 to 1.6 ms each when run again).
 */
function retimed(target: Target, input: Buffer): number[] {
  return [0, 1].map(() => {
    const t0 = performance.now()
    target.check(input)
    return performance.now() - t0
  })
}

export function fuzzTarget(target: Target, inputs: number, seed: number): FuzzResult {
  const r = prng(seed)
  const result: FuzzResult = { target: target.name, inputs: 0, failures: [], slowestMs: 0, accepted: 0 }
  const one = (input: Buffer): void => {
    const t0 = performance.now()
    let problem: string | null
    try {
      const outcome = target.check(input)
      problem = outcome.problem
      if (outcome.decoded) result.accepted++
    } catch (err) {
      problem = `threw: ${(err as Error).stack?.split('\n').slice(0, 3).join(' | ') ?? err}`
    }
    let ms = performance.now() - t0
    if (ms > SLOW_MS && problem === null) ms = Math.min(ms, ...retimed(target, input))
    result.slowestMs = Math.max(result.slowestMs, ms)
    if (ms > SLOW_MS) problem ??= `took ${ms.toFixed(0)} ms`
    if (problem !== null && result.failures.length < 10) result.failures.push({ input: input.subarray(0, 512).toString('hex'), problem })
    result.inputs++
  }
  for (const s of target.seeds) one(s)
  while (result.inputs < inputs) {
    let input = mutate(target.seeds, r)
    if (target.resign && r() < 0.5) input = target.resign(input)
    one(input)
  }
  return result
}

function parse(argv: readonly string[]): { inputs: number; seed: number; target: string | null } | string {
  const o = { inputs: 1_000_000, seed: 1, target: null as string | null }
  for (let i = 0; i < argv.length; i += 2) {
    const [flag, value] = [argv[i], argv[i + 1]]
    if (value === undefined) return `${flag} needs a value`
    if (flag === '--inputs' && /^\d+$/.test(value)) o.inputs = Number(value)
    else if (flag === '--seed' && /^\d+$/.test(value)) o.seed = Number(value)
    else if (flag === '--target') o.target = value
    else return `bad option ${flag} ${value} (--inputs N, --seed S, --target NAME)`
  }
  return o
}

if (process.argv[1] !== undefined && /fuzz-run\.mjs$|fuzz\/run\.ts$/.test(process.argv[1])) {
  const o = parse(process.argv.slice(2))
  if (typeof o === 'string') {
    process.stderr.write(`fuzz: ${o}\n`)
    process.exit(1)
  }
  const targets = TARGETS.filter((t) => o.target === null || t.name === o.target)
  if (targets.length === 0) {
    process.stderr.write(`fuzz: no target ${o.target} (${TARGETS.map((t) => t.name).join(', ')})\n`)
    process.exit(1)
  }
  let failed = 0
  for (const target of targets) {
    const t0 = performance.now()
    const r = fuzzTarget(target, o.inputs, o.seed)
    failed += r.failures.length
    process.stdout.write(`${target.name.padEnd(22)} ${r.inputs} inputs in ${((performance.now() - t0) / 1000).toFixed(1)} s, ${r.accepted} decoded as valid, slowest ${r.slowestMs.toFixed(1)} ms, ${r.failures.length} failures\n`)
    for (const f of r.failures) process.stdout.write(`  ${f.problem}\n    input: ${f.input}\n`)
  }
  process.exit(failed > 0 ? 1 : 0)
}
