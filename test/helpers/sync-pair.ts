// Two sync engines joined by a simulated link in one process: time moves by hand
// (1 ms steps), frames arrive after a latency, and a test can drop, duplicate or
// reorder them.

import { type SyncAction, SyncEngine, type SyncEngineOptions } from '../../src/sync/engine.js'
import { type Flow, FAMILY_IPV4, PROTO_TCP } from '../../src/wire/flow.js'
import { encodeFlowRecord, encodeKeyRecord } from '../../src/wire/sync.js'
import { senderId } from '../../src/wire/ids.js'

export type Side = 'a' | 'b'
export const KEY = 'sync secret'

/** A deterministic flow: client 192.0.2.x:port → server, source-NATed to 198.51.100.1. */
export function flow(i: number, timeoutS = 300, tcpState = 3): Flow {
  const client = `192.0.2.${(i % 250) + 1}`
  const sport = 1024 + Math.floor(i / 250)
  return {
    family: FAMILY_IPV4,
    proto: PROTO_TCP,
    orig: { src: client, dst: '203.0.113.80', sport, dport: 80 },
    reply: { src: '203.0.113.80', dst: '198.51.100.1', sport: 80, dport: 20000 + (i % 40000) },
    tcpState,
    timeoutS,
    mark: 0,
    zone: 0,
    seenReply: true,
    assured: true,
  }
}

export const record = (f: Flow): string => encodeFlowRecord(f).toString('latin1')
export const key = (f: Flow): string => encodeKeyRecord(f).toString('latin1')

/** A tiny deterministic PRNG, so lossy runs are repeatable. */
export function prng(seed: number): () => number {
  let s = seed >>> 0
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0
    return s / 2 ** 32
  }
}

interface InFlight {
  to: Side
  bytes: Buffer
  atMs: number
}

export class SyncPair {
  now = 1000
  latencyMs = 1
  /** Decides the fate of each datagram; default deliver. */
  fate: (to: Side, bytes: Buffer) => 'deliver' | 'drop' | 'duplicate' = () => 'deliver'
  readonly wire: InFlight[] = []
  readonly logs: Record<Side, string[]> = { a: [], b: [] }
  readonly demotes: Record<Side, number[]> = { a: [], b: [] }
  /** Every datagram each side sent, for replay tests. */
  readonly sent: Record<Side, Buffer[]> = { a: [], b: [] }
  a: SyncEngine
  b: SyncEngine
  private readonly rand = prng(7)

  constructor(private readonly opts: Partial<SyncEngineOptions> = {}) {
    this.a = this.make('a')
    this.b = this.make('b')
  }

  make(side: Side, extra: Partial<SyncEngineOptions> = {}): SyncEngine {
    return new SyncEngine({
      key: KEY,
      sender: senderId(`fw-${side}`),
      maxFrameBytes: 1472,
      bulkTimeoutMs: 30_000,
      random32: () => Math.floor(this.rand() * 2 ** 32),
      ...this.opts,
      ...extra,
    })
  }

  engine(side: Side): SyncEngine {
    return side === 'a' ? this.a : this.b
  }

  /** Starts both sides with their tables read (a has `flows`). */
  start(aFlows: Flow[] = [], bFlows: Flow[] = []): void {
    for (const [side, flows] of [['a', aFlows], ['b', bFlows]] as const) {
      const e = this.engine(side)
      this.handle(side, e.start(this.now))
      e.snapshotBegin()
      for (const f of flows) this.handle(side, e.localUpsert(record(f), this.now))
      this.handle(side, e.snapshotEnd(this.now))
    }
  }

  handle(side: Side, actions: SyncAction[]): void {
    const other: Side = side === 'a' ? 'b' : 'a'
    for (const action of actions) {
      switch (action.type) {
        case 'send':
          this.sent[side].push(action.bytes)
          this.wire.push({ to: other, bytes: action.bytes, atMs: this.now + this.latencyMs })
          break
        case 'log':
          this.logs[side].push(action.message)
          break
        case 'demote':
          this.demotes[side].push(action.value)
          break
      }
    }
  }

  deliver(to: Side, bytes: Buffer, fromPeer = true): void {
    this.handle(to, this.engine(to).receive(bytes, fromPeer, this.now))
  }

  upsert(side: Side, f: Flow): void {
    this.handle(side, this.engine(side).localUpsert(record(f), this.now))
  }

  remove(side: Side, f: Flow): void {
    this.handle(side, this.engine(side).localDelete(key(f), this.now))
  }

  /** Runs `ms` of simulated time in 1 ms steps. */
  run(ms: number): void {
    const end = this.now + ms
    while (this.now < end) {
      this.now++
      const due = this.wire.filter((w) => w.atMs <= this.now)
      for (const w of due) this.wire.splice(this.wire.indexOf(w), 1)
      for (const w of due) {
        const fate = this.fate(w.to, w.bytes)
        if (fate === 'drop') continue
        this.deliver(w.to, w.bytes)
        if (fate === 'duplicate') this.deliver(w.to, w.bytes)
      }
      for (const side of ['a', 'b'] as const) {
        const e = this.engine(side)
        if (e.nextWakeMs() <= this.now) this.handle(side, e.tick(this.now))
      }
    }
  }

  /** Randomly loses a fraction of the datagrams (deterministic). */
  lossy(fraction: number): void {
    this.fate = () => (this.rand() < fraction ? 'drop' : 'deliver')
  }
}

/** The peer's copy equals the source's own table, record for record. */
export function sameTable(source: Map<string, string>, copy: Map<string, string>): boolean {
  if (source.size !== copy.size) return false
  for (const [k, v] of source) if (copy.get(k) !== v) return false
  return true
}
