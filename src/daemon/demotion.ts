// The board's demotion counter: every subsystem sets its own share by reason (link
// loss, send errors, a VIP that cannot be added, state sync, multi-WAN, the operator,
// maintenance), and every vhid advertises the sum, capped at DEMOTE_MAX (carp(4)'s
// net.inet.carp.demotion, one counter for the whole board). Pure.

import { DEMOTE_MAX } from '../carp/constants.js'

export class Demotions {
  private readonly reasons = new Map<string, number>()

  /** `changed` hears every change of the total's parts, with the reason's words. */
  constructor(private readonly changed: (total: number, why: string) => void) {}

  /** Sets one reason's share; 0 clears it. Nothing happens when it is already so. */
  set(reason: string, value: number, why: string): void {
    if ((this.reasons.get(reason) ?? 0) === value) return
    if (value === 0) this.reasons.delete(reason)
    else this.reasons.set(reason, value)
    this.changed(this.total(), why)
  }

  get(reason: string): number {
    return this.reasons.get(reason) ?? 0
  }

  total(): number {
    let sum = 0
    for (const n of this.reasons.values()) sum += n
    return Math.min(DEMOTE_MAX, sum)
  }

  /** Every reason with a share, for `carpd status`. */
  shares(): Record<string, number> {
    return Object.fromEntries(this.reasons)
  }
}
