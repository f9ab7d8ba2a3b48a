// Time as the pure cores see it: milliseconds on a monotonic clock, and timers that
// fire at an absolute time. Tests pass a FakeClock (test/helpers) and move time by
// hand; the agent runs on realClock().

export type TimerHandle = { cancel(): void }

export interface Clock {
  /** Monotonic milliseconds (not wall time: a stepped wall clock must not fire timers). */
  now(): number
  /** Calls `fn` once at `atMs` (or at once if that time has passed). */
  at(atMs: number, fn: () => void): TimerHandle
  /** Wall time, only for log lines. */
  wall(): Date
}

/** Monotonic ms from process.hrtime: unlike node:perf_hooks it loads no module (memory). */
function monotonicMs(): number {
  const [s, ns] = process.hrtime()
  return s * 1000 + ns / 1e6
}

export function realClock(): Clock {
  return {
    now: monotonicMs,
    at(atMs, fn) {
      const timer = setTimeout(fn, Math.max(0, atMs - monotonicMs()))
      return { cancel: () => clearTimeout(timer) }
    },
    wall: () => new Date(),
  }
}
