// --dry-run: log each command the platform would run, run nothing, always succeed.

import type { Cidr } from '../config/types.js'
import type { Logger } from '../io/log.js'
import { addVipArgv, garpArgv, removeVipArgv } from './linux-commands.js'
import type { Argv, Platform } from './types.js'

export function dryRunPlatform(log: Logger): Platform {
  const say = (argv: Argv): Promise<void> => {
    log.event('platform', `dry-run: ${argv.map(quoteForDisplay).join(' ')}`)
    return Promise.resolve()
  }
  return {
    addVip: (iface: string, vip: Cidr) => say(addVipArgv(iface, vip)),
    removeVip: (iface: string, vip: Cidr) => say(removeVipArgv(iface, vip)),
    garp: (iface: string, vip: Cidr) => say(garpArgv(iface, vip)),
    runHook: (script: string, args: Argv) => say([script, ...args]),
  }
}

/** Shows an argument the way a shell user would type it; display only, never executed. */
export function quoteForDisplay(arg: string): string {
  return /^[A-Za-z0-9_./:=@%+-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`
}
