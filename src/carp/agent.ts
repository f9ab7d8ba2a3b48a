// The agent wires the pure cores to the world: it decodes datagrams into events for
// the vhid state machines, carries out the actions they return (send, timers, VIPs,
// hooks, log lines). Clock, transport, platform, logger, randomness and the board's
// demotion counter are all injected, so tests run whole pairs in one process; the
// board (daemon/board.ts) attaches state sync, split-brain protection and the fence.

import type { CarpConfig, Cidr, Endpoint, VhidConfig } from '../config/types.js'
import { VERSION } from '../config/constants.js'
import { endpointText } from '../config/values.js'
import {
  CARP_MULTICAST_GROUP,
  CARP_MULTICAST_GROUP6,
  DEMOTE_LINK,
  DEMOTE_PLATFORM,
  LINK_DOWN_POLLS,
  LINK_POLL_MS,
  LINK_UP_POLLS,
  PLATFORM_FAIL_HOLD_MS,
  DEMOTE_SEND_ERRORS,
  SEND_ERRORS_HOLD_MS,
  SEND_ERRORS_TO_DEMOTE,
  SENDS_OK_TO_CLEAR,
} from './constants.js'
import {
  type StepResult,
  type TimerName,
  type VhidAction,
  type VhidEvent,
  type VhidParams,
  type VhidState,
  type VhidView,
  initialState,
  masterDownMs,
  step,
} from './vhid.js'
import type { Clock, TimerHandle } from '../io/clock.js'
import type { Logger } from '../io/log.js'
import type { Transport } from '../io/transport.js'
import type { Fence } from '../platform/fence.js'
import type { Platform } from '../platform/types.js'
import { type CarpStatus, DROP_REASONS, type DropReason, type VhidStatus } from './status.js'
import { CarpAuth, decodeCarp, encodeCarp } from '../wire/carp.js'
import { inSubnet, isIpv6, isIpv6LinkLocal } from '../wire/ip.js'
import { vmacAddress } from '../platform/vmac.js'
import { EPOCH_QUIET_MIN_MS, ReplayWindow } from '../wire/replay.js'

/**
 * The fence removes the VIPs this long before the lease ends: the peer's deferral
 * ends with our lease (less the round trip), and `ip addr del` takes a few ms.
 */
const FENCE_EARLY_MS = 50

/** The longest a new advert epoch of a sender waits for its old one to go quiet. */
const EPOCH_QUIET_MAX_MS = 10_000

/** A failed removal of a vhid's VIPs is tried again this often, while it is not MASTER. */
const REMOVE_RETRY_MS = 1000

/** How often the VIPs on the interfaces are checked against what the vhids want (self-repair). */
export const REPAIR_CHECK_MS = 2000

/** The board's demotion counter (daemon/demotion.ts): one share per reason. */
export interface Demoter {
  set(reason: string, value: number, why: string): void
  total(): number
}

export interface AgentDeps {
  /** The carp.* settings; node and sockets are the board's. */
  carp: CarpConfig
  demotion: Demoter
  clock: Clock
  transport: Transport
  platform: Platform
  log: Logger
  /** Cryptographic randomness (the boot epoch). */
  random(bytes: number): Buffer
  /**
   * The IPv4 network of an interface (its address and prefix), for the multicast
   * source check; undefined when the interface has none.
   */
  interfaceNet(iface: string): Cidr | undefined
  /**
   * Where the transport joined a multicast group at start, as multicastKey() names
   * them (reload cannot add any).
   */
  multicastInterfaces: ReadonlySet<string>
  /** The transport has an IPv6 socket (reload cannot add one). */
  ipv6Socket?: boolean
}

/** What the agent needs of state sync (sync-link.ts), when it is configured. */
export interface SyncHandle {
  /** A vhid became MASTER: the peer's states go into the kernel. */
  promoted(): Promise<void>
  /** No vhid is MASTER any more: the kernel's entries of synced flows go stale. */
  stoppedServing(): void
}

/** What the agent needs of split-brain protection (quorum-link.ts), when it is on. */
export interface QuorumHandle {
  readonly mode: 'paths' | 'witness'
  /** After every event of a vhid: what its CARP machine now is. */
  view(vhid: number, view: VhidView): void
  /** A valid advert from the peer: the LAN path is alive. */
  advertHeard(): void
  /** Carries out what is due by now (lease expiries above all) before an event is handled. */
  poll(): void
  forget(vhid: number): void
  /** When this board's last vote for a vhid runs out (monotonic ms; -Infinity: none). */
  leaseEndMs(vhid: number): number
  /** Power-on: the peer (this boot epoch) took this vhid at its start before we were up; we may replace it once if we rank higher. */
  bootRace(vhid: number, epoch: number): boolean
}

/** What a heartbeat says of this board. */
export interface HeartbeatInfo {
  epoch: number
  demote: number
  vhids: { vhid: number; state: 'M' | 'B' | 'I' }[]
}

interface Vhid {
  config: VhidConfig
  /** Its password and VIPs, prepared for signing and checking adverts. */
  auth: CarpAuth
  /** Where its VIPs go: its macvlan (virtual MAC) or, without one, config.interface. */
  vipIface: string
  state: VhidState
  timers: Map<TimerName, TimerHandle>
  received: number
  sent: number
  fencedUntilMs: number | null // the lease end the fence was last told, null: not guarded
  vipQueue: Promise<void> // VIP changes (and queued ARPs) run one after another, in order
  /** Removals of its VIPs queued or running, or failed and waiting to be tried again. */
  removing: number
  removeRetry: TimerHandle | null
  /** VIP changes queued or running: the repair check leaves the vhid alone meanwhile. */
  ops: number
  hookQueue: Promise<void> // hooks too, but apart: a slow hook never holds a VIP change
}

