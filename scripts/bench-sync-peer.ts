// One side of the sync throughput bench (scripts/bench-sync.mjs bundles this with
// esbuild and runs two of them on loopback). It is carpd's own SyncRuntime over a real
// UDP socket with frames capped at an Ethernet MTU, fed by a synthetic backend.
//
//   node peer.cjs sender PORT PEER_PORT FLOWS CHANGES
//     holds FLOWS flows; on a line on stdin makes CHANGES changes (each a different
//     record) as fast as the link takes them
//   node peer.cjs receiver PORT PEER_PORT
//
// Both print JSON lines: {"side","phase","changesReceived","peerStates","localStates",
// "cpuMs","rssMb","t"} every 100 ms.

import { randomBytes } from 'node:crypto'
import { setFlagsFromString } from 'node:v8'
import { realClock } from '../src/io/clock.js'
import { openUdpTransport } from '../src/io/udp.js'
import type { BackendCounters, FlowChange, SyncBackend } from '../src/sync/backend.js'
import { type Flow, FAMILY_IPV4, PROTO_TCP } from '../src/wire/flow.js'
import { SyncRuntime } from '../src/sync/runtime.js'

// As `carpd run` does (src/main.ts): the young generation stays at its first size.
setFlagsFromString('--semi-space-growth-factor=1')

const [side, portText, peerPortText, flowsText, changesText] = process.argv.slice(2)
const FRAME_BYTES = 1500 - 28
const QUEUE_HIGH = 20_000

function flow(i: number, timeoutS: number): Flow {
  return {
    family: FAMILY_IPV4,
    proto: PROTO_TCP,
    orig: { src: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`, dst: '203.0.113.80', sport: 1024 + (i % 60000), dport: 443 },
    reply: { src: '203.0.113.80', dst: '203.0.113.1', sport: 443, dport: 1024 + (i % 60000) },
    tcpState: 3,
    timeoutS,
    mark: 0,
    zone: 0,
    seenReply: true,
    assured: true,
  }
}

const counters: BackendCounters = { badLines: 0, otherFamily: 0, watchRestarts: 0, loadFailures: 0 }
let emit: (c: FlowChange) => void = () => {}
const flows = Number(flowsText ?? 0)
const backend: SyncBackend = {
  counters,
  watch: (onChange) => void (emit = onChange),
  snapshot: async (onFlow) => {
    for (let i = 0; i < flows; i++) onFlow(flow(i, 432000))
  },
  load: async () => ({ loaded: 0, skipped: 0, failed: 0 }),
  remove: async () => {},
  stop: () => {},
}

const clock = realClock()
const transport = await openUdpTransport({ port: Number(portText), bindAddress: '127.0.0.1', multicastInterfaces: new Map(), recvBufferBytes: 1 << 20 })
const link = new SyncRuntime({
  node: side!,
  key: 'bench sync key',
  peer: { address: '127.0.0.1', port: Number(peerPortText) },
  maxFrameBytes: FRAME_BYTES,
  bulkTimeoutMs: 30_000,
  clock,
  transport,
  backend,
  log: { event: (what: string, msg: string) => process.stderr.write(`${side} ${what} ${msg}\n`) } as never,
  random: randomBytes,
  demote: () => {},
  ignoreAddresses: [],
})
link.start()

let phase = 'bulk'
const report = (): void => {
  const s = link.status()
  const cpu = process.cpuUsage()
  process.stdout.write(
    `${JSON.stringify({
      side,
      phase,
      changesReceived: s.counters.changesReceived,
      changesSent: s.counters.changesSent,
      peerStates: s.states.peer,
      localStates: s.states.local,
      lastIn: s.bulk.lastIn,
      resends: s.counters.resends,
      cpuMs: (cpu.user + cpu.system) / 1000,
      rssMb: process.memoryUsage.rss() / 2 ** 20,
      heapMb: process.memoryUsage().heapUsed / 2 ** 20,
      extMb: process.memoryUsage().external / 2 ** 20,
      heapTotalMb: process.memoryUsage().heapTotal / 2 ** 20,
      t: performance.now(),
    })}\n`,
  )
}
setInterval(report, 100)

if (side === 'sender') {
  const total = Number(changesText)
  let made = 0
  let round = 1
  // Waits until the peer has our table, then changes flows round-robin; each change
  // has a new timeout, so it is a new record the peer must get.
  const pump = (): void => {
    const s = link.status()
    phase = 'changes'
    if (s.lag.queued > QUEUE_HIGH) return void setImmediate(pump)
    for (let n = 0; n < 2000 && made < total; n++, made++) {
      const i = made % Math.max(flows, 1)
      if (i === 0) round++
      emit({ op: 'upsert', flow: flow(i, 432000 - round) })
    }
    if (made < total) setImmediate(pump)
    else phase = 'done'
  }
  // The bench says when: it notes the receiver's count first.
  process.stdin.once('data', () => pump())
}
process.on('SIGINT', () => process.exit(0))
