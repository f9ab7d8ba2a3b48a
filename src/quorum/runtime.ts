// Wires the arbiter (quorum/arbiter.ts, pure) to the world: heartbeats and peer votes
// on the sync link (UDP, shared with state sync, told apart by the first byte) and on
// the serial line (text frames), witness leases over UDP, the clock, and the agent's
// vhid machines (votes in, views out).
//
// Every message to the peer or the witness is authenticated with HMAC-SHA256
// (wire/vote.ts); on the serial line the heartbeat itself is CRC-checked text, readable
// on a terminal, and votes travel as hex blobs carrying their own HMAC.

import type { HeartbeatInfo } from '../carp/agent.js'
import type { Endpoint } from '../config/types.js'
import { endpointText } from '../config/values.js'
import type { Clock, TimerHandle } from '../io/clock.js'
import type { Logger } from '../io/log.js'
import type { SerialStatus } from '../platform/serial.js'
import type { Transport } from '../io/transport.js'
import type { VhidView } from '../carp/vhid.js'
import { type ArbiterAction, Arbiter, NOT_A_CANDIDATE } from './arbiter.js'
import type { PathName } from './paths.js'
import type { QuorumStatus } from './status.js'
import { type Heartbeat, type SerialFrame, type WanLetter, decodeLine, encodeBlob, encodeHeartbeat } from '../wire/heartbeat.js'
import type { WanState } from '../wan/types.js'

const WAN_LETTER: Record<WanState, WanLetter> = { online: 'U', degraded: 'G', offline: 'D' }
import { senderId } from '../wire/ids.js'
import { type VoteMessage, decodeVote, encodeVote } from '../wire/vote.js'

export interface QuorumRuntimeDeps {
  node: string
  agent: {
    votes(vhid: number, held: boolean, reason: string): void
    announce(vhid: number, reason: string): void
    leaseRenewed(vhid: number): void
    heartbeatInfo(): HeartbeatInfo
  }
  clock: Clock
  log: Logger
  random(bytes: number): Buffer
  leaseMs: number
  heartbeatIntervalMs: number
  heartbeatTimeoutMs: number
  /** The LAN path is alive while adverts from the peer come at least this often. */
  lanTimeoutMs: number
  /** This start is part of a power-on (the system booted moments ago): the power-on race applies. */
  powerOn: boolean
  /** Authenticates heartbeats and votes with the peer (sync.key, else witness.key). */
  peerKey: string
  /** The sync link: a socket on this board's sync address, the peer's endpoint. */
  sync: { transport: Transport; peer: Endpoint } | null
  serial: { send(line: string): void; status(): SerialStatus } | null
  witness: { transport: Transport; address: Endpoint; key: string } | null
}

export class QuorumRuntime {
  readonly mode: 'paths' | 'witness'
  private readonly arbiter: Arbiter
  private wake: TimerHandle | null = null
  private wakeAtMs = Infinity
  private beat: TimerHandle | null = null
  private heartbeatSeq = 0
  private sentLetters = ''
  private wans: (() => { wan: number; state: WanState }[]) | null = null
  private heartbeatsSent = 0
  private sendErrors = 0
  private readonly linkDrops: Record<string, number> = {}
  private running = false

  constructor(private readonly deps: QuorumRuntimeDeps) {
    this.mode = deps.witness ? 'witness' : 'paths'
    const pathTimeouts: Partial<Record<PathName, number>> = { lan: deps.lanTimeoutMs }
    if (deps.sync) pathTimeouts.sync = deps.heartbeatTimeoutMs
    if (deps.serial) pathTimeouts.serial = deps.heartbeatTimeoutMs
    this.arbiter = new Arbiter({
      node: deps.node,
      selfId: senderId(deps.node),
      epoch: deps.agent.heartbeatInfo().epoch,
      leaseMs: deps.leaseMs,
      witness: deps.witness !== null,
      pathTimeouts,
      random: deps.random,
      startMs: deps.clock.now(),
      powerOn: deps.powerOn,
    })
    deps.sync?.transport.onPacket((bytes, from) => this.onSyncDatagram(bytes, from))
    deps.witness?.transport.onPacket((bytes, from) => this.onWitnessDatagram(bytes, from))
  }

