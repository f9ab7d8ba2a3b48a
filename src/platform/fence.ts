// The fence: a small child process that removes a master's VIPs when its lease runs
// out and carpd has not said otherwise, because carpd itself cannot (SIGSTOP, a hung
// event loop, swapped out). Without it a stopped master's kernel keeps answering for
// the VIP while the peer, rightly holding the votes, serves it too.
//
// carpd tells the fence, after every renewal, until when the VIPs may stay:
//   hold <vhid> <at> <interface> <cidr>[,<cidr>...]
// `at` is in ms on CLOCK_MONOTONIC (process.hrtime), which both processes share, so a
// hold means the same instant to a fence started again later.
//   drop <vhid>                       (the vhid left MASTER: nothing to guard)
// The fence removes the VIPs of a vhid whose hold ran out, says so on the console and
// answers `expired <vhid>` so carpd, when it runs again, knows the addresses are gone.
// When carpd goes away (its end of the pipe closes) the fence removes whatever it
// still guards: nobody renews those leases any more. A command carpd started just
// before it died (a slow `ip addr add`) may still land after that (simulator, seed
// 20000923: 1.8 s later, and the peer took over next to it), so for
// FENCE_AFTERMATH_MS the fence keeps looking and takes such a VIP off again, then
// exits. It does the same after it removed the VIPs at a lease's end while carpd
// lives (stopped, say), until carpd holds the vhid again. A carpd started again
// meanwhile waits for that watch to end before it starts (earlierFences()), so the
// two never fight over a VIP.
//
// It is the same bundle started as `carpd fence` (one file on the CF card); it runs
// only `ip addr del` through the platform adapter.

import { type ChildProcess, spawn } from 'node:child_process'
import { readFileSync, readdirSync } from 'node:fs'
import type { Clock, TimerHandle } from '../io/clock.js'
import type { Logger } from '../io/log.js'
import type { Cidr } from '../config/types.js'
import { cidrFromText } from '../config/values.js'

/** What carpd needs of the fence. */
export interface Fence {
  /** The VIPs of `vhid` may stay until `atMs` (monotonic), and not longer, unless told again. */
  hold(vhid: number, atMs: number, iface: string, vips: readonly Cidr[]): void
  drop(vhid: number): void
  close(): void
}

export interface FenceCoreDeps {
  clock: Clock
  log: Logger
  removeVip(iface: string, vip: Cidr): Promise<void>
  /** The addresses on an interface now (the watch after a removal); absent: no watch. */
  addresses?(iface: string): Promise<Set<string>>
  /** A line back to carpd. */
  reply(line: string): void
}

/** A failed removal is tried again this often, this many times in all. */
export const FENCE_RETRY_MS = 1000
export const FENCE_REMOVE_TRIES = 10
/**
 * After a removal (carpd died, or a lease ended), the VIPs are kept off this long:
 * carpd gives a command COMMAND_TIMEOUT_MS (platform/linux.ts) before it kills it,
 * and a dead or stopped carpd kills nothing, so one it started last is given as long
 * and a second more...
 */
export const FENCE_AFTERMATH_MS = 6000
/** ...looking this often. */
export const FENCE_AFTERMATH_CHECK_MS = 250

interface Guard {
  iface: string
  vips: Cidr[]
  timer: TimerHandle
}

/** The child's side, without the process: lines in, timers, removals. */
export class FenceCore {
  private readonly guards = new Map<number, Guard>()
  /** The watch after a removal, per vhid; a hold for the vhid ends it. */
  private readonly watchTokens = new Map<number, object>()
  private readonly watches = new Set<Promise<void>>()
  /** Removals under way (a lease's end, or carpd's exit). */
  private readonly expiring = new Set<Promise<void>>()
  private ended = false
  private buffer = ''
  badLines = 0
  /** VIPs taken off again by the watch after a removal (at a lease's end, or after carpd died). */
  lateRemovals = 0

  constructor(private readonly deps: FenceCoreDeps) {}

  /** Bytes from carpd's pipe. */
  push(chunk: string): void {
    this.buffer += chunk
    for (let nl = this.buffer.indexOf('\n'); nl >= 0; nl = this.buffer.indexOf('\n')) {
      this.line(this.buffer.slice(0, nl))
      this.buffer = this.buffer.slice(nl + 1)
    }
    // A line is never this long: drop it rather than grow.
    if (this.buffer.length > 4096) {
      this.buffer = ''
      this.badLines++
    }
  }