export class Agent {
  private config: CarpConfig
  private readonly vhids = new Map<number, Vhid>()
  /**
   * A backup sends no adverts, so a board that was backup for hours, master for a
   * few adverts and then restarted would otherwise wait 1.5 of those hours to be
   * heard again: a new epoch is taken after at most EPOCH_QUIET_MAX_MS of quiet.
   */
  private readonly replay = new ReplayWindow(EPOCH_QUIET_MAX_MS)
  private readonly drops = Object.fromEntries(DROP_REASONS.map((r) => [r, 0])) as Record<DropReason, number>
  private epoch: number
  /** Low half of the advert counter, one for all vhids so a restarted vhid never reuses one. */
  private sequence = 0
  /** The last advert handed to the transport: one socket sends in order, so stop() waits for this one. */
  private lastSend: Promise<void> = Promise.resolve()
  private sendErrors = 0
  private sendFailRun = 0
  private sendOkRun = 0
  private sendErrorsHold: TimerHandle | null = null
  private platformFailures = 0
  private platformHold: TimerHandle | null = null
  /** Per interface: current link state and the run of readings that disagree with it. */
  private readonly links = new Map<string, { up: boolean; run: number }>()
  private linkTimer: TimerHandle | null = null
  private repairTimer: TimerHandle | null = null
  private repairs = 0
  private bugs = 0
  private running = false
  private sync: SyncHandle | null = null
  /** Some vhid is MASTER (the sync commit and its staleness follow this). */
  private serving = false
  private vmacs = new Map<number, string>()
  private quorum: QuorumHandle | null = null
  private fence: Fence | null = null

  constructor(private readonly deps: AgentDeps) {
    this.config = deps.carp
    this.epoch = deps.random(4).readUInt32BE(0)
    deps.transport.onPacket((payload, from, iface) => this.receive(payload, from, iface))
  }

  /** Starts every vhid in BACKUP; none may claim before a full master-down interval. */
  start(): void {
    this.running = true
    this.deps.log.event('carpd', `starting version=${VERSION} vhids=${this.config.vhids.map((v) => v.vhid).join(',') || 'none'}`)
    if (this.deps.platform.linkUp) this.readLinks(new Set(this.config.vhids.map((vc) => vc.interface)))
    for (const vc of this.config.vhids) this.addVhid(vc)
    if (this.deps.platform.linkUp) this.linkTimer = this.deps.clock.at(this.deps.clock.now() + LINK_POLL_MS, () => this.pollLinks())
    if (this.deps.platform.addresses) this.scheduleRepairCheck()
  }

  /** The vhids as the agent runs them (a reload may hold some back until a restart). */
  runningVhids(): readonly VhidConfig[] {
    return this.config.vhids
  }

  /** The macvlan a vhid's VIPs are on, if it has a virtual MAC (a reload changes that only at a restart). */
  vmacOf(vhid: number): string | undefined {
    return this.vmacs.get(vhid)
  }

  /**
   * The macvlan of each vhid with a virtual MAC (platform/vmac.ts), made before
   * start(); the others keep their VIPs on their interface. A vhid added by a reload
   * has none until carpd restarts.
   */
  useVmacs(names: ReadonlyMap<number, string>): void {
    this.vmacs = new Map(names)
  }

  attachSync(sync: SyncHandle): void {
    this.sync = sync
  }

  /** Split-brain protection; attach before start(), the vhids are built with its mode. */
  attachQuorum(quorum: QuorumHandle): void {
    this.quorum = quorum
  }

  /**
   * The fence (platform/fence.ts) removes a master's VIPs when its lease runs out and
   * carpd could not (stopped, hung). Only with a witness: there are no leases without.
   */
  attachFence(fence: Fence): void {
    this.fence = fence
  }

  /** A vote was renewed: tell the fence the VIPs may stay until the new lease end. */
  leaseRenewed(vhid: number): void {
    const v = this.vhids.get(vhid)
    if (v) this.guard(v)
  }

  /** The fence removed a vhid's VIPs on its own: this board no longer serves it. */
  fenceExpired(vhid: number): void {
    const v = this.vhids.get(vhid)
    if (!v) return
    v.fencedUntilMs = null
    if (v.state.state !== 'MASTER') return
    v.state = { ...v.state, vipsHeld: false }
    this.dispatch(v, { type: 'votes', held: false, reason: 'the fence removed the VIPs: no lease renewal in time' })
  }

  /** Keeps the fence's hold on a master's VIPs in step with its lease; lifts it otherwise. */
  private guard(v: Vhid): void {
    if (!this.fence || !this.quorum) return
    if (v.state.state !== 'MASTER') {
      // While our own removal of the VIPs runs (it may wait behind a slow add), the
      // fence keeps its hold: at the lease's end it removes them itself (found by the
      // simulator, seed 102401: two holders for 1.5 s).
      if (v.removing > 0 && v.fencedUntilMs !== null) return
      if (v.fencedUntilMs !== null) this.fence.drop(v.config.vhid)
      v.fencedUntilMs = null
      return
    }
    const until = this.quorum.leaseEndMs(v.config.vhid)
    if (until === v.fencedUntilMs) return
    v.fencedUntilMs = until
    this.fence.hold(v.config.vhid, until - FENCE_EARLY_MS, v.vipIface, v.config.vips)
  }

