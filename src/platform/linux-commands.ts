// The command lines Linux needs, as argument arrays (pure). The dry-run adapter logs
// them; the real adapter runs them.

import type { Cidr } from '../config/types.js'
import type { Argv } from './types.js'

export function addVipArgv(iface: string, vip: Cidr): Argv {
  return ['ip', '-4', 'addr', 'add', `${vip.address}/${vip.prefix}`, 'dev', iface]
}

export function removeVipArgv(iface: string, vip: Cidr): Argv {
  return ['ip', '-4', 'addr', 'del', `${vip.address}/${vip.prefix}`, 'dev', iface]
}

/** Thomas Habets' arping: -U unsolicited, -S sets the sender address to the VIP. */
export function garpArgv(iface: string, vip: Cidr): Argv {
  return ['arping', '-U', '-S', vip.address, '-i', iface, '-c', '1', vip.address]
}

/** iputils' arping: -U unsolicited, -s source address, -I interface. */
export function iputilsGarpArgv(iface: string, vip: Cidr): Argv {
  return ['arping', '-U', '-c', '1', '-I', iface, '-s', vip.address, vip.address]
}