  /**
   * carpd is gone: nothing renews the leases, so what is guarded goes now, and stays
   * off for FENCE_AFTERMATH_MS (see the top of this file). Resolves when the watch ends.
   */
  async end(): Promise<void> {
    this.ended = true
    for (const vhid of [...this.guards.keys()]) this.expire(vhid, 'carpd exited')
    // The removals under way (these, and any a lease's end started), then the watches
    // after each of them.
    await Promise.all([...this.expiring])
    await Promise.all([...this.watches])
  }

  /**
   * After the fence took a vhid's VIPs off, a command carpd started before may still
   * add them (a slow `ip addr add` queued behind others): for FENCE_AFTERMATH_MS the
   * fence looks again and takes such a VIP off again, until carpd holds the vhid anew
   * (simulator, seed 110007078: a paused carpd's add landed 0.9 s after the lease's
   * end, next to the peer, for 12 s).
   */
  private watchOff(vhid: number, iface: string, vips: readonly Cidr[], after: string): Promise<void> {
    const addresses = this.deps.addresses
    if (!addresses) return Promise.resolve()
    const { clock } = this.deps
    const until = clock.now() + FENCE_AFTERMATH_MS
    const token = {}
    this.watchTokens.set(vhid, token)
    const watching = async (): Promise<void> => {
      while (clock.now() < until) {
        await new Promise<void>((resolve) => clock.at(clock.now() + FENCE_AFTERMATH_CHECK_MS, resolve))
        if (this.watchTokens.get(vhid) !== token) return // held again: carpd's VIPs now
        const present = await addresses.call(this.deps, iface).catch(() => new Set<string>())
        if (this.watchTokens.get(vhid) !== token) return
        for (const vip of vips.filter((v) => present.has(v.address))) {
          // Each removal may take seconds: a hold meanwhile makes the rest carpd's.
          if (this.watchTokens.get(vhid) !== token) return
          this.lateRemovals++
          this.deps.log.event('fence', `${vip.address} came back on ${iface} after ${after} (a command carpd started before): removing it again`)
          await this.deps.removeVip(iface, vip).catch((err: Error) => this.deps.log.event('fence', `removing ${vip.address} again failed: ${err.message}`))
        }
      }
      if (this.watchTokens.get(vhid) === token) this.watchTokens.delete(vhid)
    }
    const p = watching().finally(() => this.watches.delete(p))
    this.watches.add(p)
    return p
  }

  get guarded(): number[] {
    return [...this.guards.keys()]
  }

  private line(text: string): void {
    const f = text.trim().split(' ')
    const vhid = Number(f[1])
    if (!Number.isInteger(vhid) || vhid < 1 || vhid > 255) return void this.badLines++
    if (f[0] === 'drop' && f.length === 2) {
      this.guards.get(vhid)?.timer.cancel()
      this.guards.delete(vhid)
      return
    }
    const atMs = Number(f[2])
    const vips = (f[4] ?? '').split(',').map((text) => cidrFromText(text))
    if (f[0] !== 'hold' || f.length !== 5 || !Number.isFinite(atMs) || atMs < 0 || !/^[A-Za-z0-9_.:-]{1,15}$/.test(f[3]!) || vips.some((v) => v === null)) {
      this.badLines++
      return
    }
    this.guards.get(vhid)?.timer.cancel()
    this.watchTokens.delete(vhid)
    const timer = this.deps.clock.at(atMs, () => this.expire(vhid, 'no lease renewal from carpd before the lease ended (stopped or hung?)'))
    this.guards.set(vhid, { iface: f[3]!, vips: vips as Cidr[], timer })
  }

  /** Removes a vhid's VIPs, then watches; kept in `expiring` meanwhile, so end() waits for both. */
  private expire(vhid: number, why: string): void {
    const g = this.guards.get(vhid)
    if (!g) return
    g.timer.cancel()
    this.guards.delete(vhid)
    const after = this.ended ? 'carpd exited' : 'the lease ended'
    const removing = (async () => {
      this.deps.log.event('fence', `vhid=${vhid} ${why}: removing ${g.vips.map((v) => `${v.address}/${v.prefix}`).join(',')} from ${g.iface}`)
      for (const vip of g.vips) await this.removeUntilGone(vhid, g.iface, vip)
      this.deps.reply(`expired ${vhid}`)
      // A hold that came during the removal: the vhid is carpd's again, nothing to watch.
      if (!this.guards.has(vhid)) void this.watchOff(vhid, g.iface, g.vips, after)
    })().finally(() => this.expiring.delete(removing))
    this.expiring.add(removing)
  }

