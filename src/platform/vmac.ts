// A virtual MAC per vhid on Linux, as carp(4) and VRRP have it: 00:00:5e:00:01:VHID
// on a macvlan (private mode) over the vhid's interface, which holds the VIPs while
// the board is MASTER. Neighbours then never learn a board's own MAC for a VIP: after
// a takeover the same MAC answers from the other board, and the switch learns its new
// port from the first frame the new master sends from it (an advert, an ARP). No
// gratuitous ARP has to reach anybody first.
//
// The macvlan is up only while its vhid is MASTER. Down on a backup it sends nothing,
// and it must be: Linux hands a multicast frame whose source MAC is one of its own up
// macvlans (private mode) to that macvlan alone, so the backup would never hear the
// master's adverts on its interface (the lab showed both boards MASTER). A master
// hears a second master's adverts on its own macvlan, where the CARP socket joins the
// group by the VIP (io/udp.ts). A vhid with IPv6 VIPs has IPv6 on without any address
// of its own (addr_gen_mode 1: no link-local address the other board's macvlan would
// have too), no DAD and no router advertisements taken; a vhid with only IPv6 VIPs
// uses VRRP's IPv6 MAC, 00:00:5e:00:02:VHID. On an IPv4-only vhid IPv6 is off (no
// link-local address, no DAD, no router solicitation from a MAC the other board may
// use). The sysctls are keepalived's
// (vrrp_if_config.c): on the macvlan arp_ignore=1 (it answers ARP for its VIPs only,
// never for the board's own address), accept_local=1 and rp_filter=0 (packets to the
// VIP come in on it while the routes point at the parent); on the parent arp_ignore=1
// and arp_filter=1 (the parent never answers for a VIP with the board's own MAC), and
// arp_announce=2 (an ARP request for a packet from the VIP names the board's own
// address, or neighbours would learn the VIP at the board's own MAC).
// rp_filter takes the higher of conf/all and the interface's own value, so a non-zero
// all.rp_filter is first copied to every interface that had less, then set to 0.
// Every value changed is put back at tearDown(); a macvlan left by a killed run is
// deleted and made again at start.