  /** The arbiter's verdict on a vhid: MASTER allowed (a claim may proceed) or not. */
  votes(vhid: number, held: boolean, reason: string): void {
    const v = this.vhids.get(vhid)
    if (v) this.dispatch(v, { type: 'votes', held, reason })
  }

  /** Announces a vhid's VIPs again (a LAN fault healed), when this board is its master. */
  announce(vhid: number, reason: string): void {
    const v = this.vhids.get(vhid)
    if (!v || v.state.state !== 'MASTER') return
    this.deps.log.event('carp', `vhid=${vhid} ${reason}: announcing the VIPs again`)
    this.perform(v, { type: 'garp' })
  }

  heartbeatInfo(): HeartbeatInfo {
    const letter = { MASTER: 'M', BACKUP: 'B', INIT: 'I' } as const
    return {
      epoch: this.epoch,
      demote: this.deps.demotion.total(),
      vhids: [...this.vhids.values()].map((v) => ({ vhid: v.config.vhid, state: letter[v.state.state] })),
    }
  }

  /** The board's demotion total changed: every vhid advertises it from now on. */
  demoteChanged(total: number, why: string): void {
    for (const v of this.vhids.values()) this.dispatch(v, { type: 'demote', demote: total, reason: why })
  }

  /** Bows out of every vhid it is master of, then waits for VIP removal and hooks. */
  async stop(): Promise<void> {
    if (!this.running) return
    this.running = false
    for (const v of this.vhids.values()) this.dispatch(v, { type: 'shutdown' })
    await Promise.all([this.lastSend, ...[...this.vhids.values()].flatMap((v) => [v.vipQueue, v.hookQueue])])
    for (const v of this.vhids.values()) {
      for (const t of v.timers.values()) t.cancel()
      v.removeRetry?.cancel()
    }
    this.sendErrorsHold?.cancel()
    this.platformHold?.cancel()
    this.linkTimer?.cancel()
    this.repairTimer?.cancel()
    this.deps.log.event('carpd', 'stopped')
  }

  /** Handles one datagram from the CARP socket: the ladder of input checks. */
  receive(payload: Buffer, from: Endpoint, iface?: string): void {
    const decoded = decodeCarp(payload)
    if (!decoded.ok) return this.drop(decoded.error)
    const advert = decoded.advert
    const v = this.vhids.get(advert.vhid)
    if (!v) return this.drop('unknownVhid')
    if (!this.senderAllowed(v.config, from, iface)) return this.drop('unknownSender')
    if (!v.auth.valid(advert)) return this.drop('badAuth')
    const epoch = Number(advert.counter >> 32n)
    // Our own multicast looped back (or a reflection): same epoch as ours.
    if (epoch === this.epoch) return this.drop('ownPacket')
    // Keyed by vhid, not by the source endpoint: a copy sent from another port or
    // address is the same advert and must hit the same window.
    // A new epoch waits for the old one's quiet, but never longer than the master-down
    // interval the advert itself states: after that much silence a backup takes over
    // anyway, and a gap in the old epoch's history from a network outage (simulator,
    // seed 1004257: 5 s of LAN cut made it 7.4 s) must not leave a restarted, better
    // master unheard next to the board that took over meanwhile.
    const verdict = this.replay.check(`vhid ${advert.vhid}`, advert.counter, this.deps.clock.now(), Math.max(EPOCH_QUIET_MIN_MS, masterDownMs(advert.advbase, advert.advskew)))
    if (verdict !== 'ok') return this.drop(verdict)
    v.received++
    // Leases first: a master that was frozen (SIGSTOP) must find its votes expired
    // before it answers anything.
    this.quorum?.advertHeard()
    this.quorum?.poll()
    // The tie-break rank is the sender's boot epoch: both boards see the same two
    // numbers (it is in every advert, under the HMAC), whatever addresses and routes
    // the datagrams take.
    const prio = { demote: advert.demote, advbase: advert.advbase, advskew: advert.advskew, rank: epoch }
    const bootRace = this.quorum?.bootRace(advert.vhid, epoch) === true
    this.dispatch(v, { type: 'advert', from: endpointText(from), prio, ...(bootRace ? { bootRace } : {}) })
  }

  /**
   * Unicast: only the configured peers, address and port. Multicast: only sources on
   * the vhid interface's own subnet (adverts are link-local: RFC 5798 §5.1.1.3 asks
   * for TTL 255, which a UDP socket cannot read, so the subnet is the check we have);
   * over IPv6, link-local sources (where adverts to ff02::12 come from) that came in
   * on the vhid's interface or its virtual MAC's (`iface`, the source's zone: every
   * link has the same fe80::/64, so the address alone cannot tell another segment).
   */
  private senderAllowed(vc: VhidConfig, from: Endpoint, iface?: string): boolean {
    // A link-local source names a host on the link it came in on: the vhid's (or its macvlan's).
    if (iface !== undefined && isIpv6LinkLocal(from.address) && iface !== vc.interface && iface !== this.vmacs.get(vc.vhid)) return false
    if (vc.peers.length > 0) {
      // Or from one of the vhid's VIPs: IPv6 may pick a VIP as the source of an advert
      // to a peer whose address shares a longer prefix with it than the board's own.
      const own = vc.vips.some((vip) => vip.address === from.address)
      return vc.peers.some((p) => (p.address === from.address || own) && (p.port || this.config.port) === from.port)
    }
    // Or the vhid's own VIP: the advert a new master sends from its virtual MAC.
    if (vc.vips.some((vip) => vip.address === from.address)) return true
    if (advertsOverIpv6(vc)) return isIpv6LinkLocal(from.address)
    const net = this.deps.interfaceNet(vc.interface)
    return net !== undefined && inSubnet(net, from.address)
  }

