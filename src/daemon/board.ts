// The board: one router's carpd. Builds every subsystem from the edges it is given
// (sockets, platform, sync backend, serial port, WAN rule loader, fence), wires them
// to each other, and owns start, stop, reload, the demotion counter, the control
// requests and the board status. cli/run.ts gives it the real edges; tests give it
// in-memory ones and run whole boards in one process.
//
// openBoard() opens the sockets (each failure closes what was opened, in reverse);
// the Board keeps one stack of closers from then on, run by stop().

import { isIpv6 } from '../wire/ip.js'
import { Agent, advertsOverIpv6, multicastKey } from '../carp/agent.js'
import { CARP_MULTICAST_GROUP, CARP_MULTICAST_GROUP6, CARP_TTL, DEMOTE_WAN } from '../carp/constants.js'
import { masterDownMs } from '../carp/vhid.js'
import { VERSION } from '../config/constants.js'
import { restartChanges, restartNote } from '../config/diff.js'
import { wanShare } from '../config/load.js'
import type { Cidr, Config, Endpoint } from '../config/types.js'
import { type ControlReply, type ControlRequest, answerRequest } from '../control/protocol.js'
import type { BoardStatus } from '../control/status.js'
import type { Clock } from '../io/clock.js'
import { demux } from '../io/demux.js'
import type { Logger } from '../io/log.js'
import { type Transport, dualTransport } from '../io/transport.js'
import type { UdpOptions } from '../io/udp.js'
import type { Fence } from '../platform/fence.js'
import type { SerialStatus } from '../platform/serial.js'
import type { Platform } from '../platform/types.js'
import { QuorumRuntime } from '../quorum/runtime.js'
import { WITNESS_PORT_DEFAULT } from '../quorum/witness.js'
import { POWER_ON_UPTIME_MS } from '../quorum/constants.js'
import type { SyncBackend } from '../sync/backend.js'
import { IP_UDP_HEADER_BYTES, SYNC_RECV_BUFFER_BYTES } from '../sync/constants.js'
import { SyncRuntime } from '../sync/runtime.js'
import { FAMILY_IPV4 } from '../wire/flow.js'
import { wanDemotion } from '../wan/policy.js'
import { renderWanSet, routeCommands } from '../wan/rules/index.js'
import { WanRuntime } from '../wan/runtime.js'
import type { WanApplier } from '../wan/types.js'
import type { SerialFrame } from '../wire/heartbeat.js'
import { SYNC_MAX_FRAME } from '../wire/sync.js'
import { VOTE_VERSION } from '../wire/vote.js'
import { vmacName } from '../platform/vmac.js'
import { Demotions } from './demotion.js'
import { ControlDesk } from './requests.js'

/** The serial heartbeat line as the board uses it (platform/serial.ts). */
export interface SerialPort {
  start(): void
  send(line: string): void
  status(): SerialStatus
  close(): Promise<void>
}

/** Everything of the outside world a board touches. */
export interface BoardIo {
  platform: Platform
  /** The IPv4 network (address and prefix) of an interface; undefined when it has none. */
  interfaceNet(iface: string): Cidr | undefined
  /** An IPv4 address of an interface, cheap enough to ask every few seconds. */
  addressNow(iface: string): string | null
  /** The interface's MTU. */
  linkMtu(iface: string): number
  openUdp(opts: UdpOptions): Promise<Transport>
  /** The control socket on 127.0.0.1:port: a request's bytes in, the reply's text out (null: none). */
  startControl(port: number, answer: (request: Buffer) => string | null): Promise<{ close(): Promise<void> }>
  syncBackend(): SyncBackend
  serialPort(opts: { device: string; baud: number; onFrame(frame: SerialFrame): void }): SerialPort
  wanApplier(): WanApplier
  /** A warning when the kernel's reverse-path filter would drop a WAN's replies. */
  reversePathWarning(iface: string): string | null
  /** A warning when the kernel picks up mid-stream TCP flows (state sync's loads are then refused). */
  pickupWarning?(): string | null
  /** The fence child process (platform/fence.ts); null where there is none (dry run). */
  spawnFence(onExpired: (vhid: number) => void): Fence | null
  /**
   * Resolves once no fence of an earlier run of this node still watches its VIPs
   * (platform/fence.ts: after a killed carpd); absent: there are none (dry run, tests).
   */
  earlierFencesGone?(): Promise<void>
  /**
   * How long the system has been up: a carpd that starts within POWER_ON_UPTIME_MS
   * of the boot takes part in the power-on race (quorum/README.md "Power-on").
   * Absent: it does (dry run, tests).
   */
  uptimeMs?(): number
  /** Does the interface exist (an IPv6 vhid's, which needs no IPv4 address)? */
  hasInterface(iface: string): boolean
}