  start(): void {
    this.running = true
    const witness = this.deps.witness ? `witness ${endpointText(this.deps.witness.address)} lease ${this.deps.leaseMs} ms` : 'no witness (two-node mode)'
    const paths = ['lan', this.deps.sync && 'sync', this.deps.serial && 'serial'].filter(Boolean).join(',')
    this.deps.log.event('quorum', `split-brain protection on: ${witness}; peer paths ${paths}; heartbeat every ${this.deps.heartbeatIntervalMs} ms`)
    this.sendHeartbeat()
  }

  stop(): void {
    this.running = false
    this.wake?.cancel()
    this.beat?.cancel()
    this.wake = this.beat = null
  }

  view(vhid: number, view: VhidView): void {
    this.carryOut(this.arbiter.view(vhid, view, this.deps.clock.now()))
    // A changed state goes out at once: the peer decides on our last heartbeat.
    if (this.running && this.lettersOf(this.deps.agent.heartbeatInfo()) !== this.sentLetters) this.sendHeartbeat()
  }

  private lettersOf(info: HeartbeatInfo): string {
    return info.vhids.map((x) => `${x.vhid}:${x.state}`).join(',')
  }

  advertHeard(): void {
    this.carryOut(this.arbiter.advertHeard(this.deps.clock.now()))
  }

  poll(): void {
    this.carryOut(this.arbiter.tick(this.deps.clock.now()))
  }

  forget(vhid: number): void {
    this.arbiter.forget(vhid)
  }

  /** Multi-WAN: this board's WAN health goes out in every heartbeat. */
  setWans(states: () => { wan: number; state: WanState }[]): void {
    this.wans = states
  }

  /** The peer's WAN health from its last fresh heartbeat; null when unknown. */
  peerWans(): { wan: number; state: WanLetter }[] | null {
    return this.arbiter.peerWans(this.deps.clock.now())
  }

  leaseEndMs(vhid: number): number {
    return this.arbiter.leaseEndMs(vhid)
  }

  /** Power-on: the peer (boot epoch `epoch`, from its advert) took this vhid at its start before we were up; we may replace it once. */
  bootRace(vhid: number, epoch: number): boolean {
    return this.arbiter.bootRace(vhid, epoch, this.deps.clock.now())
  }

  /** A frame read off the serial line. */
  onSerialFrame(frame: SerialFrame): void {
    const now = this.deps.clock.now()
    if (frame.kind === 'heartbeat') return this.carryOut(this.arbiter.heartbeat(frame.hb, 'serial', now))
    const decoded = decodeVote(frame.bytes, this.deps.peerKey)
    if (!decoded.ok) return this.dropped(`serial.${decoded.error}`)
    this.fromPeer(decoded.msg, 'serial', now)
  }

  status(): QuorumStatus {
    return {
      ...this.arbiter.status(this.deps.clock.now()),
      witness: this.deps.witness ? endpointText(this.deps.witness.address) : null,
      serial: this.deps.serial?.status() ?? null,
      heartbeatsSent: this.heartbeatsSent,
      linkDrops: { ...this.linkDrops },
      sendErrors: this.sendErrors,
    }
  }

  private onSyncDatagram(bytes: Buffer, from: Endpoint): void {
    const peer = this.deps.sync!.peer
    // Only the configured peer on the sync link (as for sync frames).
    if (from.address !== peer.address) return this.dropped('sync.unknownSender')
    const decoded = decodeVote(bytes, this.deps.peerKey)
    if (!decoded.ok) return this.dropped(`sync.${decoded.error}`)
    this.fromPeer(decoded.msg, 'sync', this.deps.clock.now())
  }

  private fromPeer(msg: VoteMessage, path: PathName, now: number): void {
    if (msg.kind !== 'heartbeat') return this.carryOut(this.arbiter.receive(msg, 'peer', path, now))
    // A heartbeat on the sync link is the serial line's text, inside an authenticated datagram.
    const line = decodeLine(msg.text)
    if (!line.ok || line.frame.kind !== 'heartbeat') return this.dropped(`${path}.badHeartbeat`)
    this.carryOut(this.arbiter.heartbeat(line.frame.hb, path, now))
  }