  /**
   * Applies new, already validated carp.* settings (SIGHUP). Vhids whose interface or
   * addresses changed are restarted (bow-out, then BACKUP again); timing and keys change
   * in place; carp.port is bound to the socket and kept until a restart. Returns one
   * note per change (the board logs them).
   */
  reload(next: CarpConfig): string[] {
    const old = this.config
    const notes: string[] = []
    // A multicast vhid on an interface whose group the socket never joined would hear
    // nothing and claim MASTER: keep what runs (or leave it out) until a restart.
    const wanted = new Map<number, VhidConfig>()
    for (const vc of next.vhids) {
      const socket = !advertsOverIpv6(vc) || this.deps.ipv6Socket === true
      if (socket && (vc.peers.length > 0 || this.deps.multicastInterfaces.has(multicastKey(vc)))) {
        wanted.set(vc.vhid, vc)
        continue
      }
      // An IPv6-only vhid on a board started without one has no socket for its adverts:
      // it would hear nothing and claim MASTER next to the peer.
      notes.push(socket ? `vhid ${vc.vhid}: multicast to ${multicastGroup(vc)} on ${vc.interface} takes effect after a restart` : `vhid ${vc.vhid}: adverts over IPv6 take effect after a restart`)
      const running = this.vhids.get(vc.vhid)
      if (running) wanted.set(vc.vhid, running.config)
    }
    this.config = { ...next, port: old.port, vhids: [...wanted.values()] }
    for (const [id, v] of [...this.vhids]) {
      const vc = wanted.get(id)
      if (!vc || vc.interface !== v.config.interface || vipAddresses(vc).join() !== vipAddresses(v.config).join()) {
        this.dispatch(v, { type: 'shutdown' })
        for (const t of v.timers.values()) t.cancel()
        v.removeRetry?.cancel()
        this.vhids.delete(id)
        this.quorum?.forget(id)
        notes.push(vc ? `vhid ${id}: interface or VIPs changed, restarted` : `vhid ${id}: removed`)
        // Its macvlan belongs to the old interface and VIPs (and the CARP socket's
        // table of send addresses too): gratuitous ARP only until carpd restarts.
        if (this.vmacs.delete(id) && vc) notes.push(`vhid ${id}: virtual MAC off until a restart`)
        continue
      }
      if (vc.vmac !== v.config.vmac) notes.push(`vhid ${id}: carp.${id}.vmac takes effect after a restart`)
      for (const [what, a, b] of [
        ['advbase', v.config.advbaseS, vc.advbaseS],
        ['advskew', v.config.advskew, vc.advskew],
      ] as const) {
        if (a !== b) notes.push(`vhid ${id}: ${what} ${a} -> ${b}`)
      }
      if (vc.pass !== v.config.pass) notes.push(`vhid ${id}: password changed`)
      if (vc.peers.map(endpointText).join() !== v.config.peers.map(endpointText).join()) {
        notes.push(`vhid ${id}: peers ${v.config.peers.map(endpointText).join(',') || 'multicast'} -> ${vc.peers.map(endpointText).join(',') || 'multicast'}`)
      }
      v.config = vc
      v.auth = vhidAuth(vc)
      this.dispatch(v, { type: 'configure', params: this.params(vc) })
    }
    if (old.preempt !== next.preempt) notes.push(`carp.preempt ${yesNo(old.preempt)} -> ${yesNo(next.preempt)}`)
    if (old.preemptHolddownMs !== next.preemptHolddownMs) {
      notes.push(`carp.preempt.holddown ${old.preemptHolddownMs} ms -> ${next.preemptHolddownMs} ms`)
    }
    for (const vc of wanted.values()) {
      if (!this.vhids.has(vc.vhid)) {
        this.addVhid(vc)
        if (!old.vhids.some((o) => o.vhid === vc.vhid)) notes.push(`vhid ${vc.vhid}: added`)
      }
    }
    this.forgetUnusedLinks()
    return notes
  }

  status(): CarpStatus {
    const now = this.deps.clock.now()
    return {
      vhids: [...this.vhids.values()].map((v) => this.vhidStatus(v, now)),
      drops: { ...this.drops },
      sendErrors: this.sendErrors,
      platformFailures: this.platformFailures,
      repairs: this.repairs,
      links: Object.fromEntries([...this.links].map(([iface, l]) => [iface, l.up ? 'up' : 'down'])),
      bugs: this.bugs,
    }
  }

