// Runs a WanRuntime on a fake clock: one fake probe socket per WAN that records what it
// sends, resolvers that answer (or not) after a latency, and a platform that records
// what it was asked to load. Time moves only by step().
import type { Config, Endpoint, WanConfig } from '../../src/config/types.js'
import type { Logger } from '../../src/io/log.js'
import type { Transport } from '../../src/io/transport.js'
import type { WanApplier, WanHook } from '../../src/wan/types.js'
import { WanRuntime, type WanRuntimeDeps } from '../../src/wan/runtime.js'
import { renderWanSet, routeCommands } from '../../src/wan/rules/index.js'
import type { WanSpec } from '../../src/wan/types.js'
import { makeConfig } from './agents.js'
import { FakeClock } from './clock.js'

export const DNS_PORT = 53
/** Steps of the fake clock between deliveries of resolver answers. */
export const STEP_MS = 10

/** A resolver's answer to a probe, as test/lab/wan-tools.mjs `dns` makes it: the query with QR, RD and RA set. */
export function dnsAnswer(query: Buffer): Buffer {
  const reply = Buffer.from(query)
  reply[2] = 0x81
  reply[3] = 0x80
  return reply
}

export function wanConfig(wan: number, over: Partial<WanConfig> = {}): WanConfig {
  return {
    wan,
    interface: `wan${wan}`,
    gateway: `203.0.113.${16 * (wan - 1) + 1}`,
    weight: 1,
    tier: 1,
    probes: [`198.18.${wan}.53`],
    probeNeed: 1,
    natAddress: null,
    vipInterfaces: [],
    ...over,
  }
}

export function wanLinkConfig(wans: WanConfig[], flavour: 'iptables' | 'nft' = 'iptables'): Config {
  return { ...makeConfig('router', []), wans, wanRules: flavour }
}

interface SentProbe {
  atMs: number
  bytes: Buffer
  to: Endpoint
  answered: boolean
}

/** One WAN's probe socket: records sends; the test says which targets answer. */
export class FakeProbeSocket implements Transport {
  readonly sent: SentProbe[] = []
  handler: ((payload: Buffer, from: Endpoint) => void) | null = null
  closed = false
  /** Sends reject (an unreachable network). */
  failSends = false

  constructor(
    readonly address: string,
    private readonly clock: FakeClock,
  ) {}

  async send(payload: Buffer, to: Endpoint): Promise<void> {
    if (this.closed) throw new Error('socket closed')
    if (this.failSends) throw new Error('ENETUNREACH')
    this.sent.push({ atMs: this.clock.now(), bytes: Buffer.from(payload), to, answered: false })
  }

  onPacket(handler: (payload: Buffer, from: Endpoint) => void): void {
    this.handler = handler
  }

  async close(): Promise<void> {
    this.closed = true
  }

  /** A datagram from `from` port 53 arrives. */
  receive(bytes: Buffer, from: string): void {
    this.handler?.(bytes, { address: from, port: DNS_PORT })
  }
}

export interface ApplierCall {
  what: 'routes' | 'loadRules' | 'flushConnections'
  atMs: number
  flavour?: 'iptables' | 'nft'
  text?: string
  hooks?: readonly WanHook[]
  cmds?: { del: string[][]; add: string[][] }
  wan?: number
}

/** A platform that records calls; each kind can be told to reject, or be held until released. */
export class FakeWanApplier implements WanApplier {
  readonly calls: ApplierCall[] = []
  failLoad: Error | null = null
  failRoutes: Error | null = null
  failFlush: Error | null = null
  /** What flushConnections resolves with. */
  flushCount = 0
  /** While set, loadRules waits for release(). */
  hold = false
  private held: (() => void)[] = []

  constructor(private readonly clock: FakeClock) {}

  async loadRules(flavour: 'iptables' | 'nft', text: string, hooks: readonly WanHook[]): Promise<void> {
    this.calls.push({ what: 'loadRules', atMs: this.clock.now(), flavour, text, hooks })
    if (this.hold) await new Promise<void>((r) => this.held.push(r))
    if (this.failLoad) throw this.failLoad
  }

  async routes(cmds: { del: string[][]; add: string[][] }): Promise<void> {
    this.calls.push({ what: 'routes', atMs: this.clock.now(), cmds })
    if (this.failRoutes) throw this.failRoutes
  }

  /** What drift() reports missing (once: the repair puts it back); how often it was asked. */
  missing: string[] = []
  driftChecks = 0
  readonly driftAt: number[] = []
  failDrift: Error | null = null

  /** The route adds each check was asked about. */
  readonly driftRoutes: (readonly string[][])[] = []

  async drift(_flavour: 'iptables' | 'nft', _hooks: readonly WanHook[], routes: readonly string[][]): Promise<string[]> {
    this.driftChecks++
    this.driftAt.push(this.clock.now())
    this.driftRoutes.push(routes)
    if (this.failDrift) throw this.failDrift
    return this.missing.splice(0)
  }

