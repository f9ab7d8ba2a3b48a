// Wires multi-WAN's pure parts to the world: a UDP socket per WAN bound to that WAN's
// own address (so its probes leave through it, by the source rule of its routing
// table), the probe rounds and their timeouts on the clock, health with hysteresis,
// the plan of where new connections go, and the platform that loads the rules.
//
// On a change of plan the new rules are loaded first, then the connections of a WAN
// that went offline are removed (by its mark), so new connections never take the
// dead WAN and healthy ones are left alone. Loads run one at a time, in order; a
// failed load keeps the previous rules and says why.

import type { Config, WanConfig } from '../config/types.js'
import type { Clock, TimerHandle } from '../io/clock.js'
import type { Logger } from '../io/log.js'
import type { Transport } from '../io/transport.js'
import { WanHealth } from './health.js'
import { describePlan, plan as makePlan, ownWan, planChanged } from './policy.js'
import { WanProber } from './probe.js'
import type { WanRuntimeStatus } from './status.js'
import { WAN_RULE_PREF_MAIN, ownTableHandsOn } from './rules/routes.js'
import { WAN_MARK_MASK, WAN_MARK_SHIFT, WAN_RULE_PREF_OWN, type WanApplier, type WanHook, type WanPlan, type WanSpec, type WanState, wanTable } from './types.js'

const DNS_PORT = 53
/** ip rules every WAN shares: a WAN taken out of the file does not take them along. */
const SHARED_PREFS = new Set([String(WAN_RULE_PREF_MAIN), String(WAN_RULE_PREF_OWN)])
/** A WAN that never came up counts as judged after the time of this many times up.rounds + down.rounds probe rounds (see states()). */
const JUDGED_AFTER_RUNS = 2
/** How often the WANs' addresses are looked at again (DHCP, PPPoE). */
const ADDRESS_CHECK_MS = 5000
/** A failed rules load is tried again this long after. */
const LOAD_RETRY_MS = 5000
/**
 * How often the loaded rules, jumps and routes are checked to still be there (an
 * operator's iptables-restore or `ip rule flush` removes them): drift is repaired
 * within this plus one load.
 */
export const WAN_REPAIR_CHECK_MS = 3000
/** A failed probe round asks for a check at once, at most this often. */
const WAN_EARLY_CHECK_MS = 1000

export interface WanRules {
  flavour: 'iptables' | 'nft'
  text: string
  hooks: WanHook[]
}

export interface WanRuntimeDeps {
  config: Config
  clock: Clock
  log: Logger
  random(bytes: number): Buffer
  applier: WanApplier
  /** The rules for a plan, in the configured flavour. */
  render(wans: WanSpec[], plan: WanPlan): WanRules
  /** The policy-routing commands for the WANs, `own` the one the router's own traffic takes (null: the main table's). */
  routes(wans: WanSpec[], own: number | null): { del: string[][]; add: string[][] }
  /** A UDP socket bound to `address`, any port, for one WAN's probes. */
  openSocket(address: string): Promise<Transport>
  /** The IPv4 address of an interface, or null. */
  addressOf(iface: string): string | null
  /** The same, cheap enough to ask every few seconds (default: addressOf). */
  addressNow?(iface: string): string | null
  /** Called after every probe round (pair awareness looks at both boards' WANs). */
  onRound?(): void
}

interface Wan {
  spec: WanSpec
  prober: WanProber
  health: WanHealth
  state: WanState
  sinceMs: number
  reason: string
  transport: Transport | null
  drained: boolean // its connections were removed since it was last judged dead
  probedSinceMs: number | null // when its probing started (start(), or its reload add); a reload of its probes keeps it
}