  private vhidStatus(v: Vhid, now: number): VhidStatus {
    const m = v.state.master
    return {
      vhid: v.config.vhid,
      interface: v.config.interface,
      ...(hasVmac(v) ? { vmac: `${v.vipIface} ${vmacAddress(v.config.vhid, advertsOverIpv6(v.config))}` } : {}),
      vips: v.config.vips.map((c) => `${c.address}/${c.prefix}`),
      state: v.state.state,
      forMs: Math.round(now - v.state.sinceMs),
      reason: v.state.reason,
      advbaseS: v.config.advbaseS,
      advskew: v.config.advskew,
      transport: v.config.peers.length ? `unicast ${v.config.peers.map((p) => p.address).join(',')}` : `multicast ${multicastGroup(v.config)}`,
      master: m && {
        from: m.from,
        demote: m.prio.demote,
        advbase: m.prio.advbase,
        advskew: m.prio.advskew,
        heardMsAgo: Math.round(now - m.atMs),
      },
      transitions: v.state.transitions,
      received: v.received,
      sent: v.sent,
    }
  }

  private addVhid(vc: VhidConfig): void {
    const v: Vhid = {
      config: vc,
      auth: vhidAuth(vc),
      vipIface: this.vmacs.get(vc.vhid) ?? vc.interface,
      state: initialState(this.params(vc), this.deps.clock.now()),
      timers: new Map(),
      received: 0,
      sent: 0,
      fencedUntilMs: null,
      vipQueue: Promise.resolve(),
      removing: 0,
      removeRetry: null,
      ops: 0,
      hookQueue: Promise.resolve(),
    }
    v.state = { ...v.state, demote: this.deps.demotion.total() }
    this.vhids.set(vc.vhid, v)
    // A board always starts BACKUP: VIPs left on the interface by a crash would
    // answer for the VIP next to the real master, so they go first.
    this.perform(v, { type: 'removeVips' })
    const link = this.links.get(vc.interface)
    this.dispatch(v, link && !link.up ? { type: 'linkDown', reason: `${vc.interface} has no link` } : { type: 'start' })
  }

  private params(vc: VhidConfig): VhidParams {
    return {
      vhid: vc.vhid,
      advbaseS: vc.advbaseS,
      advskew: vc.advskew,
      preempt: this.config.preempt,
      preemptHolddownMs: this.config.preemptHolddownMs,
      rank: this.epoch,
      quorum: this.quorum?.mode ?? 'none',
      vmac: this.vmacs.has(vc.vhid),
    }
  }

  /** Feeds one event to a vhid's machine and carries out what it returns. */
  private dispatch(v: Vhid, ev: VhidEvent): void {
    let result: StepResult
    try {
      result = step(v.state, ev, this.deps.clock.now())
    } catch (err) {
      // An impossible (state, event) pair is a bug in carpd: say so, keep running.
      this.bugs++
      this.deps.log.event('bug', (err as Error).message)
      return
    }
    v.state = result.state
    for (const action of result.actions) this.perform(v, action)
    let serving = false
    for (const x of this.vhids.values()) serving ||= x.state.state === 'MASTER'
    if (serving !== this.serving) {
      this.serving = serving
      if (!serving) this.sync?.stoppedServing()
    }
    if (this.quorum && this.vhids.get(v.config.vhid) === v) {
      this.quorum.view(v.config.vhid, this.viewOf(v))
      this.guard(v)
    }
  }

  private viewOf(v: Vhid): VhidView {
    const s = v.state
    return {
      state: s.state,
      claiming: s.claim !== null,
      hearsMaster: s.claim?.hearsMaster ?? false,
      releasing: s.state !== 'MASTER' && v.removing > 0,
      demote: s.demote,
      advbase: s.params.advbaseS,
      advskew: s.params.advskew,
    }
  }

  private perform(v: Vhid, action: VhidAction): void {
    switch (action.type) {
      case 'log':
        this.deps.log.event('carp', action.message)
        return
      case 'arm': {
        v.timers.get(action.timer)?.cancel()
        const handle = this.deps.clock.at(action.atMs, () => {
          // Leases first (see receive()); that may cancel this very timer.
          this.quorum?.poll()
          if (v.timers.get(action.timer) !== handle) return
          v.timers.delete(action.timer)
          this.dispatch(v, { type: 'timer', timer: action.timer })
        })
        v.timers.set(action.timer, handle)
        return
      }
      case 'cancel':
        v.timers.get(action.timer)?.cancel()
        v.timers.delete(action.timer)
        return
      case 'send':
        this.sendAdvert(v, action.advbase, action.advskew, action.demote)
        return
      case 'addVips':
        // The peer's states load while the VIPs go up: packets of a flow that arrive
        // before its state are dropped as INVALID (not reset) and sent again by TCP.
        this.sync?.promoted().catch((err: Error) => this.deps.log.event('sync', `loading peer states failed: ${err.message}`))
        return this.addVips(v)
      case 'removeVips':
        v.removing++
        this.queueVips(v, () => this.removeVips(v))
        return
      case 'garp': {
        const garp = (vip: Cidr) => this.deps.platform.garp(v.vipIface, vip)
        // From a virtual MAC it waits for the macvlan to be up (behind addVips).
        if (!this.deps.platform.garpBeforeAddress || hasVmac(v)) return this.onVips(v, 'gratuitous ARP', garp)
        // Habets' arping does not need the address on the interface, so the ARP
        // does not wait behind `ip addr add`: it needs ~40 ms to start and then
        // waits a second for a reply that never comes, and it is what neighbours
        // need to hear first.
        for (const vip of v.config.vips) {
          garp(vip).catch((err: Error) => this.platformFailed(`vhid=${v.config.vhid} gratuitous ARP ${vip.address} failed: ${err.message}`))
        }
        return
      }
      case 'hook': {
        const script = action.state === 'MASTER' ? this.config.upscript : this.config.downscript
        if (!script) return
        const state = action.state
        const args = (vip: Cidr) => [String(v.config.vhid), v.config.interface, vip.address, state]
        v.hookQueue = v.hookQueue.then(() =>
          this.eachVip(v, `hook ${script}`, (vip) => this.deps.platform.runHook(script, args(vip))).then(() => undefined),
        )
        return
      }
      default: {
        const never: never = action
        throw new Error(`unknown action ${JSON.stringify(never)}`)
      }
    }
  }

