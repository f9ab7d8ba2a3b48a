// The split-brain lab: a client and two routers on a LAN switch, a crossover sync
// cable between the routers, a null-modem line between them (a socat pty pair), and a
// witness on a network of its own (so the LAN switch can die without taking the
// witness path with it):
//
//   client ── [lan] ── r1, r2          r1 ══ sync0 ══ r2        r1 ~~ serial ~~ r2
//                      r1, r2 ── [wsw] ── w (carpd witness)
//
// `ip monitor address` in each router reports every change of the VIP as it happens,
// so dual holding is measured continuously, not sampled.
//
// Used by test/lab/quorum-*.test.ts and, bundled by esbuild, by the bench.

import { existsSync } from 'node:fs'
import type { Test } from 'tap'
import { type Carpd, NetLab, sleep, until } from './netlab.js'

export const VIP = '192.0.2.1'
export const ROUTERS = ['r1', 'r2'] as const
export type Router = (typeof ROUTERS)[number]
const LAN: Record<string, string> = { r1: '192.0.2.11', r2: '192.0.2.12', client: '192.0.2.100' }
const WNET: Record<string, string> = { r1: '203.0.113.11', r2: '203.0.113.12', w: '203.0.113.50' }
const SYNC: Record<Router, string> = { r1: '198.51.100.1', r2: '198.51.100.2' }
export const WITNESS_ADDRESS = WNET.w!

export interface QuorumLabOptions {
  witness?: boolean // default true
  serial?: boolean // default true
  sync?: boolean // default true: the sync cable carries heartbeats and votes
  advbase?: number // default 0 (sub-second)
  advskew?: [number, number] // default [26, 29]
  leaseMs?: number // default 1000
  heartbeatMs?: number // default 100
  heartbeatTimeoutMs?: number // default 300
  carpdPath?: string // the bundle (the bench passes it: bundled, this file is elsewhere)
}

/** One VIP change seen by `ip monitor`. */
export interface VipEvent {
  atMs: number
  router: Router
  held: boolean
}

export class QuorumLab {
  readonly lab: NetLab
  readonly carpd = new Map<string, Carpd>()
  readonly events: VipEvent[] = []
  /** Routers that are powered off: their kernel's addresses no longer count. */
  readonly off = new Set<Router>()
  private readonly holding = new Set<Router>()
  private dualSinceMs = -1
  /** Each dual holding, start and length. */
  readonly duals: { atMs: number; ms: number }[] = []
  private socat: Carpd | null = null
  readonly tty: Record<Router, string>
  readonly opts: Required<Omit<QuorumLabOptions, 'carpdPath'>>

  constructor(opts: QuorumLabOptions = {}) {
    this.lab = opts.carpdPath ? new NetLab(opts.carpdPath) : new NetLab()
    this.opts = { witness: true, serial: true, sync: true, advbase: 0, advskew: [26, 29], leaseMs: 1000, heartbeatMs: 100, heartbeatTimeoutMs: 300, ...opts }
    const l = this.lab
    l.addSwitch('lan')
    l.addSwitch('wsw')
    for (const h of ['r1', 'r2', 'client']) {
      l.addNamespace(h)
      l.connect(h, 'eth0', 'lan', `${LAN[h]}/24`)
    }
    l.addNamespace('w')
    l.connect('w', 'eth0', 'wsw', `${WNET.w}/24`)
    for (const r of ROUTERS) l.connect(r, 'wit0', 'wsw', `${WNET[r]}/24`)
    l.cable('r1', 'sync0', `${SYNC.r1}/30`, 'r2', 'sync0', `${SYNC.r2}/30`)
    l.addNamespace('tty') // holds socat, so teardown kills it with the rest
    this.tty = { r1: `${l.dir}/r1tty`, r2: `${l.dir}/r2tty` }
  }

  /** Starts the serial line, the VIP monitors and the witness; then r1, then r2. */
  async start(): Promise<void> {
    if (this.opts.serial) await this.startSerial()
    for (const r of ROUTERS) this.monitor(r)
    if (this.opts.witness) await this.startWitness()
    const r1 = this.startRouter('r1')
    await r1.waitFor(/INIT->BACKUP/)
    this.startRouter('r2')
    await until(() => this.holders().join() === 'r1', 10_000, 20)
    await this.carpd.get('r2')!.waitFor(/INIT->BACKUP/)
  }