export interface BoardDeps {
  config: Config
  clock: Clock
  log: Logger
  /** Cryptographic randomness (epochs, nonces, sender ids). */
  random(bytes: number): Buffer
  io: BoardIo
}

/** The sockets a board runs on, open, and the networks of the vhid interfaces. */
export interface BoardSockets {
  carp: Transport
  /** On this board's address of sync.interface; null without a sync link. */
  sync: Transport | null
  /** Any port, for the witness; null without one. */
  witness: Transport | null
  nets: ReadonlyMap<string, Cidr>
  /** The CARP transport has an IPv6 socket (some vhid advertised over IPv6 at start). */
  ipv6?: boolean
}

type Closer = () => void | Promise<void>

/**
 * Opens a board's sockets and its control socket; returns the board, not started,
 * or why it cannot run (every socket opened so far is closed again).
 */
export async function openBoard(deps: BoardDeps): Promise<Board | string> {
  const { config, io } = deps
  const nets = new Map<string, Cidr>()
  // A vhid that advertises over IPv6 needs no IPv4 address on its interface, but the
  // interface (ff02::12 joined on a missing one would join anywhere, silently).
  for (const vc of config.carp.vhids) {
    if (advertsOverIpv6(vc) && !io.hasInterface(vc.interface)) return `carp.${vc.vhid}.interface = ${vc.interface}: no such interface`
    if (nets.has(vc.interface) || advertsOverIpv6(vc)) continue
    const net = io.interfaceNet(vc.interface)
    if (net === undefined) return `carp.${vc.vhid}.interface = ${vc.interface}: no such interface with an IPv4 address`
    nets.set(vc.interface, net)
  }
  const { sync } = config
  const syncNet = sync.interface && sync.peer ? io.interfaceNet(sync.interface) : null
  if (sync.interface && sync.peer) {
    if (sync.backend === 'pf') return 'sync.backend = pf: the pf backend is not part of this version (use conntrack on Linux)'
    if (syncNet === undefined) return `sync.interface = ${sync.interface}: no such interface with an IPv4 address`
  }
  const opened: Closer[] = []
  const fail = async (why: string): Promise<string> => {
    for (const close of opened.reverse()) await close()
    return why
  }
  const open = async (what: string, opts: UdpOptions): Promise<Transport | string> => {
    try {
      const transport = await io.openUdp(opts)
      opened.push(() => transport.close())
      return transport
    } catch (err) {
      return fail(`cannot open ${what}: ${(err as Error).message}`)
    }
  }
  const multicast = new Map(multicastInterfaces(config, false).map((iface) => [iface, nets.get(iface)!.address]))
  const vmacSenders = config.carp.vhids.filter((vc) => vc.vmac && vc.peers.length === 0)
  const carp4 = await open(`the CARP socket on UDP port ${config.carp.port}`, {
    port: config.carp.port,
    bindAddress: '0.0.0.0',
    multicastInterfaces: multicast,
    // A vhid with a virtual MAC sends its multicast adverts from its macvlan, named by its first IPv4 VIP.
    sendInterfaces: new Map(vmacSenders.filter((vc) => !advertsOverIpv6(vc)).map((vc) => [vmacName(vc.vhid), vc.vips.find((vip) => !isIpv6(vip.address))!.address])),
    multicastGroup: CARP_MULTICAST_GROUP,
    ttl: CARP_TTL,
  })
  if (typeof carp4 === 'string') return carp4
  let carp = carp4
  if (config.carp.vhids.some(advertsOverIpv6)) {
    // IPv6-only vhids: a socket of its own on the same port, joining ff02::12 on their
    // interfaces (an IPv6 interface is named by the scope of ::).
    const scoped = (iface: string): [string, string] => [iface, `::%${iface}`]
    const carp6 = await open(`the CARP IPv6 socket on UDP port ${config.carp.port}`, {
      port: config.carp.port,
      bindAddress: '::',
      ipv6: true,
      multicastInterfaces: new Map(multicastInterfaces(config, true).map(scoped)),
      sendInterfaces: new Map(vmacSenders.filter(advertsOverIpv6).map((vc) => scoped(vmacName(vc.vhid)))),
      multicastGroup: CARP_MULTICAST_GROUP6,
      ttl: CARP_TTL,
    })
    if (typeof carp6 === 'string') return carp6
    carp = dualTransport(carp4, carp6)
  }
  let syncSocket: Transport | null = null
  if (syncNet) {
    const made = await open(`the sync socket on ${syncNet.address}:${sync.port}`, {
      port: sync.port,
      bindAddress: syncNet.address,
      multicastInterfaces: new Map(),
      recvBufferBytes: SYNC_RECV_BUFFER_BYTES,
      ttl: CARP_TTL,
    })
    if (typeof made === 'string') return made
    syncSocket = made
  }
  let witness: Transport | null = null
  if (config.witness.address) {
    const made = await open('a socket for the witness', { port: 0, bindAddress: '0.0.0.0', multicastInterfaces: new Map() })
    if (typeof made === 'string') return made
    witness = made
  }
  const board = new Board(deps, { carp, sync: syncSocket, witness, nets, ipv6: carp !== carp4 })
  try {
    const control = await io.startControl(config.controlPort, (bytes) => answerRequest(bytes, (req) => board.control(req)))
    board.onStop(() => control.close())
  } catch (err) {
    await board.stop()
    return `cannot open the control socket on 127.0.0.1:${config.controlPort}: ${(err as Error).message}`
  }
  return board
}

