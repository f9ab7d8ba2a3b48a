// What `carpd status` shows of CARP: every vhid's machine and the agent's counters.
// Types only (and the list of drop reasons); control/ renders them.

import type { CarpState } from './vhid.js'
import type { CarpDecodeError } from '../wire/carp.js'

/** Every reason an incoming datagram is dropped, each with its own counter. */
export type DropReason = CarpDecodeError | 'unknownVhid' | 'unknownSender' | 'badAuth' | 'replay' | 'epochSwitch' | 'ownPacket'

export const DROP_REASONS: readonly DropReason[] = [
  'shortPacket', 'oversized', 'badVersion', 'badType', 'badAuthLen', 'badVhid', 'badChecksum',
  'unknownVhid', 'unknownSender', 'badAuth', 'replay', 'epochSwitch', 'ownPacket',
]

export interface VhidStatus {
  vhid: number
  interface: string
  /** Its macvlan and virtual MAC ("carp1 00:00:5e:00:01:01"); absent: the interface's own MAC. */
  vmac?: string
  vips: string[]
  state: CarpState
  forMs: number
  reason: string
  advbaseS: number
  advskew: number
  transport: string
  master: { from: string; demote: number; advbase: number; advskew: number; heardMsAgo: number } | null
  transitions: number
  received: number
  sent: number
}

/** The CARP agent's part of the board status. */
export interface CarpStatus {
  vhids: VhidStatus[]
  drops: Record<DropReason, number>
  sendErrors: number
  platformFailures: number
  /** What the self-repair check put back: a master's VIP removed by someone else, a VIP left on a backup. */
  repairs: number
  links: Record<string, 'up' | 'down'>
  bugs: number
}