  async startSerial(): Promise<void> {
    this.socat = this.lab.spawnLines('tty', ['socat', '-d', '-d', `pty,raw,echo=0,link=${this.tty.r1}`, `pty,raw,echo=0,link=${this.tty.r2}`])
    if ((await until(() => existsSync(this.tty.r1) && existsSync(this.tty.r2), 5000)) < 0) throw new Error('socat made no pty pair')
  }

  /** The serial cable cut (socat stopped: the ptys stay, nothing passes) or mended. */
  serialCut(cut: boolean): void {
    this.socat!.child.kill(cut ? 'SIGSTOP' : 'SIGCONT')
  }

  async startWitness(): Promise<Carpd> {
    const conf = [
      'node = witness',
      `witness.listen = ${WNET.w}:8241`,
      'witness.key = lab witness key',
      `witness.lease = ${this.opts.leaseMs}ms`,
      `witness.state = ${this.lab.dir}/witness.state`,
    ].join('\n')
    const file = this.lab.writeFile('witness.conf', conf + '\n')
    const w = this.lab.spawnLines('w', [process.execPath, this.lab.carpdPath, 'witness', '-c', file])
    this.carpd.set('w', w)
    await w.waitFor(/listening|epoch/i, 5000)
    return w
  }

  config(r: Router): string {
    const o = this.opts
    const i = r === 'r1' ? 0 : 1
    const peer = r === 'r1' ? SYNC.r2 : SYNC.r1
    const lines = [
      `node = ${r}`,
      'carp.preempt = yes',
      'carp.1.interface = eth0',
      `carp.1.vip = ${VIP}/24`,
      `carp.1.advbase = ${o.advbase}`,
      `carp.1.advskew = ${o.advskew[i]}`,
      'carp.1.pass = lab carp pass',
      ...(o.sync ? ['sync.interface = sync0', `sync.peer = ${peer}`, 'sync.key = lab sync key', 'sync.backend = none'] : []),
      `heartbeat.interval = ${o.heartbeatMs}ms`,
      `heartbeat.timeout = ${o.heartbeatTimeoutMs}ms`,
    ]
    if (o.serial) lines.push(`serial.device = ${this.tty[r]}`, 'serial.baud = 115200')
    if (o.witness) lines.push(`witness = ${WNET.w}:8241`, 'witness.key = lab witness key', `witness.lease = ${o.leaseMs}ms`)
    return lines.join('\n') + '\n'
  }

  startRouter(r: Router): Carpd {
    const c = this.lab.startCarpd(r, this.config(r))
    this.carpd.set(r, c)
    return c
  }

  /** Follows the VIP on a router's eth0 or its virtual MAC's carp1 with `ip monitor address`. */
  private monitor(r: Router): void {
    const m = this.lab.spawnLines(r, ['ip', '-o', 'monitor', 'address'])
    m.child.stdout!.on('data', () => {
      for (const line of m.lines.splice(0)) {
        if (!line.includes(` ${VIP}/24 `) || !(line.includes('eth0') || line.includes('carp1'))) continue
        this.vipChanged(r, !line.startsWith('Deleted'))
      }
    })
  }

  private vipChanged(r: Router, held: boolean): void {
    const atMs = Date.now()
    this.events.push({ atMs, router: r, held })
    if (held) this.holding.add(r)
    else this.holding.delete(r)
    this.recount(atMs)
  }

  private recount(atMs: number): void {
    const dual = this.holders().length > 1
    if (dual && this.dualSinceMs < 0) this.dualSinceMs = atMs
    if (!dual && this.dualSinceMs >= 0) {
      this.duals.push({ atMs: this.dualSinceMs, ms: atMs - this.dualSinceMs })
      this.dualSinceMs = -1
    }
  }

  /** Routers whose kernel holds the VIP now (powered-off ones excluded). */
  holders(): Router[] {
    return ROUTERS.filter((r) => this.holding.has(r) && !this.off.has(r))
  }

  /** The longest dual holding so far, including one still going on. */
  maxDualMs(): number {
    const open = this.dualSinceMs >= 0 ? Date.now() - this.dualSinceMs : 0
    return Math.max(open, ...this.duals.map((d) => d.ms))
  }

