// The kernel side of the sync bench (scripts/bench-sync.mjs bundles this with esbuild
// and runs it as root): carpd's conntrack backend loading flows into the table of a
// network namespace the caller created.
//
//   node load.mjs NAMESPACE
//
// Prints one JSON object: load times for 10k, 100k and 250k flows (one promotion's
// worth, conntrackd's way), a snapshot of 100k and of 250k, nf_conntrack_max, and the cost of loading flows as they arrive
// (pfsync's way: a `conntrack -R` per received frame of 35 flows), with the CPU the
// conntrack processes used (from /proc/self/stat: children's user+system time).

import { readFileSync } from 'node:fs'
import { execFileSync } from 'node:child_process'
import { conntrackBackend } from '../src/platform/conntrack.js'
import { type Flow, FAMILY_IPV4, PROTO_TCP } from '../src/wire/flow.js'

const ns = process.argv[2]!
const TICKS_PER_S = 100

function flow(i: number): Flow {
  const port = 1024 + (i % 60000)
  const server = `203.0.113.${1 + (Math.floor(i / 60000) % 200)}`
  return {
    family: FAMILY_IPV4,
    proto: PROTO_TCP,
    orig: { src: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`, dst: server, sport: 40000 + (i % 20000), dport: 443 },
    reply: { src: server, dst: '198.51.100.1', sport: 443, dport: port },
    tcpState: 3,
    timeoutS: 432000,
    mark: 0,
    zone: 0,
    seenReply: true,
    assured: true,
  }
}

const flows = (n: number, from = 0): Flow[] => Array.from({ length: n }, (_, i) => flow(from + i))

/** CPU seconds of this process's finished children (conntrack runs). */
function childCpuS(): number {
  const fields = readFileSync('/proc/self/stat', 'utf8').split(') ')[1]!.split(' ')
  return (Number(fields[13]) + Number(fields[14])) / TICKS_PER_S
}

const backend = conntrackBackend({ log: { event: () => {} } as never, prefix: ['ip', 'netns', 'exec', ns] })
const flush = (): void => void execFileSync('ip', ['netns', 'exec', ns, 'conntrack', '-F'], { stdio: 'ignore' })

async function timedLoad(list: Flow[]): Promise<{ ms: number; loaded: number; cpuS: number }> {
  flush()
  const cpu0 = childCpuS()
  const t0 = performance.now()
  const r = await backend.load(list)
  return { ms: Math.round(performance.now() - t0), loaded: r.loaded, cpuS: +(childCpuS() - cpu0).toFixed(2) }
}

/** Reads the whole table back, as after lost events. */
async function timedRead(): Promise<{ ms: number; flows: number }> {
  const t0 = performance.now()
  let seen = 0
  await backend.snapshot(() => void seen++)
  return { ms: Math.round(performance.now() - t0), flows: seen }
}

const load10k = await timedLoad(flows(10_000))
const load100k = await timedLoad(flows(100_000))
const snapshot100k = await timedRead()
// Board scale: nf_conntrack_max of a 2-4 GB board (the kernel's default is its hash
// buckets, RAM / 16 KiB: 131,072 at 2 GB, 262,144 from 4 GB on).
const conntrackMax = Number(readFileSync('/proc/sys/net/netfilter/nf_conntrack_max', 'utf8'))
const load250k = await timedLoad(flows(250_000))
const snapshot250k = await timedRead()

// pfsync's way: every frame of 35 records goes into the kernel as it arrives.
flush()
const FRAME = 35
const ARRIVING = 3500
const cpu0 = childCpuS()
const t1 = performance.now()
for (let i = 0; i < ARRIVING; i += FRAME) await backend.load(flows(FRAME, 500_000 + i))
const perFrame = {
  flows: ARRIVING,
  ms: Math.round(performance.now() - t1),
  cpuMsPer1000: Math.round(((childCpuS() - cpu0) * 1000) / (ARRIVING / 1000)),
}
backend.stop()
process.stdout.write(`${JSON.stringify({ load10k, load100k, snapshot100k, conntrackMax, load250k, snapshot250k, perFrame })}\n`)
