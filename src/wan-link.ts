// Wires multi-WAN's pure parts to the world: a UDP socket per WAN bound to that WAN's
// own address (so its probes leave through it, by the source rule of its routing
// table), the probe rounds and their timeouts on the clock, health with hysteresis,
// the plan of where new connections go, and the platform that loads the rules.
//
// On a change of plan the new rules are loaded first, then the connections of a WAN
// that went offline are removed (by its mark), so new connections never take the
// dead WAN and healthy ones are left alone. Loads run one at a time, in order; a
// failed load keeps the previous rules and says why.

import type { Config } from './config/types.js'
import type { Clock, TimerHandle } from './io/clock.js'
import type { Logger } from './io/log.js'
import type { Transport } from './io/transport.js'
import type { WanApplier, WanHook } from './platform/wan.js'
import { WanHealth } from './wan/health.js'
import { describePlan, plan as makePlan, planChanged } from './wan/policy.js'
import { WanProber } from './wan/probe.js'
import type { WanPlan, WanSpec, WanState } from './wan/types.js'

const DNS_PORT = 53

export interface WanRules {
  flavour: 'iptables' | 'nft'
  text: string
  hooks: WanHook[]
}

export interface WanLinkDeps {
  config: Config
  clock: Clock
  log: Logger
  random(bytes: number): Buffer
  applier: WanApplier
  /** The rules for a plan, in the configured flavour. */
  render(wans: WanSpec[], plan: WanPlan): WanRules
  /** The policy-routing commands for the WANs. */
  routes(wans: WanSpec[]): { del: string[][]; add: string[][] }
  /** A UDP socket bound to `address`, any port, for one WAN's probes. */
  openSocket(address: string): Promise<Transport>
  /** The IPv4 address of an interface, or null. */
  addressOf(iface: string): string | null
  /** Called after every probe round (pair awareness looks at both boards' WANs). */
  onRound?(): void
}

export interface WanStatus {
  wan: number
  interface: string
  address: string | null
  state: WanState
  forMs: number
  reason: string
  loss: number | null
  latencyMs: number | null
  probes: ReturnType<WanProber['status']>
}

export interface WanLinkStatus {
  plan: string
  wans: WanStatus[]
  loads: number
  loadFailures: number
  lastLoad: { ok: boolean; agoMs: number; error: string | null } | null
  flushed: number // connections removed from WANs that went offline
}

interface Wan {
  spec: WanSpec
  prober: WanProber
  health: WanHealth
  state: WanState
  sinceMs: number
  reason: string
  transport: Transport | null
}

export class WanLink {
  private readonly wans: Wan[] = []
  private plan: WanPlan | null = null
  private queue: Promise<void> = Promise.resolve()
  private roundTimer: TimerHandle | null = null
  private wakeTimer: TimerHandle | null = null
  private running = false
  private loads = 0
  private loadFailures = 0
  private lastLoad: { ok: boolean; atMs: number; error: string | null } | null = null
  private flushed = 0

  constructor(private readonly deps: WanLinkDeps) {
    const now = deps.clock.now()
    for (const c of deps.config.wans) {
      const spec: WanSpec = { ...c, address: deps.addressOf(c.interface) }
      this.wans.push({
        spec,
        prober: new WanProber({ wan: c.wan, targets: c.probes, need: c.probeNeed, timeoutMs: deps.config.wanProbe.timeoutMs, random: deps.random }),
        health: new WanHealth(deps.config.wanProbe),
        state: 'offline',
        sinceMs: now,
        reason: 'no probe round yet',
        transport: null,
      })
    }
  }

  /** Opens the probe sockets, loads the routes and the first plan, starts probing. */
  async start(): Promise<void> {
    this.running = true
    const { log } = this.deps
    for (const w of this.wans) {
      if (!w.spec.address) {
        w.reason = `${w.spec.interface} has no IPv4 address: probes cannot leave through it`
        log.event('wan', `wan${w.spec.wan} ${w.reason}, counted as failed`)
        continue
      }
      try {
        const transport = await this.deps.openSocket(w.spec.address)
        // stop() may have come while the socket was opening (SIGTERM at boot).
        if (!this.running) {
          await transport.close()
          return
        }
        w.transport = transport
        w.transport.onPacket((bytes, from) => this.onReply(w, bytes, from.address))
      } catch (err) {
        w.reason = `cannot open a probe socket on ${w.spec.address}: ${(err as Error).message}`
        log.event('wan', `wan${w.spec.wan}: ${w.reason}`)
      }
    }
    if (!this.running) return
    const specs = this.specs()
    this.enqueue('routes', () => this.deps.applier.routes(this.deps.routes(specs)))
    this.replan()
    this.round()
  }

  async stop(): Promise<void> {
    this.running = false
    this.roundTimer?.cancel()
    this.wakeTimer?.cancel()
    await Promise.all(this.wans.map((w) => w.transport?.close()))
    await this.queue
  }