/** Interfaces of the multicast vhids of one advert family, whose group the CARP socket joins at start. */
function multicastInterfaces(config: Config, ipv6: boolean): string[] {
  return [...new Set(config.carp.vhids.filter((vc) => vc.peers.length === 0 && advertsOverIpv6(vc) === ipv6).map((vc) => vc.interface))]
}

export class Board {
  readonly agent: Agent
  readonly demotions: Demotions
  readonly sync: SyncRuntime | null = null
  readonly quorum: QuorumRuntime | null = null
  readonly wan: WanRuntime | null = null
  private readonly serial: SerialPort | null = null
  private fence: Fence | null = null
  private readonly desk: ControlDesk
  private readonly closers: Closer[] = []
  /** The configuration the board started with (a reload changes only what it can apply). */
  private readonly config: Config
  private readonly startedMs: number
  private state: 'new' | 'running' | 'stopped' = 'new'

  constructor(
    private readonly deps: BoardDeps,
    sockets: BoardSockets,
  ) {
    const { config, clock, log, random, io } = deps
    this.config = config
    this.startedMs = clock.now()
    for (const socket of [sockets.carp, sockets.sync, sockets.witness]) if (socket) this.closers.push(() => socket.close())
    this.demotions = new Demotions((total, why) => this.agent.demoteChanged(total, why))
    this.agent = new Agent({
      carp: config.carp,
      demotion: this.demotions,
      clock,
      transport: sockets.carp,
      platform: io.platform,
      log,
      random,
      interfaceNet: (iface) => sockets.nets.get(iface),
      multicastInterfaces: new Set(config.carp.vhids.filter((vc) => vc.peers.length === 0).map(multicastKey)),
      ipv6Socket: sockets.ipv6 === true,
    })

    // The sync link: one socket shared by state sync and the quorum's heartbeats and votes.
    let peerLink: { transport: Transport; peer: Endpoint } | null = null
    if (sockets.sync && config.sync.peer) {
      const { sync } = config
      const peer = { address: sync.peer!.address, port: sync.peer!.port || sync.port }
      const [quorum, frames] = demux(sockets.sync, VOTE_VERSION)
      peerLink = { transport: quorum, peer }
      if (sync.backend !== 'none') {
        const own = io.interfaceNet(sync.interface)?.address
        this.sync = new SyncRuntime({
          node: config.node,
          key: sync.key,
          peer,
          maxFrameBytes: Math.min(SYNC_MAX_FRAME, io.linkMtu(sync.interface) - IP_UDP_HEADER_BYTES),
          bulkTimeoutMs: sync.bulkTimeoutMs,
          clock,
          transport: frames,
          backend: io.syncBackend(),
          log,
          random,
          demote: (reason, value, why) => this.demotions.set(reason, value, why),
          ignoreAddresses: [...(own ? [own] : []), peer.address, ...[...sockets.nets.values()].map((n) => n.address)],
          // Multi-WAN marks IPv4 connections only.
          leaveOut: () => {
            const dead = this.wan?.deadFor()
            return dead ? (flow) => (flow.family === FAMILY_IPV4 ? dead(flow) : null) : null
          },
        })
        // A takeover loads the peer's connections but those of a WAN that is dead on
        // this board, which multi-WAN then drains (it is created below, hence the look-ups).
        const link = this.sync
        this.agent.attachSync({
          promoted: () => link.promoted().then(() => this.wan?.promoted()),
          stoppedServing: () => link.stoppedServing(),
        })
      }
    }

    // Split-brain protection: on when the peer can be heard on a path besides the LAN
    // (sync link, serial line) or a witness is configured.
    const w = config.witness.address
    if (peerLink || config.serial.device || w) {
      if (config.serial.device) {
        this.serial = io.serialPort({ device: config.serial.device, baud: config.serial.baud, onFrame: (f) => this.quorum?.onSerialFrame(f) })
      }
      this.quorum = new QuorumRuntime({
        node: config.node,
        agent: this.agent,
        clock,
        log,
        random,
        leaseMs: config.witness.leaseMs,
        heartbeatIntervalMs: config.heartbeat.intervalMs,
        heartbeatTimeoutMs: config.heartbeat.timeoutMs,
        lanTimeoutMs: Math.max(...config.carp.vhids.map((vc) => masterDownMs(vc.advbaseS, vc.advskew))),
        powerOn: (io.uptimeMs?.() ?? 0) < POWER_ON_UPTIME_MS,
        peerKey: config.sync.key || config.witness.key,
        sync: peerLink,
        serial: this.serial,
        witness: w && sockets.witness ? { transport: sockets.witness, address: { address: w.address, port: w.port || WITNESS_PORT_DEFAULT }, key: config.witness.key } : null,
      })
      this.agent.attachQuorum(this.quorum)
    }

    // Multi-WAN, pair-aware: the WANs' health goes to the peer in every heartbeat, and a
    // board whose WANs are all offline while the peer has a healthy one is demoted.
    if (config.wans.length > 0) {
      const flavour = config.wanRules === 'nft' ? 'nft' : 'iptables'
      const wan: WanRuntime = new WanRuntime({
        config,
        clock,
        log,
        random,
        applier: io.wanApplier(),
        render: (wans, plan) => renderWanSet(flavour, wans, plan),
        routes: (wans, own) => routeCommands(wans, own),
        openSocket: (address) => io.openUdp({ port: 0, bindAddress: address, multicastInterfaces: new Map() }),
        addressOf: (iface) => io.interfaceNet(iface)?.address ?? null,
        addressNow: (iface) => io.addressNow(iface),
        onRound: () => {
          const why = wanDemotion(wan.states(), this.quorum?.peerWans() ?? null)
          this.demotions.set('wan', why ? DEMOTE_WAN : 0, why ?? 'a WAN is healthy again, or the peer has none')
        },
      })
      this.wan = wan
      this.quorum?.setWans(() => wan.states())
    }

    this.desk = new ControlDesk({
      config,
      clock,
      random,
      demotions: this.demotions,
      resync: this.sync ? () => this.sync!.resync() : null,
      status: () => this.status(),
    })
  }