  /**
   * Takes a vhid's VIPs off the interface. Until that is done the vhid is `releasing`
   * (the arbiter promises the VIPs to nobody meanwhile); a removal that failed is tried
   * again every REMOVE_RETRY_MS while the vhid is not to hold them.
   */
  private async removeVips(v: Vhid): Promise<void> {
    let failed = false
    // The macvlan goes down first: every VIP on it is out of service at once, even
    // one whose removal fails, and a down macvlan sends nothing.
    if (hasVmac(v)) await this.vmacLink(v, false, () => !v.state.vipsHeld)
    for (const vip of v.config.vips) {
      try {
        await this.deps.platform.removeVip(v.vipIface, vip)
      } catch (err) {
        failed = true
        this.platformFailed(`vhid=${v.config.vhid} remove VIPs ${vip.address} failed: ${(err as Error).message}`)
      }
    }
    const current = this.running && this.vhids.get(v.config.vhid) === v
    if (failed && current && !v.state.vipsHeld) {
      v.removeRetry?.cancel()
      v.removeRetry = this.deps.clock.at(this.deps.clock.now() + REMOVE_RETRY_MS, () => {
        v.removeRetry = null
        if (v.state.vipsHeld) return this.removed(v) // MASTER again meanwhile: the VIPs stay
        this.queueVips(v, () => this.removeVips(v))
      })
      return
    }
    this.removed(v)
  }

  private removed(v: Vhid): void {
    v.removing = Math.max(0, v.removing - 1)
    if (v.removing === 0 && this.quorum && this.vhids.get(v.config.vhid) === v) {
      this.quorum.view(v.config.vhid, this.viewOf(v))
      this.guard(v)
    }
  }

  /**
   * Queues the VIPs' addition. Whether the vhid is still MASTER is asked when its turn
   * comes: one that left MASTER while the add waited behind a slow command must not
   * put the VIPs up next to the peer's (simulator, seed 210772: 1.25 s of two holders).
   */
  private addVips(v: Vhid): void {
    const master = () => v.state.state === 'MASTER'
    this.queueVips(v, async () => {
      if (hasVmac(v) && !(await this.vmacLink(v, true, master))) return
      const added = await this.eachVip(v, 'add VIPs', (vip) => this.deps.platform.addVip(v.vipIface, vip), 'addVip', master)
      if (!added || !master() || !hasVmac(v)) return
      // One advert from the virtual MAC (multicast, by the VIP: a socket can pick no
      // other way out): the switch learns its new port now, not at the next gratuitous
      // ARP. Every other advert leaves from the interface with the board's own MAC:
      // a peer whose macvlan is up (Linux then hands frames from the virtual MAC to
      // that macvlan alone) must still hear them.
      if (v.config.peers.length === 0) this.sendAdvert(v, v.state.params.advbaseS, v.state.params.advskew, v.state.demote, true)
    })
  }

  /** Queues a platform call per VIP so changes to one vhid never overtake each other. */
  private onVips(v: Vhid, what: string, call: (vip: Cidr) => Promise<void>, demoting?: 'addVip'): void {
    this.queueVips(v, () => this.eachVip(v, what, call, demoting).then(() => undefined))
  }

  private queueVips(v: Vhid, work: () => Promise<void>): void {
    v.ops++
    v.vipQueue = v.vipQueue.then(work).finally(() => v.ops--)
  }

  /**
   * Self-repair: every REPAIR_CHECK_MS, the addresses on each vhid interface are read
   * and put back as the vhids want them, when no VIP change of theirs is under way: a
   * master's VIP removed by someone else (NetworkManager, systemd-networkd, an
   * operator's `ip addr flush`) is added and announced again, a VIP on a board that
   * does not hold the vhid is removed. Each repair is counted and said on the console.
   */
  private async checkVips(): Promise<void> {
    const read = this.deps.platform.addresses
    if (!read) return
    for (const line of (await this.deps.platform.vmacs?.check().catch(() => [])) ?? []) {
      this.repairs++
      this.deps.log.event('repair', line)
    }
    if (!this.running) return
    const interfaces = new Set([...this.vhids.values()].flatMap((v) => [v.vipIface, v.config.interface]))
    for (const iface of interfaces) {
      const before = new Map([...this.vhids.values()].map((v) => [v, v.state.transitions]))
      let present: Set<string>
      try {
        present = await read.call(this.deps.platform, iface)
      } catch {
        continue // the next check tries again; `ip` failing is counted where it matters
      }
      if (!this.running) return
      for (const v of this.vhids.values()) {
        // Anything that moved while `ip` ran is left to the next check.
        if (v.ops > 0 || v.removing > 0 || before.get(v) !== v.state.transitions) continue
        const held = v.config.vips.filter((vip) => present.has(vip.address))
        if (v.vipIface !== iface) {
          // A vhid with a virtual MAC: its VIPs never belong on the interface itself,
          // which would answer ARP for them with the board's own MAC.
          if (v.config.interface !== iface || held.length === 0) continue
          this.repaired(v, `${held.map((vip) => vip.address).join(',')} on ${iface}, not on its virtual MAC ${v.vipIface}: removing`)
          this.onVips(v, `remove from ${iface}`, (vip) => (held.includes(vip) ? this.deps.platform.removeVip(iface, vip) : Promise.resolve()))
          continue
        }
        if (v.state.state === 'MASTER' && v.state.vipsHeld && held.length < v.config.vips.length) {
          const gone = v.config.vips.filter((vip) => !present.has(vip.address)).map((vip) => vip.address)
          this.repaired(v, `${gone.join(',')} removed from ${iface} by someone else: adding and announcing again`)
          this.addVips(v)
          this.perform(v, { type: 'garp' })
        } else if (v.state.state !== 'MASTER' && !v.state.vipsHeld && held.length > 0) {
          this.repaired(v, `${held.map((vip) => vip.address).join(',')} on ${iface} while ${v.state.state}: removing`)
          v.removing++
          this.queueVips(v, () => this.removeVips(v))
        }
      }
    }
  }