  /**
   * A VIP left on a board whose carpd is gone answers next to the peer's: a failed
   * removal is tried again every FENCE_RETRY_MS, FENCE_REMOVE_TRIES times at most
   * (the simulator found the one-try fence leaving a crashed master's VIP up).
   */
  private async removeUntilGone(vhid: number, iface: string, vip: Cidr): Promise<void> {
    for (let tries = 1; ; tries++) {
      try {
        await this.deps.removeVip(iface, vip)
        return
      } catch (err) {
        this.deps.log.event('fence', `vhid=${vhid} removing ${vip.address} failed (try ${tries} of ${FENCE_REMOVE_TRIES}): ${(err as Error).message}`)
        if (tries >= FENCE_REMOVE_TRIES) return
        await new Promise<void>((resolve) => this.deps.clock.at(this.deps.clock.now() + FENCE_RETRY_MS, resolve))
      }
    }
  }
}

/** The line carpd writes for a hold. */
export function holdLine(vhid: number, atMs: number, iface: string, vips: readonly Cidr[]): string {
  return `hold ${vhid} ${Math.max(0, Math.floor(atMs))} ${iface} ${vips.map((v) => `${v.address}/${v.prefix}`).join(',')}\n`
}

export interface FenceProcessOptions {
  /** The command that runs `carpd fence NODE`: node, the bundle, its arguments. */
  argv: readonly string[]
  log: Logger
  /** The fence removed a vhid's VIPs on its own. */
  onExpired(vhid: number): void
  spawnChild?: typeof spawn
}

/**
 * Starts the fence child and returns carpd's side of it. A fence that dies is logged
 * and started again (at most once a second): without it a hung carpd is unguarded.
 */
export function spawnFence(opts: FenceProcessOptions): Fence {
  let child: ChildProcess | null = null
  let closing = false
  let lastStartMs = 0
  const held = new Map<number, string>() // vhid -> last hold line, sent again to a new child
  const start = (): void => {
    lastStartMs = Date.now()
    const spawnChild = opts.spawnChild ?? spawn
    const c = spawnChild(opts.argv[0]!, opts.argv.slice(1), { stdio: ['pipe', 'pipe', 'inherit'] })
    child = c
    let buffer = ''
    c.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      buffer += chunk
      for (let nl = buffer.indexOf('\n'); nl >= 0; nl = buffer.indexOf('\n')) {
        const m = /^expired (\d+)$/.exec(buffer.slice(0, nl))
        buffer = buffer.slice(nl + 1)
        if (!m) continue
        held.delete(Number(m[1]))
        opts.onExpired(Number(m[1]))
      }
    })
    c.stdin!.on('error', () => {}) // a dead child: 'exit' says so
    c.on('error', (err) => opts.log.event('fence', `cannot start the fence: ${err.message}`))
    c.on('exit', (code, signal) => {
      if (child !== c) return
      child = null
      if (closing) return
      opts.log.event('fence', `fence exited (${signal ?? `code ${code}`}); starting it again`)
      setTimeout(() => {
        if (closing) return
        start()
        for (const line of held.values()) child?.stdin!.write(line)
      }, Math.max(0, 1000 - (Date.now() - lastStartMs))).unref()
    })
  }
  start()
  return {
    hold(vhid, atMs, iface, vips) {
      const line = holdLine(vhid, atMs, iface, vips)
      held.set(vhid, line)
      child?.stdin!.write(line)
    },
    drop(vhid) {
      if (!held.delete(vhid)) return
      child?.stdin!.write(`drop ${vhid}\n`)
    },
    close() {
      closing = true
      child?.stdin!.end()
    },
  }
}

/**
 * The fences an earlier carpd of this node left, still watching (see the top of this
 * file): processes whose command line is `argv` (the same bundle, `fence NODE`) that
 * are not this process's children. Linux /proc; elsewhere none are found.
 */
export function earlierFences(argv: readonly string[], proc = '/proc'): number[] {
  const want = argv.slice(1).join('\0')
  let pids: string[] = []
  try {
    pids = readdirSync(proc).filter((name) => /^\d+$/.test(name) && Number(name) !== process.pid)
  } catch {
    return []
  }
  const found: number[] = []
  for (const pid of pids) {
    try {
      const args = readFileSync(`${proc}/${pid}/cmdline`, 'utf8').replace(/\0$/, '').split('\0')
      if (args.slice(1).join('\0') !== want) continue
      // Field 4 of stat is the parent (after the name in parentheses, which may hold spaces).
      const stat = readFileSync(`${proc}/${pid}/stat`, 'utf8')
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1])
      if (ppid !== process.pid) found.push(Number(pid))
    } catch {
      // Gone meanwhile.
    }
  }
  return found
}