  /** Runs `close` when the board stops, before the sockets close. */
  onStop(close: Closer): void {
    this.closers.push(close)
  }

  /**
   * Starts every subsystem: sync first (its startup demotion must be in place before
   * the first advert), the quorum before the vhids (they report to it from their
   * first event), multi-WAN last.
   */
  start(): Promise<void> {
    if (this.state !== 'new') return Promise.resolve()
    this.state = 'running'
    const { io, log } = this.deps
    for (const w of this.config.wans) {
      const warning = io.reversePathWarning(w.interface)
      if (warning) log.event('wan', `warning: ${warning}`)
    }
    if (this.config.sync.backend === 'conntrack') {
      const warning = io.pickupWarning?.() ?? null
      if (warning) log.event('sync', `warning: ${warning}`)
    }
    // With a witness a master holds its VIPs on a lease; the fence removes them when the
    // lease runs out and this process could not (SIGSTOP, hang).
    if (this.quorum?.mode === 'witness') {
      this.fence = io.spawnFence((vhid) => this.agent.fenceExpired(vhid))
      if (this.fence) this.agent.attachFence(this.fence)
    }
    const rest = (): Promise<void> => {
      this.sync?.start()
      this.quorum?.start()
      this.serial?.start()
      this.agent.start()
      return this.wan?.start() ?? Promise.resolve()
    }
    // The virtual MACs exist before the first VIP goes up (platform/vmac.ts).
    const vmacs = io.platform.vmacs
    const vhids = this.config.carp.vhids
    const fenced = this.quorum?.mode === 'witness' && io.earlierFencesGone !== undefined
    // Nothing to prepare: everything starts now (tests drive a fake clock right after).
    if (!io.platform.prepare && !vmacs && !fenced) return rest()
    const prepare = async (): Promise<void> => {
      if (fenced) await io.earlierFencesGone!()
      await io.platform.prepare?.()
      if (!vmacs || vhids.length === 0) return
      const wanted = vhids.filter((vc) => vc.vmac).map((vc) => ({
        vhid: vc.vhid,
        parent: vc.interface,
        ipv4: vc.vips.some((vip) => !isIpv6(vip.address)),
        ipv6: vc.vips.some((vip) => isIpv6(vip.address)),
      }))
      this.agent.useVmacs(await vmacs.setUp(wanted, vhids.filter((vc) => !vc.vmac).map((vc) => vc.vhid)))
    }
    return prepare().then(rest)
  }

