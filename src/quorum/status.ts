// What `carpd status` shows of split-brain protection: the arbiter's view and the
// runtime's counters. Types only; control/ renders them.

import type { SerialStatus } from '../platform/serial.js'
import type { ArbiterStatus } from './arbiter.js'

export interface QuorumStatus extends ArbiterStatus {
  witness: string | null
  serial: SerialStatus | null
  heartbeatsSent: number
  /** Datagrams and lines dropped before the arbiter, by path and reason. */
  linkDrops: Record<string, number>
  sendErrors: number
}
