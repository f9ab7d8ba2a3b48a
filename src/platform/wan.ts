// Loads multi-WAN rules into the Linux kernel: check first, load atomically, never
// touch what carpd does not own, keep the previous set when loading fails (SPEC
// "Multi-WAN"). iptables-restore --noflush replaces only carpd's own chains (it
// flushes them itself); nft -f replaces carpd's own table in one transaction. The
// jumps from the built-in chains are checked with `iptables -C` and inserted once.
// Connections of a WAN that went offline are removed by their mark, nothing else.
//
// Every command is an argument array run through the Runner (timeouts, no shell).

import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Logger } from '../io/log.js'
import type { Runner } from './exec.js'
import { type WanApplier, NFT_TABLE, WAN_MARK_MASK, wanMark } from '../wan/types.js'

const WAN_COMMAND_TIMEOUT_MS = 10_000
/** Seconds iptables waits for the xtables lock. */
const XTABLES_WAIT_S = '5'


export class WanApplyError extends Error {
  constructor(
    readonly code: 'checkFailed' | 'loadFailed' | 'hookFailed' | 'routeFailed' | 'flushFailed',
    message: string,
    /** routeFailed: the add commands that failed (the others went in). */
    readonly failed: string[][] = [],
  ) {
    super(message)
  }
}

export function linuxWanApplier(opts: { run: Runner; log: Logger }): WanApplier {
  const { run, log } = opts
  const exec = async (argv: string[], code: WanApplyError['code']): Promise<void> => {
    const r = await run(argv, WAN_COMMAND_TIMEOUT_MS)
    if (r.code !== 0) throw new WanApplyError(code, `${argv.join(' ')}: ${(r.stderr || r.stdout).trim() || `exit ${r.code}`}`)
  }
  return {
    async loadRules(flavour, text, hooks) {
      // The text goes through a file: both tools read one, and a file keeps the
      // check and the load reading exactly the same bytes.
      const dir = await mkdtemp(join(tmpdir(), 'carpd-wan-'))
      const file = join(dir, flavour === 'nft' ? 'rules.nft' : 'rules.iptables')
      try {
        await writeFile(file, text, { mode: 0o600 })
        if (flavour === 'nft') {
          await exec(['nft', '-c', '-f', file], 'checkFailed')
          await exec(['nft', '-f', file], 'loadFailed')
          return
        }
        // -w: wait for the xtables lock (fail2ban, docker or a script may hold it)
        // instead of failing at once.
        await exec(['iptables-restore', '-w', XTABLES_WAIT_S, '--test', '--noflush', file], 'checkFailed')
        await exec(['iptables-restore', '-w', XTABLES_WAIT_S, '--noflush', file], 'loadFailed')
        for (const h of hooks) {
          const present = await run(['iptables', '-w', XTABLES_WAIT_S, '-t', h.table, '-C', h.chain, ...h.rule], WAN_COMMAND_TIMEOUT_MS)
          if (present.code === 0) continue
          // Exit 1 is "no such rule"; anything else (a busy lock, a missing module) is
          // not a reason to insert the jump a second time.
          if (present.code !== 1) throw new WanApplyError('hookFailed', `iptables -t ${h.table} -C ${h.chain}: ${(present.stderr || present.stdout).trim() || `exit ${present.code}`}`)
          await exec(['iptables', '-w', XTABLES_WAIT_S, '-t', h.table, '-I', h.chain, '1', ...h.rule], 'hookFailed')
          log.event('wan', `hooked ${h.table} ${h.chain}: ${h.rule.join(' ')}`)
        }
      } finally {
        await rm(dir, { recursive: true, force: true })
      }
    },
    async routes(cmds) {
      for (const argv of cmds.del) await run(argv, WAN_COMMAND_TIMEOUT_MS)
      // Every route is tried: one WAN whose gateway is not reachable yet (DHCP, PPPoE
      // at boot) must not keep the others' routes out.
      const failed: string[][] = []
      const messages: string[] = []
      for (const argv of cmds.add) {
        try {
          await exec(argv, 'routeFailed')
        } catch (err) {
          failed.push(argv)
          messages.push((err as Error).message)
        }
      }
      if (failed.length > 0) throw new WanApplyError('routeFailed', messages.join('; '), failed)
    },
    async drift(flavour, hooks, routes) {
      const missing: string[] = []
      if (flavour === 'nft') {
        if ((await run(['nft', 'list', 'table', 'ip', NFT_TABLE], WAN_COMMAND_TIMEOUT_MS)).code !== 0) missing.push(`nft table ip ${NFT_TABLE}`)
      } else {
        for (const h of hooks) {
          // Exit 1: no such rule (or chain); anything else says nothing either way.
          const r = await run(['iptables', '-w', XTABLES_WAIT_S, '-t', h.table, '-C', h.chain, ...h.rule], WAN_COMMAND_TIMEOUT_MS)
          if (r.code === 1) missing.push(`jump in ${h.table} ${h.chain}`)
        }
      }
      const prefs = routes.filter((argv) => argv[1] === 'rule' && argv[3] === 'pref').map((argv) => argv[4]!)
      if (prefs.length > 0) {
        const r = await run(['ip', 'rule', 'show'], WAN_COMMAND_TIMEOUT_MS)
        const present = new Set(r.stdout.split('\n').map((line) => line.split(':')[0]!.trim()))
        if (r.code === 0) for (const pref of prefs) if (!present.has(pref)) missing.push(`ip rule ${pref}`)
      }
      for (const argv of routes) {
        // ip route replace default via G dev D onlink table T
        if (argv[1] !== 'route' || argv[3] !== 'default' || argv[4] !== 'via') continue
        const table = argv[argv.length - 1]!
        const r = await run(['ip', 'route', 'show', 'table', table], WAN_COMMAND_TIMEOUT_MS)
        if (r.code === 0 && !r.stdout.includes(`default via ${argv[5]}`)) missing.push(`default route of table ${table}`)
      }
      return missing
    },
    async flushConnections(wan) {
      const mark = `0x${wanMark(wan).toString(16)}/0x${WAN_MARK_MASK.toString(16)}`
      const r = await run(['conntrack', '-D', '--mark', mark], WAN_COMMAND_TIMEOUT_MS)
      // "conntrack v1.4.7 (conntrack-tools): 12 flow entries have been deleted." on
      // stderr; exit 1 when there was none to delete. Anything else (no conntrack,
      // a timeout) is a failure, not "0 removed".
      const m = /(\d+) flow entr(?:y|ies) ha(?:s|ve) been deleted/.exec(r.stderr + r.stdout)
      if (m) return Number(m[1])
      // "0 flow entries" is printed when there was nothing to delete; no count at all
      // with exit 1 is a failure (not root, no CAP_NET_ADMIN, no such option).
      if (r.code === 0) return 0
      throw new WanApplyError('flushFailed', `conntrack -D --mark ${mark}: ${(r.stderr || r.stdout).trim() || `exit ${r.code}`}`)
    },
  }
}