export class WanRuntime {
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
  private loaded: WanPlan | null = null
  private rulesInstalled = false
  private nextAddressCheckMs = 0
  private retry: TimerHandle | null = null
  private readonly toFlush = new Set<number>()
  /** The configuration in force: the one started with, then each reload's. */
  private config: Config
  /** `ip rule del` of WANs a reload removed, run with the next full load of the routes. */
  private retired: string[][] = []
  /** What the last loads put in, for the self-repair check. */
  private inKernel: { flavour: 'iptables' | 'nft'; hooks: WanHook[]; routes: string[][] } | null = null
  private repairs = 0
  private repairTimer: TimerHandle | null = null
  /** When the last self-repair check was queued (a failed round may ask for one early). */
  private lastCheckMs = -Infinity
  /** ip rules found missing: added back (alone) with the next load. */
  private rulesMissing = new Set<string>()
  /**
   * Route adds that failed (a PPPoE link not up yet, a gateway not on a connected
   * network yet): tried again with every self-repair check until they go in, so they
   * do not wait for the next change of plan.
   */
  private routesPending: string[][] = []
  /** The route failure last logged, so a failure that stays is logged once. */
  private routeFailure: string | null = null

  constructor(private readonly deps: WanRuntimeDeps) {
    this.config = deps.config
    for (const c of deps.config.wans) this.wans.push(this.newWan(c))
  }

  private newWan(c: WanConfig): Wan {
    return {
      spec: { ...c, address: this.deps.addressOf(c.interface) },
      prober: this.newProber(c),
      health: new WanHealth(this.config.wanProbe),
      state: 'offline',
      sinceMs: this.deps.clock.now(),
      reason: 'no probe round yet',
      transport: null,
      drained: false,
      probedSinceMs: this.running ? this.deps.clock.now() : null,
    }
  }

  private newProber(c: WanConfig): WanProber {
    return new WanProber({ wan: c.wan, targets: c.probes, need: c.probeNeed, timeoutMs: this.config.wanProbe.timeoutMs, random: this.deps.random })
  }

  /**
   * Applies changed `wan.*` settings (SIGHUP) without a restart. A WAN that keeps its
   * number and interface keeps its health, its state and its socket (new thresholds
   * judge its next round; new probe targets start a fresh round); a new WAN starts as
   * at boot; a removed one has its probe socket closed, its ip rules deleted and its
   * connections removed (nothing routes its mark any more). Then the routes and rules
   * are loaded again for the new set. Returns one line per change, for the console.
   */
  reload(next: Config): string[] {
    const notes: string[] = []
    const before = new Map(this.wans.map((w) => [w.spec.wan, w]))
    const probeChanged = JSON.stringify(next.wanProbe) !== JSON.stringify(this.config.wanProbe)
    this.config = next
    const kept: Wan[] = []
    for (const c of next.wans) {
      const old = before.get(c.wan)
      if (old && old.spec.interface === c.interface) {
        before.delete(c.wan)
        const sameProbes = JSON.stringify([old.spec.probes, old.spec.probeNeed]) === JSON.stringify([c.probes, c.probeNeed])
        if (!sameProbes || probeChanged) old.prober = this.newProber(c)
        old.health.reconfigure(next.wanProbe)
        if (JSON.stringify({ ...old.spec, address: null }) !== JSON.stringify({ ...c, address: null })) notes.push(`wan${c.wan} settings changed`)
        old.spec = { ...c, address: old.spec.address }
        kept.push(old)
        continue
      }
      const w = this.newWan(c)
      notes.push(`wan${c.wan} on ${c.interface} added${old ? ` (was on ${old.spec.interface})` : ''}: probing starts`)
      if (w.spec.address !== null && this.running) void this.open(w, w.spec.address)
      kept.push(w)
    }
    for (const old of before.values()) {
      if (!next.wans.some((c) => c.wan === old.spec.wan)) notes.push(`wan${old.spec.wan} removed: its rules, routes and connections go`)
      void old.transport?.close()
      old.transport = null
      // Its rules (not the main-table one, which the others share) and its table.
      this.retired.push(...this.deps.routes([old.spec], null).del.filter((argv) => !SHARED_PREFS.has(argv[4]!)), ['ip', 'route', 'flush', 'table', String(wanTable(old.spec.wan))])
      this.toFlush.add(old.spec.wan)
    }
    if (probeChanged) notes.push('wan.probe settings changed: they judge the next rounds')
    this.wans.splice(0, this.wans.length, ...kept)
    if (notes.length === 0) return []
    // Everything loads again: routes, rules (a gateway or weight may have changed).
    this.rulesInstalled = false
    this.plan = null
    if (this.running) {
      this.replan()
      this.queueFlush()
    }
    return notes
  }

