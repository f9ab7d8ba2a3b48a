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
import { WAN_MARK_MASK, wanMark } from '../wan/types.js'

const WAN_COMMAND_TIMEOUT_MS = 10_000

export interface WanHook {
  table: string
  chain: string
  rule: string[]
}

/** What the WAN link needs of the platform. */
export interface WanApplier {
  /** Checks then loads `text`; rejects (with the tool's message) and changes nothing when the check fails. */
  loadRules(flavour: 'iptables' | 'nft', text: string, hooks: readonly WanHook[]): Promise<void>
  /** Runs the policy-routing commands: `del` ignoring failures (idempotent), then `add`. */
  routes(cmds: { del: string[][]; add: string[][] }): Promise<void>
  /** Removes the connections marked for WAN `wan`; resolves with how many went. */
  flushConnections(wan: number): Promise<number>
}

export class WanApplyError extends Error {
  constructor(
    readonly code: 'checkFailed' | 'loadFailed' | 'hookFailed' | 'routeFailed',
    message: string,
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
        await exec(['iptables-restore', '--test', '--noflush', file], 'checkFailed')
        await exec(['iptables-restore', '--noflush', file], 'loadFailed')
        for (const h of hooks) {
          const present = await run(['iptables', '-t', h.table, '-C', h.chain, ...h.rule], WAN_COMMAND_TIMEOUT_MS)
          if (present.code === 0) continue
          await exec(['iptables', '-t', h.table, '-I', h.chain, '1', ...h.rule], 'hookFailed')
          log.event('wan', `hooked ${h.table} ${h.chain}: ${h.rule.join(' ')}`)
        }
      } finally {
        await rm(dir, { recursive: true, force: true })
      }
    },
    async routes(cmds) {
      for (const argv of cmds.del) await run(argv, WAN_COMMAND_TIMEOUT_MS)
      for (const argv of cmds.add) await exec(argv, 'routeFailed')
    },
    async flushConnections(wan) {
      const mark = `0x${wanMark(wan).toString(16)}/0x${WAN_MARK_MASK.toString(16)}`
      const r = await run(['conntrack', '-D', '--mark', mark], WAN_COMMAND_TIMEOUT_MS)
      // "conntrack v1.4.7 (conntrack-tools): 12 flow entries have been deleted." on
      // stderr; exit 1 when there was none to delete.
      const m = /(\d+) flow entr(?:y|ies) ha(?:s|ve) been deleted/.exec(r.stderr + r.stdout)
      return m ? Number(m[1]) : 0
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
    async flushConnections(wan) {
      log.event('dry-run', `conntrack -D --mark 0x${wanMark(wan).toString(16)}/0x${WAN_MARK_MASK.toString(16)}`)
      return 0
    },
  }
}
