// --dry-run: log each command the platform would run, run nothing, always succeed.

import type { Cidr } from '../config/types.js'
import type { Logger } from '../io/log.js'
import type { SyncBackend } from '../sync/backend.js'
import type { Flow } from '../wire/flow.js'
import { isIpv6 } from '../wire/ip.js'
import { addVipArgv, garpArgv, removeVipArgv, unsolicitedNaArgv } from './linux-commands.js'
import type { Argv, Platform } from './types.js'

export function dryRunPlatform(log: Logger): Platform {
  const say = (argv: Argv): Promise<void> => {
    log.event('platform', `dry-run: ${argv.map(quoteForDisplay).join(' ')}`)
    return Promise.resolve()
  }
  return {
    addVip: (iface: string, vip: Cidr) => say(addVipArgv(iface, vip)),
    removeVip: (iface: string, vip: Cidr) => say(removeVipArgv(iface, vip)),
    garp: (iface: string, vip: Cidr) => say(isIpv6(vip.address) ? unsolicitedNaArgv(iface, vip) : garpArgv(iface, vip)),
    runHook: (script: string, args: Argv) => say([script, ...args]),
  }
}

/** Shows an argument the way a shell user would type it; display only, never executed. */
export function quoteForDisplay(arg: string): string {
  return /^[A-Za-z0-9_./:=@%+-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`
}

/**
 * --dry-run state sync: an empty table that never changes; loads and removals are
 * logged. Two dry-run boards still run the whole sync protocol (hello, bulk transfers).
 */
export function dryRunSyncBackend(log: Logger): SyncBackend {
  const counters = { badLines: 0, otherFamily: 0, watchRestarts: 0, loadFailures: 0 }
  const count = (flows: Iterable<Flow>): number => {
    let n = 0
    for (const _ of flows) n++
    return n
  }
  return {
    counters,
    watch: () => {},
    snapshot: () => Promise.resolve(),
    load(flows) {
      const n = count(flows)
      log.event('platform', `dry-run: conntrack -R - (${n} flows)`)
      return Promise.resolve({ loaded: n, skipped: 0, failed: 0 })
    },
    remove(flows) {
      log.event('platform', `dry-run: conntrack -D (${count(flows)} flows)`)
      return Promise.resolve()
    },
    stop: () => {},
  }
}