  /**
   * This board became MASTER and loaded the peer's connections: those marked for a WAN
   * that is dead here would only hang until they time out. They are removed at once
   * (the clients reconnect through a live WAN), as a local outage removes them, with
   * the same care: not while every WAN is down, not for a WAN not yet judged dead
   * (wan.probe.down.rounds failed rounds in a row).
   */
  promoted(): Promise<void> {
    for (const w of this.wans) if (this.judgedDead(w)) this.toFlush.add(w.spec.wan)
    if (this.toFlush.size > 0 && this.running) this.queueFlush('after the takeover')
    return this.queue
  }

  /**
   * Which connections must not be loaded on this board now (the sync asks at each
   * commit of the peer's connections), by their mark, or null for none: those marked
   * for a WAN that is dead here and that the loaded rules no longer use (the
   * connections promoted() and a local outage remove; loaded later, a sync commit
   * would put back what the drain just removed).
   */
  deadFor(): ((flow: { mark: number }) => string | null) | null {
    const plan = this.loaded
    if (!plan) return null
    const dead = new Map<number, string>()
    for (const w of this.wans) {
      if (this.judgedDead(w) && !plan.active.some((a) => a.wan === w.spec.wan)) dead.set(w.spec.wan, `wan${w.spec.wan} is offline here`)
    }
    if (dead.size === 0) return null
    return (flow) => dead.get((flow.mark & WAN_MARK_MASK) >>> WAN_MARK_SHIFT) ?? null
  }

  /** Offline for wan.probe.down.rounds failed rounds in a row: its connections may go. */
  private judgedDead(w: Wan): boolean {
    return w.state === 'offline' && w.health.status().failedInRow >= this.config.wanProbe.downRounds
  }

  /** Opens the probe sockets, loads the routes and the first plan, starts probing. */
  async start(): Promise<void> {
    this.running = true
    for (const w of this.wans) w.probedSinceMs ??= this.deps.clock.now()
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
    this.nextAddressCheckMs = this.deps.clock.now() + ADDRESS_CHECK_MS
    this.replan()
    this.round()
    this.scheduleRepairCheck()
  }

  private scheduleRepairCheck(): void {
    if (!this.deps.applier.drift) return
    this.repairTimer = this.deps.clock.at(this.deps.clock.now() + WAN_REPAIR_CHECK_MS, () => {
      this.repairTimer = null
      this.checkNow()
      void this.queue.then(() => {
        if (this.running) this.scheduleRepairCheck()
      })
    })
  }

  private checkNow(): void {
    this.lastCheckMs = this.deps.clock.now()
    this.queue = this.queue.then(() => this.checkDrift())
  }

  /** Self-repair: what the last loads put in is still there, or it goes in again. */
  private async checkDrift(): Promise<void> {
    const k = this.inKernel
    if (!this.running || k === null || this.retry !== null) return
    let missing: string[]
    try {
      missing = await this.deps.applier.drift!(k.flavour, k.hooks, k.routes)
    } catch (err) {
      this.deps.log.event('wan', `self-repair check failed: ${(err as Error).message}`)
      return
    }
    if (!this.running) return
    if (missing.length === 0) return this.retryRoutes(k)
    this.repairs++
    this.deps.log.event('wan', `repair: ${missing.join(', ')} gone (removed by someone else): loading the rules and routes again`)
    // Only the missing ip rules go in again: deleting and adding them all would leave
    // probes and marked traffic without a rule for a moment (the lab saw WANs flap).
    for (const m of missing) if (m.startsWith('ip rule ')) this.rulesMissing.add(m.slice('ip rule '.length))
    this.load()
  }

  /** The route adds that failed before, once more; what goes in joins the self-repair check. */
  private async retryRoutes(k: NonNullable<WanRuntime['inKernel']>): Promise<void> {
    const pending = this.routesPending
    if (pending.length === 0) return
    try {
      await this.deps.applier.routes({ del: [], add: pending })
    } catch (err) {
      k.routes = [...k.routes, ...wentIn(pending, this.routeFailed(err))]
      return
    }
    k.routes = [...k.routes, ...pending]
    this.routesLoaded()
  }