  /** Bows out of every vhid, stops every subsystem, then closes the sockets. */
  async stop(): Promise<void> {
    if (this.state === 'stopped') return
    const started = this.state === 'running'
    this.state = 'stopped'
    if (started) {
      await this.agent.stop()
      await this.deps.io.platform.vmacs?.tearDown()
      await this.wan?.stop()
      this.fence?.close()
      this.quorum?.stop()
      await this.serial?.close()
      await this.sync?.stop()
    }
    for (const close of this.closers.reverse()) await close()
  }

  control(req: ControlRequest): ControlReply {
    return this.desk.answer(req)
  }

  /**
   * Applies a new, already validated configuration (SIGHUP): CARP settings in place,
   * the rest noted as waiting for a restart. Refused (null, logged) when a new vhid's
   * interface does not exist, as start refuses it. Returns one note per change, logged.
   */
  reload(next: Config): string[] | null {
    const { io, log } = this.deps
    // Only interfaces the running vhids do not use, each once: every look-up may run `ip`.
    const running = new Set(this.agent.status().vhids.map((v) => v.interface))
    const fresh = [...new Set(next.carp.vhids.filter((vc) => !advertsOverIpv6(vc)).map((vc) => vc.interface))].filter((iface) => !running.has(iface))
    const missing = new Set(fresh.filter((iface) => io.interfaceNet(iface) === undefined))
    const gone = next.carp.vhids.filter((vc) => advertsOverIpv6(vc) && !io.hasInterface(vc.interface))
    if (missing.size > 0 || gone.length > 0) {
      log.event('config', 'reload rejected, keeping the running configuration:')
      for (const vc of next.carp.vhids) {
        if (missing.has(vc.interface) && !advertsOverIpv6(vc)) log.event('config', `carp.${vc.vhid}.interface = ${vc.interface}: no such interface with an IPv4 address`)
      }
      for (const vc of gone) log.event('config', `carp.${vc.vhid}.interface = ${vc.interface}: no such interface`)
      return null
    }
    this.desk.reloaded(next)
    const carpNotes = this.agent.reload(next.carp)
    // A WAN is NATed to a VIP only of a vhid the agent runs: one it holds back until a
    // restart (a new multicast interface) has no board answering for its address.
    const wans = next.wans.map((w) => ({ ...w, ...wanShare(w.interface, w.gateway, this.agent.runningVhids(), (vc) => this.agent.vmacOf(vc.vhid)) }))
    const notes = [...restartChanges(this.config, next).map(restartNote), ...carpNotes, ...(this.wan && next.wans.length > 0 ? this.wan.reload({ ...next, wans }) : [])]
    for (const note of notes) log.event('config', `reload: ${note}`)
    return notes
  }

  status(): BoardStatus {
    const carp = this.agent.status()
    return {
      node: this.config.node,
      version: VERSION,
      uptimeMs: Math.round(this.deps.clock.now() - this.startedMs),
      maint: this.demotions.get('maint') > 0,
      demote: { total: this.demotions.total(), reasons: this.demotions.shares() },
      vhids: carp.vhids,
      drops: carp.drops,
      sendErrors: carp.sendErrors,
      platformFailures: carp.platformFailures,
      repairs: carp.repairs,
      links: carp.links,
      sync: this.sync?.status() ?? null,
      quorum: this.quorum?.status() ?? null,
      wan: this.wan?.status() ?? null,
      bugs: carp.bugs,
    }
  }
}
