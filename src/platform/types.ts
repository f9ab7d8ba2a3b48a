// What carpd asks of the operating system. One adapter per platform (platform/linux.ts
// and friends) is the only code that runs OS commands; `--dry-run` logs them instead.

import type { Cidr } from '../config/types.js'

/** A command line as an argument array: never a shell string built from config values. */
export type Argv = readonly string[]

export interface Platform {
  /** Adds one VIP to an interface. Resolves when done; rejects with a PlatformError. */
  addVip(iface: string, vip: Cidr): Promise<void>
  removeVip(iface: string, vip: Cidr): Promise<void>
  /** Gratuitous ARP for `vip` (an unsolicited neighbour advertisement for IPv6) so neighbours move to this board's MAC. */
  garp(iface: string, vip: Cidr): Promise<void>
  /** Runs an operator hook script with `vhid interface vip state`. */
  runHook(script: string, args: Argv): Promise<void>
  /**
   * The IPv4 and IPv6 addresses on an interface now, for the self-repair check (someone else
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
  /** A virtual MAC per vhid (platform/vmac.ts); absent: gratuitous ARP only. */
  readonly vmacs?: VirtualMacs
}

/** A vhid that gets a macvlan: its interface, and which address families its VIPs have. */
export interface VmacVhid {
  vhid: number
  parent: string
  ipv4: boolean
  ipv6: boolean
}

export interface VirtualMacs {
  /**
   * Makes a macvlan per vhid; returns the name of each one made (the others use ARP
   * only). `others`: the vhids without one, whose macvlan a killed run may have left.
   */
  setUp(vhids: readonly VmacVhid[], others?: readonly number[]): Promise<Map<number, string>>
  /** Brings a vhid's macvlan up (before its VIPs go on) or down (after they are off). */
  link(vhid: number, up: boolean): Promise<void>
  /** Deletes the macvlans and puts back every sysctl setUp changed. */
  tearDown(): Promise<void>
  /** Self-repair: a macvlan deleted or a sysctl changed back is put back; one line per repair. */
  check(): Promise<string[]>
}

export class PlatformError extends Error {
  constructor(
    readonly code: 'commandFailed' | 'timeout' | 'notSupported',
    message: string,
  ) {
    super(message)
  }
}