import { mkdirSync, readFileSync, readdirSync, readlinkSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { vmacName } from '../config/constants.js'
import type { Logger } from '../io/log.js'
import type { Runner } from './exec.js'
import { COMMAND_TIMEOUT_MS } from './linux.js'
import type { Argv, VirtualMacs, VmacVhid } from './types.js'

export { vmacName }

/** VRRP's virtual MACs (RFC 5798 §7.3): IPv4's (carp(4) uses it too), or IPv6's for a vhid with only IPv6 VIPs. */
export function vmacAddress(vhid: number, ipv6Only = false): string {
  return `00:00:5e:00:0${ipv6Only ? 2 : 1}:${vhid.toString(16).padStart(2, '0')}`
}

/** The IPv6 sysctls of a macvlan that carries IPv6 VIPs (see the top of this file). */
const IPV6_KNOBS: readonly [string, string][] = [['addr_gen_mode', '1'], ['accept_dad', '0'], ['accept_ra', '0'], ['disable_ipv6', '0']]
/** Every per-macvlan sysctl setUp sets, for the repair of a deleted macvlan. */
const MACVLAN_KNOBS: readonly string[] = ['addr_gen_mode', 'accept_dad', 'accept_ra', 'disable_ipv6', 'arp_ignore', 'accept_local', 'rp_filter']
const V6_KNOB = new Set(['addr_gen_mode', 'accept_dad', 'accept_ra', 'disable_ipv6'])

/** Reads and writes /proc/sys; injected for tests and the dry run. */
export interface SysctlIo {
  /** The value as text without its newline; null when there is no such file. */
  read(path: string): string | null
  write(path: string, value: string): void
}

/** The real /proc/sys. */
export const procSysctl: SysctlIo = {
  read(path) {
    try {
      return readFileSync(path, 'utf8').trim()
    } catch {
      return null
    }
  },
  write: (path, value) => writeFileSync(path, `${value}\n`),
}

/** The host's interfaces as /proc/sys/net/ipv4/conf lists them. */
export function procInterfaces(): string[] {
  try {
    return readdirSync('/proc/sys/net/ipv4/conf')
  } catch {
    return []
  }
}

/** A /proc/sys path as sysctl(8) names it: net.ipv4.conf.lan0.arp_ignore. */
function knobName(path: string): string {
  return path.replace('/proc/sys/', '').replaceAll('/', '.')
}

const V4 = '/proc/sys/net/ipv4/conf'
const V6 = '/proc/sys/net/ipv6/conf'

/**
 * Where the sysctls' values from before carpd changed them are kept while it runs,
 * so that a run killed without its tear-down (SIGKILL, a crash, the OOM killer) does
 * not leave them changed for good: the next run puts them back first, then reads
 * them as the originals (it would otherwise take the killed run's values for them).
 */
export interface SysctlLedger {
  /** path -> original value, in the order they were changed; empty when none is kept. */
  read(): [string, string][]
  write(entries: [string, string][]): void
  remove(): void
}

/**
 * A ledger in a file under /run (a tmpfs, emptied at boot, as the sysctls are), one
 * per network namespace (/proc/sys/net is per namespace, /run is not).
 */
export function fileLedger(dir = '/run/carpd'): SysctlLedger {
  let file: string
  try {
    file = `${dir}/sysctl-${readlinkSync('/proc/self/ns/net').replace(/\D/g, '')}.json`
  } catch {
    file = `${dir}/sysctl.json`
  }
  return {
    read() {
      try {
        const parsed: unknown = JSON.parse(readFileSync(file, 'utf8'))
        if (!Array.isArray(parsed)) return []
        return parsed.filter((e): e is [string, string] => Array.isArray(e) && e.length === 2 && typeof e[0] === 'string' && e[0].startsWith('/proc/sys/') && !e[0].includes('..') && typeof e[1] === 'string')
      } catch {
        return []
      }
    },
    write(entries) {
      mkdirSync(dir, { recursive: true, mode: 0o700 })
      writeFileSync(`${file}.tmp`, JSON.stringify(entries), { mode: 0o600 })
      renameSync(`${file}.tmp`, file)
    },
    remove() {
      rmSync(file, { force: true })
    },
  }
}

export interface LinuxVmacOptions {
  run: Runner
  log: Logger
  sysctl: SysctlIo
  /** The interfaces of the host (for pushing all.rp_filter down); /proc/sys/net/ipv4/conf by default. */
  interfaces: () => string[]
  /** The originals kept across a kill (none: tests, and a board that cannot write /run). */
  ledger?: SysctlLedger
}

export function linuxVmacs(opts: LinuxVmacOptions): VirtualMacs {
  const { run, log, sysctl } = opts
  /** What each changed sysctl was before carpd changed it, in the order changed. */
  const original = new Map<string, string>()
  /** What carpd set, for the repair check. */
  const wanted = new Map<string, string>()
  const made = new Map<number, { name: string; parent: string; mac: string; up: boolean }>()

  const exec = async (argv: Argv): Promise<void> => {
    const r = await run(argv, COMMAND_TIMEOUT_MS)
    if (r.timedOut) throw new Error(`${argv.join(' ')}: timed out`)
    if (r.code !== 0) throw new Error(`${argv.join(' ')}: ${r.stderr.trim().split('\n')[0] || `exit code ${r.code}`}`)
  }
  const keep = (): void => {
    try {
      opts.ledger?.write([...original])
    } catch (err) {
      log.event('platform', `cannot keep the sysctls' original values: ${(err as Error).message}`)
    }
  }
  const set = (path: string, value: string): void => {
    const now = sysctl.read(path)
    if (now === null) return // no such knob here (IPv6 off in the kernel, say)
    if (!original.has(path)) {
      original.set(path, now)
      keep()
    }
    wanted.set(path, value)
    if (now !== value) sysctl.write(path, value)
  }
  /**
   * What a killed earlier run changed goes back first (in reverse, as tearDown does),
   * once per run, whether or not this run sets anything up. Its macvlans go first:
   * one left up with the VIPs would otherwise be answered for by the parent (its
   * arp_* back to 0) and announce the virtual MAC from here (review).
   */
  let leftoversDone = false
  const restoreLeftovers = async (): Promise<void> => {
    if (leftoversDone) return
    leftoversDone = true
    const left = opts.ledger?.read() ?? []
    if (left.length === 0) return
    const macvlans = new Set(left.map(([path]) => /\/conf\/(carp\d+)\//.exec(path)?.[1]).filter((n): n is string => n !== undefined))
    for (const name of macvlans) {
      if (!(await exists(name))) continue
      log.event('platform', `${name} left from an earlier run: deleting it`)
      await run(['ip', 'link', 'del', 'dev', name], COMMAND_TIMEOUT_MS)
    }
    const back: string[] = []
    for (const [path, value] of [...left].reverse()) {
      const now = sysctl.read(path)
      if (now === null || now === value) continue
      try {
        sysctl.write(path, value)
        back.push(`${knobName(path)}=${value}`)
      } catch (err) {
        log.event('platform', `cannot put ${path} back to ${value}: ${(err as Error).message}`)
      }
    }
    if (back.length > 0) log.event('platform', `sysctls an earlier run changed and did not put back, back now: ${back.join(' ')}`)
  }
  const exists = async (name: string): Promise<boolean> => (await run(['ip', 'link', 'show', 'dev', name], COMMAND_TIMEOUT_MS)).code === 0

  /** rp_filter: the interfaces keep what all.rp_filter gave them, then all goes to 0. */
  const relaxAllRpFilter = (): void => {
    const all = Number(sysctl.read(`${V4}/all/rp_filter`) ?? '0')
    if (!(all > 0)) return
    for (const iface of opts.interfaces()) {
      if (iface === 'all' || iface === 'default') continue
      const own = Number(sysctl.read(`${V4}/${iface}/rp_filter`) ?? 'NaN')
      if (own < all) set(`${V4}/${iface}/rp_filter`, String(all))
    }
    set(`${V4}/all/rp_filter`, '0')
  }

  const makeOne = async ({ vhid, parent, ipv4, ipv6 }: VmacVhid): Promise<string> => {
    const name = vmacName(vhid)
    const mac = vmacAddress(vhid, ipv6 && !ipv4)
    if (await exists(name)) {
      log.event('platform', `vhid=${vhid} ${name} left from an earlier run: deleting it`)
      await exec(['ip', 'link', 'del', 'dev', name])
    }
    await exec(['ip', 'link', 'add', 'link', parent, 'name', name, 'address', mac, 'type', 'macvlan', 'mode', 'private'])
    if (ipv6) for (const [knob, value] of IPV6_KNOBS) set(`${V6}/${name}/${knob}`, value)
    else set(`${V6}/${name}/disable_ipv6`, '1')
    set(`${V4}/${name}/arp_ignore`, '1')
    set(`${V4}/${name}/accept_local`, '1')
    set(`${V4}/${name}/rp_filter`, '0')
    set(`${V4}/${parent}/arp_ignore`, '1')
    set(`${V4}/${parent}/arp_filter`, '1')
    set(`${V4}/${parent}/arp_announce`, '2')
    made.set(vhid, { name, parent, mac, up: false })
    return name
  }

  return {
    async setUp(vhids, others = []) {
      const ready = new Map<number, string>()
      await restoreLeftovers()
      // A vhid now set to vmac = no: a macvlan left up with its VIP would answer for
      // it next to the peer.
      for (const vhid of others) {
        if (!(await exists(vmacName(vhid)))) continue
        log.event('platform', `vhid=${vhid} ${vmacName(vhid)} left from an earlier run: deleting it`)
        await run(['ip', 'link', 'del', 'dev', vmacName(vhid)], COMMAND_TIMEOUT_MS)
      }
      try {
        relaxAllRpFilter()
      } catch (err) {
        log.event('platform', `cannot relax net.ipv4.conf.all.rp_filter: ${(err as Error).message}`)
      }
      for (const one of vhids) {
        const { vhid, parent } = one
        try {
          ready.set(vhid, await makeOne(one))
          log.event('platform', `vhid=${vhid} virtual MAC ${made.get(vhid)?.mac} on ${vmacName(vhid)} (macvlan over ${parent})`)
        } catch (err) {
          log.event('platform', `vhid=${vhid} no virtual MAC, gratuitous ARP only: ${(err as Error).message}`)
          await run(['ip', 'link', 'del', 'dev', vmacName(vhid)], COMMAND_TIMEOUT_MS).catch(() => undefined)
        }
      }
      return ready
    },

    async link(vhid, up) {
      const m = made.get(vhid)
      if (!m) return
      m.up = up
      await exec(['ip', 'link', 'set', 'dev', m.name, up ? 'up' : 'down'])
    },

    async tearDown() {
      // A run that set nothing up (no vhid, say) still owes the host a killed run's values.
      await restoreLeftovers()
      for (const { name } of made.values()) {
        await exec(['ip', 'link', 'del', 'dev', name]).catch((err: Error) => log.event('platform', `cannot delete ${name}: ${err.message}`))
      }
      const gone = [...made.values()].map((m) => `/${m.name}/`)
      made.clear()
      // Back in reverse order: all.rp_filter before the interfaces it was pushed to.
      for (const [path, value] of [...original].reverse()) {
        if (gone.some((dir) => path.includes(dir))) continue // gone with its macvlan
        try {
          sysctl.write(path, value)
        } catch (err) {
          log.event('platform', `cannot put ${path} back to ${value}: ${(err as Error).message}`)
        }
      }
      original.clear()
      wanted.clear()
      try {
        opts.ledger?.remove()
      } catch (err) {
        log.event('platform', `cannot remove the sysctls' ledger: ${(err as Error).message}`)
      }
    },

    async check() {
      const repairs: string[] = []
      for (const [vhid, m] of made) {
        if (await exists(m.name)) continue
        try {
          await exec(['ip', 'link', 'add', 'link', m.parent, 'name', m.name, 'address', m.mac, 'type', 'macvlan', 'mode', 'private'])
          for (const knob of MACVLAN_KNOBS) {
            const path = `${V6_KNOB.has(knob) ? V6 : V4}/${m.name}/${knob}`
            const value = wanted.get(path)
            if (value !== undefined) sysctl.write(path, value)
          }
          if (m.up) await exec(['ip', 'link', 'set', 'dev', m.name, 'up'])
          repairs.push(`vhid=${vhid} ${m.name} was deleted by someone else: made again`)
        } catch (err) {
          log.event('platform', `vhid=${vhid} cannot make ${m.name} again: ${(err as Error).message}`)
        }
      }
      for (const [path, value] of wanted) {
        const now = sysctl.read(path)
        if (now === null || now === value) continue
        try {
          sysctl.write(path, value)
          repairs.push(`${knobName(path)} was ${now}: set to ${value} again`)
        } catch (err) {
          log.event('platform', `cannot set ${path} to ${value}: ${(err as Error).message}`)
        }
      }
      return repairs
    },
  }
}