  private onWitnessDatagram(bytes: Buffer, from: Endpoint): void {
    const w = this.deps.witness!
    if (from.address !== w.address.address || from.port !== w.address.port) return this.dropped('witness.unknownSender')
    const decoded = decodeVote(bytes, w.key)
    if (!decoded.ok) return this.dropped(`witness.${decoded.error}`)
    this.carryOut(this.arbiter.receive(decoded.msg, 'witness', null, this.deps.clock.now()))
  }

  private carryOut(actions: ArbiterAction[]): void {
    for (const a of actions) {
      switch (a.type) {
        case 'log':
          this.deps.log.event('quorum', a.message)
          break
        case 'toPeer':
          this.toPeer(a.msg, a.path)
          break
        case 'toWitness': {
          const w = this.deps.witness!
          this.send(w.transport, encodeVote(a.msg, w.key), w.address)
          break
        }
        case 'votes':
          // Stepping down for other reasons already says why on the carp line.
          if (a.reason !== NOT_A_CANDIDATE) this.deps.log.event('quorum', `vhid=${a.vhid} ${a.held ? 'may hold MASTER' : 'may not hold MASTER'}: ${a.reason}`)
          this.deps.agent.votes(a.vhid, a.held, a.reason)
          break
        case 'garp':
          this.deps.agent.announce(a.vhid, a.reason)
          break
        case 'lease':
          this.deps.agent.leaseRenewed(a.vhid)
          break
        default: {
          const never: never = a
          throw new Error(`unknown arbiter action ${JSON.stringify(never)}`)
        }
      }
    }
    this.schedule()
  }

  private toPeer(msg: VoteMessage, path: PathName | 'all'): void {
    const bytes = encodeVote(msg, this.deps.peerKey)
    if (this.deps.sync && (path === 'all' || path === 'sync')) this.send(this.deps.sync.transport, bytes, this.deps.sync.peer)
    // The serial line is slow (19200 bit/s is ~1.9 KB/s): votes go there only when
    // the sync link is not carrying them, or to answer a request that came that way.
    const syncAlive = this.deps.sync !== null && this.arbiter.alivePaths(this.deps.clock.now()).includes('sync')
    if (this.deps.serial && (path === 'serial' || (path === 'all' && !syncAlive))) this.deps.serial.send(encodeBlob(bytes))
  }

  private send(transport: Transport, bytes: Buffer, to: Endpoint): void {
    transport.send(bytes, to).catch(() => {
      this.sendErrors++
    })
  }

  /** Heartbeats on every peer path but the LAN, every heartbeat.interval. */
  private sendHeartbeat(): void {
    if (!this.running) return
    this.beat?.cancel()
    const info = this.deps.agent.heartbeatInfo()
    this.sentLetters = this.lettersOf(info)
    this.heartbeatSeq = (this.heartbeatSeq + 1) >>> 0
    const now = this.deps.clock.now()
    const vhids = info.vhids.map((x) => (x.state === 'M' && this.arbiter.bootMaster(x.vhid, now) ? { ...x, boot: true as const } : x))
    const hb: Heartbeat = { node: this.deps.node, epoch: info.epoch, seq: this.heartbeatSeq, demote: info.demote, vhids }
    if (this.wans) hb.wans = this.wans().map((w) => ({ wan: w.wan, state: WAN_LETTER[w.state] }))
    const line = encodeHeartbeat(hb)
    this.deps.serial?.send(line)
    if (this.deps.sync) {
      const msg: VoteMessage = { kind: 'heartbeat', sender: senderId(this.deps.node), epoch: info.epoch, seq: this.heartbeatSeq, text: line.trimEnd() }
      this.send(this.deps.sync.transport, encodeVote(msg, this.deps.peerKey), this.deps.sync.peer)
    }
    this.heartbeatsSent++
    this.beat = this.deps.clock.at(now + this.deps.heartbeatIntervalMs, () => this.sendHeartbeat())
  }

  private schedule(): void {
    if (!this.running) return
    const now = this.deps.clock.now()
    const at = Math.max(now, this.arbiter.nextWakeMs(now))
    if (at === this.wakeAtMs && this.wake) return
    this.wake?.cancel()
    this.wake = null
    this.wakeAtMs = at
    if (at === Infinity) return
    this.wake = this.deps.clock.at(at, () => {
      this.wake = null
      this.wakeAtMs = Infinity
      this.poll()
    })
  }

  private dropped(reason: string): void {
    this.linkDrops[reason] = (this.linkDrops[reason] ?? 0) + 1
  }
}

