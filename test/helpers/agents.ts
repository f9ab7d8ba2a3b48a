// Builds boards (daemon/board.ts) on a fake clock and an in-memory network, so whole
// pairs run in one process with time driven by hand.
import { Board, type BoardIo } from '../../src/daemon/board.js'
import { type ControlReply, type ControlRequest, requestMac } from '../../src/control/protocol.js'
import type { Config, VhidConfig } from '../../src/config/types.js'
import type { Logger } from '../../src/io/log.js'
import type { Platform } from '../../src/platform/types.js'
import { FakeClock } from './clock.js'
import { MemNet } from './net.js'

export const CARP_PORT = 8240

export function vhidConfig(over: Partial<VhidConfig> = {}): VhidConfig {
  return {
    vhid: 1,
    interface: 'lan0',
    vips: [{ address: '192.0.2.1', prefix: 24 }],
    advbaseS: 1,
    advskew: 0,
    pass: 'secret',
    peers: [],
    vmac: true,
    ...over,
  }
}

export function makeConfig(node: string, vhids: VhidConfig[], carp: Partial<Config['carp']> = {}): Config {
  return {
    file: `${node}.conf`,
    node,
    board: '',
    platform: 'linux',
    controlPort: 8239,
    log: { format: 'full', syslog: null, facility: 'daemon' },
    carp: { port: CARP_PORT, preempt: true, preemptHolddownMs: 0, upscript: '', downscript: '', vhids, ...carp },
    sync: { interface: '', peer: null, port: 8242, key: '', backend: 'none', bulkTimeoutMs: 30_000 },
    serial: { device: '', baud: 19200 },
    heartbeat: { intervalMs: 250, timeoutMs: 1000 },
    witness: { address: null, key: '', leaseMs: 3000, listen: null, state: '' },
    wans: [],
    wanRules: 'iptables',
    wanProbe: { intervalMs: 500, timeoutMs: 1000, window: 10, lossDown: 0.5, lossUp: 0.1, latencyDownMs: 500, latencyUpMs: 250, downRounds: 3, upRounds: 5, failbackHoldMs: 10_000 },
  }
}

/** A platform that records calls; `fail` makes a call reject. */
export class RecordingPlatform implements Platform {
  readonly calls: string[] = []
  fail = false
  /** Interfaces whose link is down. */
  readonly linksDown = new Set<string>()
  /** Which calls fail: all of them (fail), or only these kinds. */
  readonly failing = new Set<'add' | 'del' | 'garp' | 'hook'>()
  garpBeforeAddress = false
  linkUp = (iface: string) => !this.linksDown.has(iface)
  /** VIP addresses on the interfaces, as the successful add and del calls left them. */
  readonly held = new Set<string>()
  /** Opt-in (the self-repair check): `async () => new Set(platform.held)`. */
  addresses?: (iface: string) => Promise<Set<string>>
  private record(call: string): Promise<void> {
    this.calls.push(call)
    const kind = call.split(' ')[0] as 'add' | 'del' | 'garp' | 'hook'
    if (this.fail || this.failing.has(kind)) return Promise.reject(new Error('command failed'))
    const address = call.split(' ')[2]?.split('/')[0]
    if (kind === 'add') this.held.add(address!)
    if (kind === 'del') this.held.delete(address!)
    return Promise.resolve()
  }
  addVip = (iface: string, vip: { address: string; prefix: number }) => this.record(`add ${iface} ${vip.address}/${vip.prefix}`)
  removeVip = (iface: string, vip: { address: string; prefix: number }) => this.record(`del ${iface} ${vip.address}/${vip.prefix}`)
  garp = (iface: string, vip: { address: string }) => this.record(`garp ${iface} ${vip.address}`)
  runHook = (script: string, args: readonly string[]) => this.record(`hook ${script} ${args.join(' ')}`)
}

export interface Node {
  name: string
  config: Config
  address: string
  /** The whole board (named for what the tests drive: its CARP agent, status and control). */
  agent: Board
  platform: RecordingPlatform
  lines: string[]
}

export class Lab {
  readonly clock = new FakeClock(0)
  readonly net: MemNet
  readonly nodes = new Map<string, Node>()
  private nextRandom = 1

  constructor(latencyMs = 1) {
    this.net = new MemNet(this.clock, latencyMs)
  }

  add(name: string, address: string, config: Config): Node {
    const lines: string[] = []
    const log: Logger = { event: (sub, msg) => lines.push(`${sub} ${msg}`) }
    const platform = new RecordingPlatform()
    const seed = this.nextRandom++
    let draws = 0
    const net = { address, prefix: 24 }
    const agent = new Board(
      {
        config,
        clock: this.clock,
        log,
        random: (n) => Buffer.alloc(n, seed * 16 + draws++), // distinct per node and per draw
        io: memIo(platform, net),
      },
      {
        carp: this.net.transport({ address, port: config.carp.port }),
        sync: null,
        witness: null,
        nets: new Map(config.carp.vhids.filter((vc) => vc.interface === 'lan0').map((vc) => [vc.interface, net])),
      },
    )
    const node = { name, config, address, agent, platform, lines }
    this.nodes.set(name, node)
    return node
  }

  state(name: string, vhid = 1): string | undefined {
    return this.nodes.get(name)!.agent.status().vhids.find((v) => v.vhid === vhid)?.state
  }

  /** Names of the nodes that are MASTER of `vhid`. */
  masters(vhid = 1): string[] {
    return [...this.nodes.values()].filter((n) => this.state(n.name, vhid) === 'MASTER').map((n) => n.name)
  }

  /** Lets promises (platform calls, sends) settle. */
  async settle(): Promise<void> {
    for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r))
  }
}

/** A control request as `carpd ctl` sends it: the agent's challenge answered with the node's config. */
export function control(node: Node, req: ControlRequest): ControlReply {
  if (req.cmd === 'status' || req.cmd === 'challenge') return node.agent.control(req)
  const challenge = node.agent.control({ cmd: 'challenge' })
  const nonce = challenge.ok && 'nonce' in challenge ? challenge.nonce : ''
  return node.agent.control({ ...req, nonce, mac: requestMac(node.config, nonce, req) } as ControlRequest)
}

/** Edges for a board with CARP only: every interface has `net`; nothing else is opened. */
export function memIo(platform: Platform, net: { address: string; prefix: number }): BoardIo {
  const none = (what: string) => () => {
    throw new Error(`this test board has no ${what}`)
  }
  return {
    platform,
    interfaceNet: () => net,
    addressNow: () => net.address,
    linkMtu: () => 1500,
    openUdp: none('sockets beyond the CARP one'),
    startControl: none('control socket'),
    syncBackend: none('sync backend'),
    serialPort: none('serial port'),
    wanApplier: none('WAN rule loader'),
    reversePathWarning: () => null,
    spawnFence: () => null,
    hasInterface: () => true,
  }
}