  /** Power-off: every process killed, every link down; its addresses stop counting. */
  powerOff(r: Router): void {
    this.lab.killAll(r)
    for (const iface of ['eth0', 'wit0', 'sync0']) this.lab.linkSet(r, iface, 'down')
    this.off.add(r)
    this.recount(Date.now())
  }

  /** carpd of a router stopped or continued (SIGSTOP / SIGCONT). */
  hang(r: Router, stop: boolean): void {
    this.carpd.get(r)!.child.kill(stop ? 'SIGSTOP' : 'SIGCONT')
  }

  /** Console lines of a router with a transition, in order. */
  transitions(r: Router): string[] {
    return this.carpd.get(r)!.lines.filter((l) => /vhid=1 (INIT|BACKUP|MASTER)->(INIT|BACKUP|MASTER)/.test(l))
  }

  async teardown(): Promise<void> {
    for (const c of this.carpd.values()) c.child.kill('SIGCONT')
    this.socat?.child.kill('SIGCONT')
    await this.lab.teardown()
  }
}

/** Sub-second CARP: r1 advertises every 26/256 s, so one advert interval is ~102 ms. */
export const ADVERT_INTERVAL_MS = (26 / 256) * 1000

export interface Scenario {
  options?: QuorumLabOptions
  /** The client cannot reach the VIP whoever holds it (its switch is the failure). */
  unreachable?: boolean
  name: string
  fail(q: QuorumLab): void | Promise<void>
  /** Who serves the VIP once the failure has settled (null: nobody can). */
  holder: Router | null
  /** How long to watch after the failure. */
  watchMs?: number
  /** VIP additions allowed after the failure (default: none if r1 keeps it, else 1). */
  maxTakeovers?: number
  /** A pattern the console must show, explaining what happened. */
  explains?: [Router | 'w', RegExp]
}

/**
 * Runs one scenario in a fresh lab: r1 serves, the failure comes, the VIP is watched
 * for `watchMs`. Returns the lab (torn down by the test).
 */
export async function runScenario(t: Test, s: Scenario): Promise<QuorumLab> {
  const q = new QuorumLab(s.options)
  t.teardown(() => q.teardown())
  await q.start()
  t.same(q.holders(), ['r1'], `${s.name}: r1 serves before the failure`)
  await sleep(1000)
  const before = { r1: q.transitions('r1').length, r2: q.transitions('r2').length }
  const failedAt = Date.now()
  await s.fail(q)
  const settled = await until(() => q.holders().join() === (s.holder ?? ''), 8000, 10)
  await sleep(s.watchMs ?? 3000)
  t.ok(settled >= 0, `${s.name}: ${s.holder ?? 'nobody'} holds the VIP (${Math.round(settled)} ms after the failure)`)
  t.same(q.holders(), s.holder ? [s.holder] : [], `${s.name}: still ${s.holder ?? 'nobody'} at the end`)
  const maxDual = q.maxDualMs()
  t.ok(maxDual <= ADVERT_INTERVAL_MS, `${s.name}: longest dual holding ${maxDual} ms (bound: one advert interval, ${Math.round(ADVERT_INTERVAL_MS)} ms)`)
  if (s.holder && !s.unreachable) t.ok(q.lab.ping('client', VIP, 2), `${s.name}: the client reaches the VIP`)
  // No flapping: the VIP was taken over at most as often as the failure needs.
  const takeovers = q.events.filter((e) => e.atMs >= failedAt && e.held).map((e) => e.router)
  t.ok(takeovers.length <= (s.maxTakeovers ?? (s.holder === 'r1' ? 0 : 1)), `${s.name}: no flap (VIP added after the failure by: ${takeovers.join(', ') || 'nobody'})`)
  for (const r of ['r1', 'r2'] as const) {
    for (const line of q.transitions(r).slice(before[r])) t.match(line, /reason="[^"]{8,}"/, `${s.name}: ${r} explains: ${line.replace(/^\S+ /, '')}`)
  }
  if (s.explains) {
    const [who, re] = s.explains
    t.ok(q.carpd.get(who)!.lines.some((l) => re.test(l)), `${s.name}: the console of ${who} says ${re}`)
  }
  return q
}

export { sleep, until }