  async flushConnections(wan: number): Promise<number> {
    this.calls.push({ what: 'flushConnections', atMs: this.clock.now(), wan })
    if (this.failFlush) throw this.failFlush
    return this.flushCount
  }

  release(): void {
    this.hold = false
    for (const r of this.held.splice(0)) r()
  }

  /** The calls in order, in short: `routes`, `load iptables`, `flush 2`. */
  summary(): string[] {
    return this.calls.map((c) => (c.what === 'routes' ? 'routes' : c.what === 'loadRules' ? `load ${c.flavour}` : `flush ${c.wan}`))
  }
}

export interface WanRuntimeHarnessOptions {
  wans: WanConfig[]
  flavour?: 'iptables' | 'nft'
  /** Interface → its IPv4 address; an interface missing here has none. */
  addresses?: Record<string, string>
  /** Addresses whose socket cannot be opened. */
  failOpen?: Set<string>
  /** Resolver round trip. */
  latencyMs?: number
  /** Replaces parts of the probe settings. */
  probe?: Partial<Config['wanProbe']>
  /** Awaited before each socket opens (a slow bind). */
  beforeOpen?: (address: string) => Promise<void>
}

export class WanRuntimeHarness {
  readonly clock = new FakeClock(0)
  readonly lines: string[] = []
  readonly log: Logger = { event: (sub, msg) => void this.lines.push(`${sub} ${msg}`) }
  readonly applier = new FakeWanApplier(this.clock)
  readonly sockets = new Map<number, FakeProbeSocket>() // by WAN number
  readonly config: Config
  /** Probe targets that answer; every target at first. */
  readonly answering = new Set<string>()
  rounds = 0
  latencyMs: number
  readonly link: WanRuntime
  /** Interface → IPv4 address, as addressOf answers. */
  readonly addresses: Record<string, string>
  private nextId = 1

  constructor(opts: WanRuntimeHarnessOptions) {
    const base = wanLinkConfig(opts.wans, opts.flavour)
    this.config = { ...base, wanProbe: { ...base.wanProbe, ...opts.probe } }
    this.latencyMs = opts.latencyMs ?? 20
    for (const w of opts.wans) for (const p of w.probes) this.answering.add(p)
    const addresses = (this.addresses = opts.addresses ?? Object.fromEntries(opts.wans.map((w) => [w.interface, `203.0.113.${16 * (w.wan - 1) + 2}`])))
    const flavour = opts.flavour ?? 'iptables'
    const deps: WanRuntimeDeps = {
      config: this.config,
      clock: this.clock,
      log: this.log,
      // Ids count up: every probe has its own.
      random: (n) => {
        const b = Buffer.alloc(n)
        b.writeUInt16BE(this.nextId++ & 0xffff, 0)
        return b
      },
      applier: this.applier,
      render: (wans, plan) => renderWanSet(flavour, wans, plan),
      routes: (wans, own) => routeCommands(wans, own),
      openSocket: async (address) => {
        await opts.beforeOpen?.(address)
        if (opts.failOpen?.has(address)) throw new Error(`bind EADDRNOTAVAIL ${address}`)
        // By address: a WAN a reload adds is found too (its interface is in `addresses`).
        const iface = Object.keys(addresses).find((k) => addresses[k] === address)!
        const wan = opts.wans.find((w) => w.interface === iface)?.wan ?? Number(iface.replace(/\D/g, ''))
        const s = new FakeProbeSocket(address, this.clock)
        this.sockets.set(wan, s)
        return s
      },
      addressOf: (iface) => addresses[iface] ?? null,
      onRound: () => void this.rounds++,
    }
    this.link = new WanRuntime(deps)
  }

  /** The WANs as the link sees them: configuration and address. */
  specs(): WanSpec[] {
    return this.config.wans.map((w) => ({ ...w, address: this.addresses[w.interface] ?? null }))
  }

  /** Lets the link's queue of platform calls run. */
  async settle(): Promise<void> {
    for (let i = 0; i < 10; i++) await new Promise((r) => setImmediate(r))
  }

  /** Moves time by `ms`, answering every probe to an answering target `latencyMs` after it left. */
  async step(ms: number): Promise<void> {
    const end = this.clock.now() + ms
    while (this.clock.now() < end) {
      this.clock.advance(Math.min(STEP_MS, end - this.clock.now()))
      this.deliver()
      await this.settle()
    }
  }

  private deliver(): void {
    const now = this.clock.now()
    for (const s of this.sockets.values()) {
      for (const p of s.sent) {
        if (p.answered || p.atMs + this.latencyMs > now) continue
        // A target that does not answer drops the query: it never comes back later.
        p.answered = true
        if (this.answering.has(p.to.address) && !s.closed) s.receive(dnsAnswer(p.bytes), p.to.address)
      }
    }
  }

  /** The console lines that match `re`. */
  grep(re: RegExp): string[] {
    return this.lines.filter((l) => re.test(l))
  }
}
