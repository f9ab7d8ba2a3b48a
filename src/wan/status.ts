// What `carpd status` shows of multi-WAN: each WAN's health and the rules loaded.
// Types only; control/ renders them.

import type { WanProber } from './probe.js'
import type { WanState } from './types.js'

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

export interface WanRuntimeStatus {
  plan: string // what the kernel has
  wanted: string | null // a plan not loaded yet (a load failed and is tried again)
  wans: WanStatus[]
  loads: number
  loadFailures: number
  lastLoad: { ok: boolean; agoMs: number; error: string | null } | null
  flushed: number // connections removed from WANs that went offline
  repairs: number // times the self-repair check found rules, jumps or routes gone and loaded them again
}