  /** Logs a route failure unless it is the one logged last; returns (and keeps) the adds to try again. */
  private routeFailed(err: unknown): string[][] {
    const message = (err as Error).message
    if (message !== this.routeFailure) this.deps.log.event('wan', `routes not all loaded: ${message}`)
    this.routeFailure = message
    this.routesPending = (err as { failed?: string[][] }).failed ?? []
    return this.routesPending
  }

  private routesLoaded(): void {
    this.routesPending = []
    if (this.routeFailure !== null) this.deps.log.event('wan', 'routes all loaded now')
    this.routeFailure = null
  }

  async stop(): Promise<void> {
    this.running = false
    this.roundTimer?.cancel()
    this.wakeTimer?.cancel()
    this.retry?.cancel()
    this.repairTimer?.cancel()
    await Promise.all(this.wans.map((w) => w.transport?.close()))
    await this.queue
    // The router's own traffic goes back to the main table: a carpd stopped for good
    // (multi-WAN turned off) must not leave it pinned to the WAN that led last (review).
    if (this.rulesInstalled) await this.deps.applier.routes({ del: [], add: [ownTableHandsOn()] }).catch(() => undefined)
  }

  /**
   * Every WAN's state, for the peer (pair awareness) and the console. `judged` is
   * false for one offline only because it has not been up yet, nor failed
   * wan.probe.down.rounds rounds in a row, within the time of twice up.rounds +
   * down.rounds rounds (a board starting, its first good rounds still to come): no
   * verdict that should hand the VIPs over. After that a WAN that never came up is
   * judged whatever its rounds (one that fails every other round, say), and a reload
   * of its probe settings does not start that time again (review).
   */
  states(): { wan: number; state: WanState; judged: boolean }[] {
    const { downRounds, upRounds, intervalMs } = this.config.wanProbe
    const now = this.deps.clock.now()
    return this.wans.map((w) => {
      const h = w.health.status()
      const grace = w.probedSinceMs === null || now - w.probedSinceMs < JUDGED_AFTER_RUNS * (upRounds + downRounds) * intervalMs
      return { wan: w.spec.wan, state: w.state, judged: h.everUp || h.failedInRow >= downRounds || !grace }
    })
  }

  status(): WanRuntimeStatus {
    const now = this.deps.clock.now()
    return {
      plan: this.loaded ? describePlan(this.loaded) : 'none loaded yet',
      wanted: this.plan && (!this.loaded || planChanged(this.plan, this.loaded)) ? describePlan(this.plan) : null,
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
      repairs: this.repairs,
    }
  }

  private specs(): WanSpec[] {
    return this.wans.map((w) => w.spec)
  }

  /** One probe round on every WAN, then the next one an interval later. */
  private round(): void {
    if (!this.running) return
    const now = this.deps.clock.now()
    if (now >= this.nextAddressCheckMs) {
      this.nextAddressCheckMs = now + ADDRESS_CHECK_MS
      this.checkAddresses()
    }
    for (const w of this.wans) {
      for (const q of w.prober.startRound(now)) {
        if (!w.transport) continue
        w.transport.send(q.bytes, { address: q.target, port: DNS_PORT }).catch(() => {
          // An unreachable WAN fails its sends: the round times out and counts as lost.
        })
      }
    }
    this.roundTimer = this.deps.clock.at(now + this.config.wanProbe.intervalMs, () => this.round())
    this.tick()
    this.deps.onRound?.()
  }

  /**
   * A WAN on DHCP or PPPoE gets its address late, or a new one: the probe socket is
   * bound again, and the routes (source rule) and rules (SNAT) are loaded again.
   */
  private checkAddresses(): void {
    let moved = false
    for (const w of this.wans) {
      const address = (this.deps.addressNow ?? this.deps.addressOf)(w.spec.interface)
      if (address === w.spec.address) continue
      this.deps.log.event('wan', `wan${w.spec.wan} ${w.spec.interface} address ${w.spec.address ?? 'none'} -> ${address ?? 'none'}`)
      w.spec = { ...w.spec, address }
      void w.transport?.close()
      w.transport = null
      moved = true
      if (address !== null) void this.open(w, address)
    }
    if (!moved) return
    // The source rules name the old address: delete and add them all again.
    this.rulesInstalled = false
    if (this.plan) this.load()
  }

