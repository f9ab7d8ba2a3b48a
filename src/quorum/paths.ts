// Peer liveness over the three paths the two boards share (SPEC "Split-brain
// protection"): LAN adverts, heartbeats on the sync link, frames on the serial line.
// Each path has its own timeout and hysteresis: it dies after `timeoutMs` of silence
// and comes back only after PATH_UP_FRAMES frames in a row, each within the timeout,
// so one stray frame on a flaky cable does not count as a live peer. Only silence on
// every path means the peer is gone.
//
// Pure: the caller passes the time and gets log lines back.

import { PATH_UP_FRAMES } from './constants.js'

export type PathName = 'lan' | 'sync' | 'serial'
export const PATH_NAMES: readonly PathName[] = ['lan', 'sync', 'serial']

export type PathState = 'alive' | 'dead' | 'unknown'

export interface PathStatus {
  path: PathName
  state: PathState
  timeoutMs: number
  heardMsAgo: number | null
  frames: number
  transitions: number
}

interface Path {
  name: PathName
  timeoutMs: number
  alive: boolean
  everAlive: boolean
  lastMs: number
  run: number // frames in a row towards coming alive
  frames: number
  transitions: number
}

export class PeerPaths {
  private readonly paths = new Map<PathName, Path>()

  /** `timeouts` holds only the paths this board has (no serial device: no serial path). */
  constructor(timeouts: Partial<Record<PathName, number>>) {
    for (const name of PATH_NAMES) {
      const timeoutMs = timeouts[name]
      if (timeoutMs === undefined) continue
      this.paths.set(name, { name, timeoutMs, alive: false, everAlive: false, lastMs: -Infinity, run: 0, frames: 0, transitions: 0 })
    }
  }

  /** An authenticated frame from the peer arrived on `name`; returns log lines. */
  heard(name: PathName, nowMs: number): string[] {
    const p = this.paths.get(name)
    if (!p) return []
    const log = this.expire(p, nowMs)
    p.frames++
    p.run = nowMs - p.lastMs <= p.timeoutMs ? p.run + 1 : 1
    p.lastMs = nowMs
    if (!p.alive && p.run >= PATH_UP_FRAMES) {
      p.alive = true
      p.everAlive = true
      p.transitions++
      log.push(`peer path ${name} alive`)
    }
    return log
  }

  /** Ages every path; returns a log line for each that died. */
  tick(nowMs: number): string[] {
    return [...this.paths.values()].flatMap((p) => this.expire(p, nowMs))
  }

  isAlive(name: PathName, nowMs: number): boolean {
    const p = this.paths.get(name)
    return p !== undefined && p.alive && nowMs - p.lastMs <= p.timeoutMs
  }

  /** The paths on which the peer is alive now, in PATH_NAMES order. */
  alivePaths(nowMs: number): PathName[] {
    return PATH_NAMES.filter((n) => this.isAlive(n, nowMs))
  }

  /** When the next live path would time out (Infinity when none is alive). */
  nextWakeMs(): number {
    let next = Infinity
    for (const p of this.paths.values()) if (p.alive) next = Math.min(next, p.lastMs + p.timeoutMs + 1)
    return next
  }

  status(nowMs: number): PathStatus[] {
    return [...this.paths.values()].map((p) => ({
      path: p.name,
      state: this.isAlive(p.name, nowMs) ? 'alive' : p.everAlive || p.frames > 0 ? 'dead' : 'unknown',
      timeoutMs: Math.round(p.timeoutMs),
      heardMsAgo: p.frames > 0 ? Math.round(nowMs - p.lastMs) : null,
      frames: p.frames,
      transitions: p.transitions,
    }))
  }

  private expire(p: Path, nowMs: number): string[] {
    if (!p.alive || nowMs - p.lastMs <= p.timeoutMs) return []
    p.alive = false
    p.run = 0
    p.transitions++
    return [`peer path ${p.name} dead (silent for ${Math.round(nowMs - p.lastMs)} ms, timeout ${p.timeoutMs} ms)`]
  }
}