  /** Every WAN's state, for the peer (pair awareness) and the console. */
  states(): { wan: number; state: WanState }[] {
    return this.wans.map((w) => ({ wan: w.spec.wan, state: w.state }))
  }

  status(): WanLinkStatus {
    const now = this.deps.clock.now()
    return {
      plan: this.plan ? describePlan(this.plan) : 'none yet',
      wans: this.wans.map((w) => {
        const h = w.health.status()
        return {
          wan: w.spec.wan,
          interface: w.spec.interface,
          address: w.spec.address,
          state: w.state,
          forMs: Math.round(now - w.sinceMs),
          reason: w.reason,
          loss: h.loss,
          latencyMs: h.latencyMs,
          probes: w.prober.status(),
        }
      }),
      loads: this.loads,
      loadFailures: this.loadFailures,
      lastLoad: this.lastLoad && { ok: this.lastLoad.ok, agoMs: Math.round(now - this.lastLoad.atMs), error: this.lastLoad.error },
      flushed: this.flushed,
    }
  }

  private specs(): WanSpec[] {
    return this.wans.map((w) => w.spec)
  }

  /** One probe round on every WAN, then the next one an interval later. */
  private round(): void {
    if (!this.running) return
    const now = this.deps.clock.now()
    for (const w of this.wans) {
      for (const q of w.prober.startRound(now)) {
        if (!w.transport) continue
        w.transport.send(q.bytes, { address: q.target, port: DNS_PORT }).catch(() => {
          // An unreachable WAN fails its sends: the round times out and counts as lost.
        })
      }
    }
    this.roundTimer = this.deps.clock.at(now + this.deps.config.wanProbe.intervalMs, () => this.round())
    this.tick()
    this.deps.onRound?.()
  }

  private onReply(w: Wan, bytes: Buffer, from: string): void {
    w.prober.reply(from, bytes, this.deps.clock.now())
    this.tick()
  }

  /** Completed rounds into health; a changed state into a new plan. */
  private tick(): void {
    if (!this.running) return
    const now = this.deps.clock.now()
    let changed = false
    const wentOffline = new Set<number>()
    for (const w of this.wans) {
      for (const r of w.prober.tick(now)) {
        const h = w.health.round(r, now)
        if (!h.changed) continue
        if (h.state === 'offline') wentOffline.add(w.spec.wan)
        this.deps.log.event('wan', `wan${w.spec.wan} ${w.spec.interface} ${w.state}->${h.state} reason="${h.reason}"`)
        w.state = h.state
        w.sinceMs = now
        w.reason = h.reason
        changed = true
      }
    }
    if (changed) this.replan(wentOffline)
    this.wakeTimer?.cancel()
    const next = Math.min(...this.wans.map((w) => w.prober.nextWakeMs()))
    this.wakeTimer = Number.isFinite(next) ? this.deps.clock.at(Math.max(now, next), () => this.tick()) : null
  }

  /** `wentOffline`: WANs that just failed; only their connections are removed. */
  private replan(wentOffline: ReadonlySet<number> = new Set()): void {
    const next = makePlan(this.wans.map((w) => ({ wan: w.spec.wan, tier: w.spec.tier, weight: w.spec.weight, state: w.state })))
    const before = this.plan
    if (before && !planChanged(before, next)) return
    this.plan = next
    this.deps.log.event('wan', `new connections: ${describePlan(next)}`)
    const specs = this.specs()
    const rules = this.deps.render(specs, next)
    this.enqueue(`${rules.flavour} rules`, () => this.deps.applier.loadRules(rules.flavour, rules.text, rules.hooks), true)
    // Only connections of a WAN that just failed and left the plan go, after the new
    // rules are in. (A WAN that leaves it because a better tier came back, or that
    // was already offline while every WAN was, keeps its connections.)
    const gone = (before?.active ?? []).filter((a) => !next.active.some((b) => b.wan === a.wan) && wentOffline.has(a.wan))
    for (const a of gone) {
      this.enqueue(`removing wan${a.wan}'s connections`, async () => {
        const n = await this.deps.applier.flushConnections(a.wan)
        this.flushed += n
        this.deps.log.event('wan', `wan${a.wan} offline: removed its ${n} connection${n === 1 ? '' : 's'}; other WANs' connections untouched`)
      })
    }
  }

  private enqueue(what: string, job: () => Promise<void>, isLoad = false): void {
    this.queue = this.queue.then(async () => {
      try {
        await job()
        if (isLoad) {
          this.loads++
          this.lastLoad = { ok: true, atMs: this.deps.clock.now(), error: null }
        }
      } catch (err) {
        const message = (err as Error).message
        if (isLoad) {
          this.loadFailures++
          this.lastLoad = { ok: false, atMs: this.deps.clock.now(), error: message }
        }
        this.deps.log.event('wan', isLoad ? `${what} not loaded, the previous set stays: ${message}` : `${what} failed: ${message}`)
      }
    })
  }
}