  private async open(w: Wan, address: string): Promise<void> {
    try {
      const transport = await this.deps.openSocket(address)
      if (!this.running || w.spec.address !== address) {
        await transport.close()
        return
      }
      w.transport = transport
      transport.onPacket((bytes, from) => this.onReply(w, bytes, from.address))
    } catch (err) {
      w.reason = `cannot open a probe socket on ${address}: ${(err as Error).message}`
      this.deps.log.event('wan', `wan${w.spec.wan}: ${w.reason}`)
    }
  }

  private onReply(w: Wan, bytes: Buffer, from: string): void {
    const outcome = w.prober.reply(from, bytes, this.deps.clock.now())
    this.tick()
    // An answer after its round had failed: the line is slow (a saturated uplink's
    // queue), not dead, and must not be drained for it (review).
    if (outcome === 'late') w.health.alive()
  }

  /** Completed rounds into health; a changed state into a new plan. */
  private tick(): void {
    if (!this.running) return
    const now = this.deps.clock.now()
    let changed = false
    let drain = false
    for (const w of this.wans) {
      for (const r of w.prober.tick(now)) {
        // A failed round may be our own routes gone (a route deleted by hand): look now,
        // not at the next check, so it is put back before the WAN is judged dead.
        if (!r.good && this.inKernel !== null && now - this.lastCheckMs >= WAN_EARLY_CHECK_MS && this.deps.applier.drift) this.checkNow()
        const h = w.health.round(r, now)
        if (h.changed) {
          if (h.state !== 'offline') {
            this.toFlush.delete(w.spec.wan)
            w.drained = false
          }
          this.deps.log.event('wan', `wan${w.spec.wan} ${w.spec.interface} ${w.state}->${h.state} reason="${h.reason}"`)
          w.state = h.state
          w.sinceMs = now
          w.reason = h.reason
          changed = true
        }
        // Loss or latency only degrade a WAN (half its weight, its connections stay):
        // a lossy or saturated line must not have its downloads cut. Its connections
        // are removed once it is dead, down.rounds failed rounds in a row.
        const hs = w.health.status()
        // A good round of an offline WAN ends its verdict: a takeover meanwhile loads
        // the peer's connections of it (SyncRuntime leaves out only a dead WAN's), and
        // they go when it is judged dead again.
        if (w.state === 'offline' && hs.failedInRow < this.config.wanProbe.downRounds) w.drained = false
        // (Not at boot, before it was ever up: it carried nothing.)
        if (w.state === 'offline' && !w.drained && hs.everUp && hs.failedInRow >= this.config.wanProbe.downRounds) {
          w.drained = true
          this.toFlush.add(w.spec.wan)
          drain = true
        }
      }
    }
    if (changed) this.replan()
    if (drain) this.queueFlush()
    this.wakeTimer?.cancel()
    const next = Math.min(...this.wans.map((w) => w.prober.nextWakeMs()))
    this.wakeTimer = Number.isFinite(next) ? this.deps.clock.at(Math.max(now, next), () => this.tick()) : null
  }

  private replan(): void {
    const next = makePlan(this.wans.map((w) => ({ wan: w.spec.wan, tier: w.spec.tier, weight: w.spec.weight, state: w.state })))
    const before = this.plan
    if (before && !planChanged(before, next)) return
    this.plan = next
    this.deps.log.event('wan', `new connections: ${describePlan(next)}`)
    this.load()
  }

