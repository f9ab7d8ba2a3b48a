// The Linux adapter: iproute2 for the VIPs, arping for gratuitous ARP, the operator's
// hook scripts, and link state from /sys/class/net. Every command is an argument
// array with a timeout; a failure is logged and counted by the agent (it rejects).

import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import type { Cidr } from '../config/types.js'
import type { Logger } from '../io/log.js'
import type { CommandResult, Runner } from './exec.js'
import { isIpv6 } from '../wire/ip.js'
import { addVipArgv, garpArgv, iputilsGarpArgv, removeVipArgv, unsolicitedNaArgv } from './linux-commands.js'
import { type Argv, type Platform, PlatformError, type VirtualMacs } from './types.js'

/** ip and arping answer in milliseconds; a hook may do real work. */
export const COMMAND_TIMEOUT_MS = 5000
export const HOOK_TIMEOUT_MS = 30_000

/** Two arping programs ship in Debian with different flags (see linux-commands.ts). */
export type ArpingFlavour = 'habets' | 'iputils'

export interface LinuxOptions {
  run: Runner
  log: Logger
  /** Virtual MACs (platform/vmac.ts); absent: gratuitous ARP only. */
  vmacs?: VirtualMacs
  /** Reads /sys/class/net/IFACE/operstate; injected for tests. */
  readOperstate?: (iface: string) => string
}

export interface LinuxPlatform extends Platform {
  addresses(iface: string): Promise<Set<string>>
  linkUp(iface: string): boolean
  readonly garpBeforeAddress: boolean
  prepare(): Promise<void>
}

export function linuxPlatform(opts: LinuxOptions): LinuxPlatform {
  const { run, log } = opts
  let flavour: ArpingFlavour | null = null
  /** na6 answered at the last look (null: not looked yet). */
  let na6: boolean | null = null
  const readOperstate = opts.readOperstate ?? ((iface: string) => readFileSync(`/sys/class/net/${iface}/operstate`, 'utf8'))

  const exec = async (argv: Argv, timeoutMs = COMMAND_TIMEOUT_MS): Promise<CommandResult> => {
    const result = await run(argv, timeoutMs)
    if (result.timedOut) throw new PlatformError('timeout', `${argv[0]} timed out after ${timeoutMs} ms`)
    return result
  }
  const fail = (argv: Argv, r: CommandResult): never => {
    const why = r.stderr.trim().split('\n')[0] || `exit code ${r.code}`
    throw new PlatformError('commandFailed', `${argv.join(' ')}: ${why}`)
  }

  return {
    vmacs: opts.vmacs,
    async prepare() {
      flavour = await detectArping(run)
      log.event('platform', `arping: ${flavour === 'habets' ? "Thomas Habets' (-S)" : "iputils' (-s)"}`)
    },
    get garpBeforeAddress() {
      return flavour === 'habets'
    },
    async addVip(iface: string, vip: Cidr) {
      const argv = addVipArgv(iface, vip)
      const r = await exec(argv)
      // Already there (a restart after a crash, or a retry): that is what we wanted.
      if (r.code !== 0 && !/already assigned|File exists/i.test(r.stderr)) fail(argv, r)
    },
    async removeVip(iface: string, vip: Cidr) {
      const argv = removeVipArgv(iface, vip)
      const r = await exec(argv)
      if (r.code !== 0 && !/not found|Cannot assign requested address/i.test(r.stderr)) fail(argv, r)
    },
    async garp(iface: string, vip: Cidr) {
      if (isIpv6(vip.address)) {
        na6 ??= await detectNa6(run)
        if (!na6) throw new PlatformError('notSupported', 'no na6 for the unsolicited neighbour advertisement (Debian package ipv6toolkit)')
        const argv = unsolicitedNaArgv(iface, vip)
        const r = await exec(argv)
        if (r.code === 0) return
        na6 = null
        fail(argv, r)
      }
      flavour ??= await detectArping(run)
      const argv = flavour === 'habets' ? garpArgv(iface, vip) : iputilsGarpArgv(iface, vip)
      const r = await exec(argv)
      // Both arpings exit 1 when nobody answered, which an unsolicited ARP never expects.
      if (r.code === 0 || r.code === 1) return
      // Perhaps arping was missing or replaced: look again next time.
      flavour = null
      fail(argv, r)
    },
    async runHook(script: string, args: Argv) {
      const argv = [script, ...args]
      const r = await exec(argv, HOOK_TIMEOUT_MS)
      if (r.code !== 0) fail(argv, r)
      log.event('platform', `hook ${argv.join(' ')}: ok`)
    },
    async addresses(iface: string) {
      const argv = ['ip', '-j', 'addr', 'show', 'dev', iface]
      const r = await exec(argv)
      if (r.code !== 0) fail(argv, r)
      return parseAddresses(r.stdout)
    },
    linkUp(iface: string): boolean {
      try {
        // "unknown" is what lo and some drivers report while working.
        return !/^(down|lowerlayerdown|notpresent|dormant)$/.test(readOperstate(iface).trim())
      } catch {
        return false
      }
    },
  }
}

/** The IPv4 and IPv6 addresses in `ip -j addr show` output; none for output it cannot read. */
export function parseAddresses(json: string): Set<string> {
  const found = new Set<string>()
  try {
    const links = JSON.parse(json) as { addr_info?: { family?: string; local?: string }[] }[]
    if (!Array.isArray(links)) return found
    for (const link of links) {
      for (const a of link?.addr_info ?? []) if ((a?.family === 'inet' || a?.family === 'inet6') && typeof a.local === 'string') found.add(a.local)
    }
  } catch {
    // Not JSON: nothing can be said.
  }
  return found
}

/** na6 prints its usage for -h; a missing program cannot be spawned (code -1). */
export async function detectNa6(run: Runner): Promise<boolean> {
  const r = await run(['na6', '-h'], COMMAND_TIMEOUT_MS)
  return /na6/.test(r.stdout + r.stderr) && !/ENOENT/.test(r.stderr)
}

/** Thomas Habets' arping names itself in --help; iputils' says "iputils". */
export async function detectArping(run: Runner): Promise<ArpingFlavour> {
  const r = await run(['arping', '--help'], COMMAND_TIMEOUT_MS)
  return /Habets/i.test(r.stdout + r.stderr) ? 'habets' : 'iputils'
}

/**
 * An interface's first IPv4 address and prefix from `ip -j -4 addr`, which lists
 * interfaces whose link is down too; undefined when there is none (or no ip(8)).
 * Synchronous: it runs once at start.
 */
export function linuxInterfaceNet(iface: string): Cidr | undefined {
  try {
    const out = execFileSync('ip', ipv4AddrArgs(iface), { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: COMMAND_TIMEOUT_MS })
    return firstIpv4(out)
  } catch {
    return undefined
  }
}

/** The arguments of the `ip` command whose output firstIpv4 reads. */
export const ipv4AddrArgs = (iface: string): string[] => ['-j', '-4', 'addr', 'show', 'dev', iface]

/** The first IPv4 address and prefix in `ip -j -4 addr show dev IF` output; undefined when none or not JSON. */
export function firstIpv4(json: string): Cidr | undefined {
  try {
    const info = (JSON.parse(json) as { addr_info?: { local: string; prefixlen: number }[] }[])[0]?.addr_info?.[0]
    return info ? { address: info.local, prefix: info.prefixlen } : undefined
  } catch {
    return undefined
  }
}
