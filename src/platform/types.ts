// What carpd asks of the operating system. One adapter per platform (platform/linux.ts
// and friends) is the only code that runs OS commands; `--dry-run` logs them instead.

import type { Cidr } from '../config/types.js'

/** A command line as an argument array: never a shell string built from config values. */
export type Argv = readonly string[]

export interface Platform {
  /** Adds one VIP to an interface. Resolves when done; rejects with a PlatformError. */
  addVip(iface: string, vip: Cidr): Promise<void>
  removeVip(iface: string, vip: Cidr): Promise<void>
  /** Gratuitous ARP for `vip` so neighbours move to this board's MAC. */
  garp(iface: string, vip: Cidr): Promise<void>
  /** Runs an operator hook script with `vhid interface vip state`. */
  runHook(script: string, args: Argv): Promise<void>
  /**
   * The IPv4 addresses on an interface now, for the self-repair check (someone else
   * removing a master's VIP, or a VIP left on a backup). Absent: cannot tell (dry-run).
   */
  addresses?(iface: string): Promise<Set<string>>
  /** Is the interface's link up? Absent: the platform cannot tell (dry-run). */
  linkUp?(iface: string): boolean
  /**
   * True when garp() works before the VIP is on the interface (Habets' arping), so
   * the agent sends it without waiting for addVip; false (iputils, busybox: they bind
   * to the address) queues it behind addVip.
   */
  readonly garpBeforeAddress?: boolean
  /** Work to do once before the agent starts (e.g. detect which arping is installed). */
  prepare?(): Promise<void>
}

export class PlatformError extends Error {
  constructor(
    readonly code: 'commandFailed' | 'timeout' | 'notSupported',
    message: string,
  ) {
    super(message)
  }
}
