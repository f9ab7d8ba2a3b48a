// The command lines Linux needs, as argument arrays (pure). The dry-run adapter logs
// them; the real adapter runs them.

import type { Cidr } from '../config/types.js'
import { isIpv6 } from '../wire/ip.js'
import type { Argv } from './types.js'

/**
 * An IPv6 VIP goes on without duplicate address detection (nodad): the peer holds it
 * until the takeover, so DAD would only delay it (a second or more) and then fail.
 * And deprecated (preferred_lft 0), as keepalived does: the board never picks it as
 * the source of its own packets, such as an advert to a unicast peer whose address
 * shares a longer prefix with the VIP than with the board's own.
 */
export function addVipArgv(iface: string, vip: Cidr): Argv {
  if (isIpv6(vip.address)) return ['ip', '-6', 'addr', 'add', `${vip.address}/${vip.prefix}`, 'dev', iface, 'nodad', 'preferred_lft', '0']
  return ['ip', '-4', 'addr', 'add', `${vip.address}/${vip.prefix}`, 'dev', iface]
}

export function removeVipArgv(iface: string, vip: Cidr): Argv {
  return ['ip', isIpv6(vip.address) ? '-6' : '-4', 'addr', 'del', `${vip.address}/${vip.prefix}`, 'dev', iface]
}

/**
 * The SI6 IPv6 toolkit's na6 (Debian ipv6toolkit): one unsolicited neighbour
 * advertisement for an IPv6 VIP to all nodes, with the override flag and the
 * interface's MAC as target link-layer address, so neighbours move to it.
 */
export function unsolicitedNaArgv(iface: string, vip: Cidr): Argv {
  return ['na6', '-i', iface, '-s', vip.address, '-d', 'ff02::1', '-t', vip.address, '-o', '-e']
}

/** Thomas Habets' arping: -U unsolicited, -S sets the sender address to the VIP. */
export function garpArgv(iface: string, vip: Cidr): Argv {
  return ['arping', '-U', '-S', vip.address, '-i', iface, '-c', '1', vip.address]
}

/** iputils' arping: -U unsolicited, -s source address, -I interface. */
export function iputilsGarpArgv(iface: string, vip: Cidr): Argv {
  return ['arping', '-U', '-c', '1', '-I', iface, '-s', vip.address, vip.address]
}
