// Two boards (daemon/board.ts) with split-brain protection on a fake clock: CARP on the in-memory LAN,
// heartbeats and votes on an in-memory sync link and serial line, and an in-memory
// witness (the real WitnessCore). Every path can be cut on its own, and a watcher
// records who holds the VIP after every millisecond step.
import { Board } from '../../src/daemon/board.js'
import type { Config, VhidConfig } from '../../src/config/types.js'
import type { Logger } from '../../src/io/log.js'
import type { SerialStatus } from '../../src/platform/serial.js'
import type { QuorumRuntime } from '../../src/quorum/runtime.js'
import type { Fence } from '../../src/platform/fence.js'
import { WitnessCore } from '../../src/quorum/witness.js'
import { LineReader } from '../../src/wire/heartbeat.js'
import { senderId } from '../../src/wire/ids.js'
import { decodeVote, encodeVote } from '../../src/wire/vote.js'
import { makeConfig, memIo, RecordingPlatform, vhidConfig } from './agents.js'
import { FakeClock } from './clock.js'
import { MemNet } from './net.js'

export const WITNESS = { address: '192.0.2.50', port: 8241 }
export const WITNESS_KEY = 'witness-secret'
const SYNC_PORT = 8242
const SERIAL_LATENCY_MS = 5

export interface PairNode {
  name: string
  lan: string
  syncAddress: string
  /** The whole board (its CARP agent, status and control). */
  agent: Board
  quorum: QuorumRuntime
  platform: RecordingPlatform
  lines: string[]
  serialCut: boolean
  /** VIP addresses this node holds now, as its platform calls say. */
  holds: Set<string>
  /** SIGSTOP: timers and datagrams wait in `queued` until thawed; the clock runs on. */
  frozen: boolean
  queued: (() => void)[]
  /** What the node told its fence, when the pair has fences. */
  fence: string[]
}

export interface PairOptions {
  witness?: boolean
  serial?: boolean
  sync?: boolean
  leaseMs?: number
  vhid?: Partial<VhidConfig>
  advskew?: [number, number]
  preempt?: boolean
  /** How many vhids each node runs (vhid 1, 2...: one VIP each on the LAN; default 1). */
  vhids?: number
  /** Attach a recording fence to each node. */
  fence?: boolean
}

export class QuorumPair {
  readonly clock = new FakeClock(0)
  readonly net = new MemNet(this.clock, 1)
  readonly nodes: PairNode[] = []
  private readonly readers = new Map<string, LineReader>()
  witness: WitnessCore | null = null
  witnessLines: string[] = []
  witnessDown = false
  /** Longest time both nodes held the VIP at once, and the total. */
  dualMs = 0
  private dualRunMs = 0

  /** Starts counting dual holding afresh (the current run of it included). */
  resetDual(): void {
    this.dualMs = this.maxDualMs = this.dualRunMs = 0
  }
  maxDualMs = 0

  constructor(private readonly opts: PairOptions = {}) {
    if (opts.witness ?? true) this.startWitness()
    const names = ['fw-a', 'fw-b']
    const skews = opts.advskew ?? [0, 100]
    for (let i = 0; i < 2; i++) this.nodes.push(this.makeNode(names[i]!, i, skews[i]!))
  }

  /** A (re)started witness: a new WitnessCore, so it keeps the restart silence. */
  startWitness(): void {
    const core = new WitnessCore({ epoch: (this.witness ? 2 : 1), maxLeaseMs: this.opts.leaseMs ?? 3000, startMs: this.clock.now(), senderId: senderId('witness') })
    this.witness = core
    const t = this.net.transport(WITNESS)
    t.onPacket((bytes, from) => {
      if (this.witnessDown || this.witness !== core) return
      const d = decodeVote(bytes, WITNESS_KEY)
      if (!d.ok) return
      const r = core.receive(d.msg, this.clock.now())
      if (r.log) this.witnessLines.push(r.log)
      if (r.reply) void t.send(encodeVote(r.reply, WITNESS_KEY), from)
    })
  }