  private repaired(v: Vhid, what: string): void {
    this.repairs++
    this.deps.log.event('repair', `vhid=${v.config.vhid} ${what}`)
  }

  /**
   * Brings a vhid's macvlan up or down (platform/vmac.ts) while `wanted` still holds;
   * true when done or there is none. A failure counts as a failed VIP change.
   */
  private async vmacLink(v: Vhid, up: boolean, wanted: () => boolean): Promise<boolean> {
    const vmacs = this.deps.platform.vmacs
    if (!vmacs || !hasVmac(v) || !wanted()) return wanted()
    try {
      await vmacs.link(v.config.vhid, up)
      return true
    } catch (err) {
      this.platformFailed(`vhid=${v.config.vhid} ${v.vipIface} ${up ? 'up' : 'down'} failed: ${(err as Error).message}`, up)
      return false
    }
  }

  /** Calls `call` for each VIP; true when every one succeeded. */
  private async eachVip(v: Vhid, what: string, call: (vip: Cidr) => Promise<void>, demoting?: 'addVip', wanted?: () => boolean): Promise<boolean> {
    let ok = true
    for (const vip of v.config.vips) {
      if (wanted && !wanted()) return false
      try {
        await call(vip)
        if (demoting) this.setDemote('platform', 0, 'VIPs added again')
      } catch (err) {
        ok = false
        this.platformFailed(`vhid=${v.config.vhid} ${what} ${vip.address} failed: ${(err as Error).message}`, demoting !== undefined)
      }
    }
    return ok
  }

  private sendAdvert(v: Vhid, advbase: number, advskew: number, demote: number, fromVmac = false): void {
    // The counter is boot epoch << 32 | sequence. When the sequence would wrap (after
    // 2^32 adverts: 194 days at the fastest rate) a new epoch starts; receivers take
    // it as a restart once the old epoch has been quiet (wire/replay.ts), which costs
    // one advert. The epoch is also the tie-break rank, so the vhids learn it.
    if (this.sequence >= 0xffffffff) {
      this.epoch = this.deps.random(4).readUInt32BE(0)
      this.sequence = 0
      for (const other of this.vhids.values()) this.dispatch(other, { type: 'configure', params: this.params(other.config) })
    }
    this.sequence++
    const counter = (BigInt(this.epoch) << 32n) | BigInt(this.sequence)
    const hmac = v.auth.sign(counter)
    const payload = encodeCarp({ vhid: v.config.vhid, advskew, demote, advbase, counter, hmac })
    const port = this.config.port
    const group = multicastGroup(v.config)
    const targets: Endpoint[] = v.config.peers.length
      ? v.config.peers.map((p) => ({ address: p.address, port: p.port || port }))
      : [{ address: group, port }]
    for (const to of targets) {
      // From the interface itself (its own MAC and address), but for the one advert
      // that teaches the switch the virtual MAC's port (see addVips).
      const iface = fromVmac && to.address === group ? v.vipIface : v.config.interface
      const sent = this.deps.transport.send(payload, to, iface).then(
        () => {
          v.sent++
          this.sendResult(true, '')
        },
        (err: Error) => this.sendResult(false, `${to.address}:${to.port}: ${err.message}`),
      )
      // stop() waits for it, so the bow-out leaves before the socket closes.
      this.lastSend = sent
    }
  }

  /** Send errors demote the board with hysteresis, so one lost datagram changes nothing. */
  private sendResult(ok: boolean, detail: string): void {
    if (ok) {
      this.sendFailRun = 0
      if (++this.sendOkRun === SENDS_OK_TO_CLEAR) this.clearSendErrors('adverts are sent again')
      return
    }
    this.sendErrors++
    this.sendOkRun = 0
    this.deps.log.event('carp', `send failed: ${detail}`)
    if (++this.sendFailRun >= SEND_ERRORS_TO_DEMOTE) {
      this.setDemote('sendErrors', DEMOTE_SEND_ERRORS, `${SEND_ERRORS_TO_DEMOTE} adverts in a row could not be sent`)
      this.sendErrorsHold?.cancel()
      this.sendErrorsHold = this.deps.clock.at(this.deps.clock.now() + SEND_ERRORS_HOLD_MS, () => {
        this.sendErrorsHold = null
        this.sendFailRun = 0
        this.setDemote('sendErrors', 0, `no failed send for ${SEND_ERRORS_HOLD_MS / 1000}s`)
      })
    }
  }