  /**
   * Loads the current plan: routes (the kernel drops a table's default route when its
   * link goes down, so they are put back with every load), then the rules, then,
   * only if the rules are in, removes the connections of the WANs that failed. A
   * failed load is tried again after LOAD_RETRY_MS; the plan carpd shows as loaded
   * is the one in the kernel.
   */
  private load(): void {
    this.retry?.cancel()
    this.retry = null
    this.queue = this.queue.then(async () => {
      if (!this.running) return
      const plan = this.plan!
      const specs = this.specs()
      // The ip rules go in once (deleting and adding them again would leave marked
      // traffic without a rule for a moment); the routes, idempotent with `replace`,
      // with every load.
      const cmds = this.deps.routes(specs, ownWan(plan, new Map(this.wans.map((w) => [w.spec.wan, w.state]))))
      let routesIn: string[][] = []
      try {
        const retired = this.retired
        this.retired = []
        const missingRules = cmds.add.filter((argv) => argv[1] === 'rule' && this.rulesMissing.has(argv[4]!))
        this.rulesMissing.clear()
        const routesOnly = cmds.add.filter((argv) => argv[1] === 'route')
        await this.deps.applier.routes(this.rulesInstalled ? { del: [], add: [...missingRules, ...routesOnly] } : { del: [...retired, ...cmds.del], add: cmds.add })
        this.rulesInstalled = true
        routesIn = cmds.add
        this.routesLoaded()
      } catch (err) {
        // Every add is tried; the ip rules are in unless one of them is what failed
        // (a WAN whose route cannot go in yet, PPPoE at boot, is no reason to delete
        // and add them all again with every load).
        if (!(err as Error).message.includes('ip rule add')) this.rulesInstalled = true
        const failed = this.routeFailed(err)
        // What went in is checked for drift; what failed is tried again.
        if (failed.length > 0) routesIn = wentIn(cmds.add, failed)
      }
      const rules = this.deps.render(specs, plan)
      try {
        await this.deps.applier.loadRules(rules.flavour, rules.text, rules.hooks)
      } catch (err) {
        const message = (err as Error).message
        this.loadFailures++
        this.lastLoad = { ok: false, atMs: this.deps.clock.now(), error: message }
        this.deps.log.event('wan', `${rules.flavour} rules not loaded, the previous set stays (again in ${LOAD_RETRY_MS / 1000}s): ${message}`)
        if (this.running && !this.retry) this.retry = this.deps.clock.at(this.deps.clock.now() + LOAD_RETRY_MS, () => this.load())
        return
      }
      this.loads++
      this.loaded = plan
      // Routes that did not go in are not drift: they are tried again (routesPending).
      this.inKernel = { flavour: rules.flavour, hooks: rules.hooks, routes: routesIn }
      this.retry?.cancel()
      this.retry = null
      this.lastLoad = { ok: true, atMs: this.deps.clock.now(), error: null }
      await this.flushDead()
    })
  }

  /** A WAN just died while the plan stays: remove its connections once the loaded rules avoid it. */
  private queueFlush(when = ''): void {
    this.queue = this.queue.then(() => (this.running ? this.flushDead(when) : undefined))
  }

  /**
   * Removes the connections of the dead WANs that the rules in the kernel no longer
   * send new connections to (while every WAN is down they still do: kept, and a WAN
   * that came back is kept too).
   */
  private async flushDead(when = ''): Promise<void> {
    const plan = this.loaded
    if (!plan) return
    for (const wan of [...this.toFlush]) {
      if (plan.active.some((a) => a.wan === wan)) continue // still in use: wait for a plan without it
      this.toFlush.delete(wan)
      const w = this.wans.find((x) => x.spec.wan === wan)
      if (w && w.state !== 'offline') continue // back already
      try {
        const n = await this.deps.applier.flushConnections(wan)
        this.flushed += n
        const what = w ? `offline${when ? ` ${when}` : ''}` : 'removed from the configuration'
        this.deps.log.event('wan', `wan${wan} ${what}: removed its ${n} connection${n === 1 ? '' : 's'}; other WANs' connections untouched`)
      } catch (err) {
        this.deps.log.event('wan', `removing wan${wan}'s connections failed: ${(err as Error).message}`)
      }
    }
  }
}

/** The adds that went in: all of them but those that failed. */
function wentIn(adds: readonly string[][], failed: readonly string[][]): string[][] {
  return adds.filter((argv) => !failed.some((f) => sameArgv(f, argv)))
}

function sameArgv(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((word, i) => word === b[i])
}