  private makeNode(name: string, i: number, advskew: number): PairNode {
    const lan = `192.0.2.${11 + i}`
    const syncAddress = `198.51.100.${1 + i}`
    const peerSync = `198.51.100.${2 - i}`
    const o = this.opts
    const vhids = Array.from({ length: o.vhids ?? 1 }, (_, k) => vhidConfig({ vhid: k + 1, vips: [{ address: `192.0.2.${1 + k * 100}`, prefix: 24 }], advskew, ...o.vhid }))
    const config: Config = makeConfig(name, vhids, { preempt: o.preempt ?? true })
    config.sync = { ...config.sync, interface: o.sync === false ? '' : 'sync0', peer: { address: peerSync, port: SYNC_PORT }, key: 'sync-secret' }
    config.witness = { ...config.witness, address: o.witness === false ? null : WITNESS, key: WITNESS_KEY, leaseMs: o.leaseMs ?? 3000 }
    const lines: string[] = []
    const log: Logger = { event: (sub, msg) => lines.push(`${(this.clock.now() / 1000).toFixed(3)} ${sub} ${msg}`) }
    const platform = new RecordingPlatform()
    let draws = 0
    const random = (n: number) => {
      const b = Buffer.alloc(n)
      for (let k = 0; k < n; k++) b[k] = (i * 97 + draws * 31 + k * 7 + 1) & 0xff
      draws++
      return b
    }
    const holder: { node?: PairNode } = {}
    const gate = (fn: () => void) => () => (holder.node!.frozen ? holder.node!.queued.push(fn) : fn())
    const shared = this.clock
    const clock = { now: () => shared.now(), wall: () => shared.wall(), at: (at: number, fn: () => void) => shared.at(at, gate(fn)) }
    const gated = (tr: ReturnType<MemNet['transport']>) => ({
      ...tr,
      onPacket: (h: Parameters<typeof tr.onPacket>[0]) => tr.onPacket((p, from) => gate(() => h(p, from))()),
    })
    const node: PairNode = { name, lan, syncAddress, agent: null as never, quorum: null as never, platform, lines, serialCut: false, holds: new Set(), frozen: false, queued: [], fence: [] }
    holder.node = node
    const reader = new LineReader()
    const serialStatus = (): SerialStatus => ({ device: '/dev/mem', open: true, opens: 1, writeErrors: 0, notOpen: 0, reader: reader.counters })
    const serial = o.serial === false ? null : {
      send: (line: string) => {
        const peer = this.nodes[1 - i]
        if (!peer || node.serialCut || peer.serialCut) return
        this.clock.at(this.clock.now() + SERIAL_LATENCY_MS, () => {
          if (node.serialCut || peer.serialCut) return
          const deliver = () => {
            for (const f of this.readers.get(peer.name)!.push(Buffer.from(line))) peer.quorum.onSerialFrame(f)
          }
          if (peer.frozen) peer.queued.push(deliver)
          else deliver()
        })
      },
      status: serialStatus,
    }
    this.readers.set(name, reader)
    const net = { address: lan, prefix: 24 }
    const fence: Fence = {
      hold: (vhid, atMs, iface, vips) => node.fence.push(`hold ${vhid} ${Math.round(atMs)} ${iface} ${vips.map((v) => v.address).join(',')}`),
      drop: (vhid) => void node.fence.push(`drop ${vhid}`),
      close: () => void node.fence.push('close'),
    }
    config.serial = { ...config.serial, device: serial ? '/dev/mem' : '' }
    const io = {
      ...memIo(platform, net),
      serialPort: () => ({ ...serial!, start: () => {}, close: async () => {} }),
      spawnFence: () => (o.fence ? fence : null),
    }
    node.agent = new Board(
      { config, clock, log, random, io },
      {
        carp: gated(this.net.transport({ address: lan, port: 8240 })),
        sync: o.sync === false ? null : gated(this.net.transport({ address: syncAddress, port: SYNC_PORT })),
        witness: o.witness === false ? null : gated(this.net.transport({ address: lan, port: 40000 })),
        nets: new Map([['lan0', net]]),
      },
    )
    node.quorum = node.agent.quorum!
    return node
  }

  start(): void {
    for (const n of this.nodes) void n.agent.start()
  }

  node(name: string): PairNode {
    return this.nodes.find((n) => n.name === name)!
  }

  state(name: string, vhid = 1): string | undefined {
    return this.node(name).agent.status().vhids.find((v) => v.vhid === vhid)?.state
  }

  holders(): string[] {
    return this.nodes.filter((n) => n.holds.size > 0).map((n) => n.name)
  }

  /** Cuts (or mends) a node's LAN, sync link, serial line or path to the witness. */
  cut(name: string, path: 'lan' | 'sync' | 'serial' | 'witness', cut = true): void {
    const n = this.node(name)
    if (path === 'lan') this.net.cut({ address: n.lan, port: 8240 }, cut)
    if (path === 'sync') this.net.cut({ address: n.syncAddress, port: SYNC_PORT }, cut)
    if (path === 'serial') n.serialCut = cut
    if (path === 'witness' && this.opts.witness !== false) this.net.cut({ address: n.lan, port: 40000 }, cut)
  }

  freeze(name: string): void {
    this.node(name).frozen = true
  }

  /** SIGCONT: what waited runs now, in the order it came. */
  thaw(name: string): void {
    const n = this.node(name)
    n.frozen = false
    for (const fn of n.queued.splice(0)) fn()
  }

  /** Everything of a node cut at once: it is powered off, as far as the others can tell. */
  powerOff(name: string): void {
    for (const p of ['lan', 'sync', 'serial', 'witness'] as const) this.cut(name, p)
  }

  /**
   * Runs `ms` of fake time in 1 ms steps, tracking VIP holders from the platform calls
   * (which the recording platform settles at once) and the longest dual holding.
   */
  async run(ms: number): Promise<void> {
    for (let i = 0; i < ms; i++) {
      this.clock.advance(1)
      await new Promise((r) => setImmediate(r))
      for (const n of this.nodes) this.replay(n)
      if (this.holders().length > 1) {
        this.dualRunMs++
        this.dualMs++
        this.maxDualMs = Math.max(this.maxDualMs, this.dualRunMs)
      } else {
        this.dualRunMs = 0
      }
    }
  }

  private replay(n: PairNode): void {
    n.holds.clear()
    for (const call of n.platform.calls) {
      const [kind, , vip] = call.split(' ')
      if (kind === 'add') n.holds.add(vip!)
      if (kind === 'del') n.holds.delete(vip!)
    }
  }
}