  private clearSendErrors(why: string): void {
    this.sendFailRun = 0
    this.sendErrorsHold?.cancel()
    this.sendErrorsHold = null
    this.setDemote('sendErrors', 0, why)
  }

  /**
   * A failed OS command is logged and counted. Only a VIP that cannot be added
   * demotes the board: this master cannot serve, the peer may. The demotion clears
   * when adding works again or after a long hold: a failing ARP or hook demoting
   * both boards in turn would swap the VIPs back and forth.
   */
  private platformFailed(message: string, demote = false): void {
    this.platformFailures++
    this.deps.log.event('platform', message)
    if (!demote) return
    this.setDemote('platform', DEMOTE_PLATFORM, 'a VIP could not be added')
    this.platformHold?.cancel()
    this.platformHold = this.deps.clock.at(this.deps.clock.now() + PLATFORM_FAIL_HOLD_MS, () => {
      this.platformHold = null
      this.setDemote('platform', 0, `no failure to add a VIP for ${PLATFORM_FAIL_HOLD_MS / 1000}s`)
    })
  }

  /**
   * Reads the link of every vhid interface; LINK_DOWN_POLLS readings in a row take
   * an interface down (its vhids go INIT, the board is demoted so the peer takes
   * every vhid, as carp(4) does), LINK_UP_POLLS bring it back.
   */
  private pollLinks(): void {
    this.readLinks()
    this.linkTimer = this.deps.clock.at(this.deps.clock.now() + LINK_POLL_MS, () => this.pollLinks())
  }

  private scheduleRepairCheck(): void {
    this.repairTimer = this.deps.clock.at(this.deps.clock.now() + REPAIR_CHECK_MS, () => {
      this.repairTimer = null
      void this.checkVips().finally(() => {
        if (this.running) this.scheduleRepairCheck()
      })
    })
  }

  /** One reading of every link; `interfaces` defaults to those of the running vhids. */
  private readLinks(interfaces = new Set([...this.vhids.values()].map((v) => v.config.interface))): void {
    const linkUp = this.deps.platform.linkUp!
    for (const iface of interfaces) {
      const up = linkUp.call(this.deps.platform, iface)
      const link = this.links.get(iface)
      if (!link) {
        // The first reading is believed at once: a board booted with a cable
        // unplugged must not claim that vhid before a second reading.
        this.links.set(iface, { up, run: 0 })
        if (!up) this.linkChanged(iface, false)
        continue
      }
      if (up === link.up) {
        link.run = 0
        continue
      }
      link.run++
      if (link.run < (up ? LINK_UP_POLLS : LINK_DOWN_POLLS)) continue
      link.up = up
      link.run = 0
      this.linkChanged(iface, up)
    }
  }

  private linkChanged(iface: string, up: boolean): void {
    this.deps.log.event('carp', `link ${iface} ${up ? 'up' : 'down'}`)
    this.setDemote(`link:${iface}`, up ? 0 : DEMOTE_LINK, `${iface} link ${up ? 'up' : 'down'}`)
    // Adverts that failed as the link went (before two readings confirmed it) are the
    // link's fault, already counted by its own demotion; left standing, they would
    // keep a board demoted for SEND_ERRORS_HOLD_MS after its links are back, since a
    // backup sends nothing that could clear them.
    this.clearSendErrors(`link ${iface} ${up ? 'up' : 'down'}: failed sends were the link's`)
    for (const v of this.vhids.values()) {
      if (v.config.interface !== iface) continue
      this.dispatch(v, up ? { type: 'linkUp' } : { type: 'linkDown', reason: `${iface} has no link` })
    }
  }

  /** After a reload: forget interfaces no vhid uses any more, and their demotion. */
  private forgetUnusedLinks(): void {
    const used = new Set([...this.vhids.values()].map((v) => v.config.interface))
    for (const iface of [...this.links.keys()]) {
      if (used.has(iface)) continue
      this.links.delete(iface)
      this.setDemote(`link:${iface}`, 0, `${iface} no longer used`)
    }
  }

  private setDemote(reason: string, value: number, why: string): void {
    this.deps.demotion.set(reason, value, why)
  }

  private drop(reason: DropReason): void {
    this.drops[reason]++
  }
}

function yesNo(b: boolean): string {
  return b ? 'yes' : 'no'
}

function vipAddresses(vc: VhidConfig): string[] {
  return vc.vips.map((c) => c.address)
}

/** The vhid's VIPs live on its macvlan (a virtual MAC), not on its interface. */
function hasVmac(v: Vhid): boolean {
  return v.vipIface !== v.config.interface
}

function vhidAuth(vc: VhidConfig): CarpAuth {
  return new CarpAuth(vc.pass, vc.vhid, vipAddresses(vc))
}

/** A vhid advertises over IPv4 when it has an IPv4 VIP, else over IPv6 (config/load.ts checks its peers agree). */
export function advertsOverIpv6(vc: VhidConfig): boolean {
  return vc.vips.length > 0 && vc.vips.every((vip) => isIpv6(vip.address))
}

/** The group a multicast vhid's adverts go to. */
export function multicastGroup(vc: VhidConfig): string {
  return advertsOverIpv6(vc) ? CARP_MULTICAST_GROUP6 : CARP_MULTICAST_GROUP
}

/** A multicast vhid's group and interface: what the transport must have joined for it. */
export function multicastKey(vc: VhidConfig): string {
  return `${multicastGroup(vc)}%${vc.interface}`
}
