// A clock that only moves when a test says so; timers fire in time order.
import type { Clock, TimerHandle } from '../../src/io/clock.js'

interface Pending {
  atMs: number
  seq: number
  fn: () => void
  cancelled: boolean
}

export class FakeClock implements Clock {
  private nowMs = 0
  private seq = 0
  private pending: Pending[] = []

  constructor(startMs = 1000) {
    this.nowMs = startMs
  }

  now(): number {
    return this.nowMs
  }

  wall(): Date {
    return new Date(Date.UTC(2026, 10, 22, 4, 0, 0) + this.nowMs)
  }

  at(atMs: number, fn: () => void): TimerHandle {
    const p: Pending = { atMs: Math.max(atMs, this.nowMs), seq: this.seq++, fn, cancelled: false }
    this.pending.push(p)
    return { cancel: () => void (p.cancelled = true) }
  }

  /** Moves time forward by `ms`, firing every timer due on the way, in order. */
  advance(ms: number): void {
    this.runUntil(this.nowMs + ms)
  }

  runUntil(targetMs: number): void {
    for (;;) {
      this.pending = this.pending.filter((p) => !p.cancelled)
      let next: Pending | undefined
      for (const p of this.pending) {
        if (p.atMs <= targetMs && (!next || p.atMs < next.atMs || (p.atMs === next.atMs && p.seq < next.seq))) next = p
      }
      if (!next) break
      this.pending.splice(this.pending.indexOf(next), 1)
      this.nowMs = next.atMs
      next.fn()
    }
    this.nowMs = targetMs
  }

  /** Number of timers still armed. */
  get armed(): number {
    return this.pending.filter((p) => !p.cancelled).length
  }
}
