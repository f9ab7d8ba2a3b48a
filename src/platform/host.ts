// What the board asks of its own interfaces: addresses and MTU, read from the system
// (`ip -j`, os.networkInterfaces(), sysfs).

import { existsSync, readFileSync } from 'node:fs'
import { type NetworkInterfaceInfo, networkInterfaces } from 'node:os'
import type { Cidr } from '../config/types.js'
import { SYNC_MTU_DEFAULT } from '../sync/constants.js'
import { linuxInterfaceNet } from './linux.js'

/** The first IPv4 address os.networkInterfaces() lists for an interface (an own property: `constructor` is no interface). */
function ipv4Of(iface: string): NetworkInterfaceInfo | undefined {
  const all = networkInterfaces()
  return Object.hasOwn(all, iface) ? all[iface]?.find((a) => a.family === 'IPv4') : undefined
}

/**
 * The first IPv4 address of an interface with its prefix; undefined when it has none.
 * On Linux from `ip -j -4 addr`, which also lists interfaces whose link is down (a
 * router must start with a cable unplugged: that vhid waits in INIT); elsewhere from
 * os.networkInterfaces(), which lists only interfaces that are up.
 */
export function interfaceNet(iface: string): Cidr | undefined {
  const fromIp = linuxInterfaceNet(iface)
  if (fromIp) return fromIp
  const found = ipv4Of(iface)
  if (!found) return undefined
  return { address: found.address, prefix: Number(found.cidr?.split('/')[1] ?? 32) }
}

/** An IPv4 address of an up interface, without starting a process (asked every few seconds). */
export function addressNow(iface: string): string | null {
  return ipv4Of(iface)?.address ?? null
}

/** The interface's MTU from sysfs; Ethernet's when it cannot be read. */
export function linkMtu(iface: string): number {
  try {
    const mtu = Number(readFileSync(`/sys/class/net/${iface}/mtu`, 'utf8').trim())
    return Number.isInteger(mtu) && mtu >= 576 ? mtu : SYNC_MTU_DEFAULT
  } catch {
    return SYNC_MTU_DEFAULT
  }
}

/** Does the interface exist (sysfs; the name was validated by the configuration)? */
export function hasInterface(iface: string): boolean {
  return existsSync(`/sys/class/net/${iface}`)
}