/** --dry-run: says what it would load. */
export function dryRunWanApplier(log: Logger): WanApplier {
  return {
    async loadRules(flavour, text) {
      log.event('dry-run', `${flavour === 'nft' ? 'nft -f' : 'iptables-restore --noflush'} (${text.split('\n').length} lines)`)
    },
    async routes(cmds) {
      for (const argv of [...cmds.del, ...cmds.add]) log.event('dry-run', argv.join(' '))
    },
    async drift() {
      return []
    },
    async flushConnections(wan) {
      log.event('dry-run', `conntrack -D --mark 0x${wanMark(wan).toString(16)}/0x${WAN_MARK_MASK.toString(16)}`)
      return 0
    },
  }
}

/**
 * Strict reverse-path filtering drops replies that arrive on a WAN other than the
 * one the main table would use, unless it looks at marks (src_valid_mark). Returns a
 * warning with the command that fixes it, or null.
 */
export function reversePathWarning(iface: string, read: (path: string) => string): string | null {
  try {
    const rp = Number(read(`/proc/sys/net/ipv4/conf/${iface}/rp_filter`).trim())
    const all = Number(read('/proc/sys/net/ipv4/conf/all/rp_filter').trim())
    // The kernel ORs the interface's and `all`'s src_valid_mark.
    const svm = Math.max(Number(read(`/proc/sys/net/ipv4/conf/${iface}/src_valid_mark`).trim()), Number(read('/proc/sys/net/ipv4/conf/all/src_valid_mark').trim()))
    if (Math.max(rp, all) !== 1 || svm === 1) return null
    return `${iface}: strict rp_filter drops replies of connections split to this WAN; run: sysctl -w net.ipv4.conf.${iface}.src_valid_mark=1 (or rp_filter=2)`
  } catch {
    return null
  }
}
