// One long-lived `ip -force -batch -` for the commands of a takeover. Starting a
// process costs 10-12 ms here (fork and exec from a node process), and a takeover with
// a virtual MAC runs two in a row (the macvlan up, the VIP on it): the failover bench
// measured carpd 28-68 ms over carp(4)'s master-down where keepalived, which speaks
// netlink itself, is 2-24 ms over. Written to a running ip, a command takes about a
// millisecond.
//
// ip prints nothing on success and reads its commands line by line. After each
// command a marker follows that always fails with a known line on stderr (unbuffered,
// unlike stdout into a pipe), so the reply to every command is read in order:
//
//   line N     addr add 192.0.2.1/24 dev carp1     errors, then "Command failed -:N"
//   line N+1   link show dev carpd.batch.marker    "Command failed -:N+1": N is done
//
// A command the batch cannot carry (another subcommand, or an argument ip's batch
// parser would split or quote) runs as its own process, as before; so does every
// command while the batch process cannot start. A running ip keeps interface indexes
// by name (the lab: a macvlan deleted and made again was "No such device" to it), so
// the batch process is replaced after any `ip link add` or `del`, and a command that
// finds no device runs again as its own process, from a fresh one after it.

import { type ChildProcess, spawn } from 'node:child_process'
import type { CommandResult, Runner } from './exec.js'
import type { Argv } from './types.js'

/** A name no interface has (longer than IFNAMSIZ allows), so showing it always fails. */
const MARKER = 'link show dev carpd.batch.marker'
const FAILED = /^Command failed -:(\d+)$/

interface Pending {
  line: number
  failed: boolean
  stderr: string[]
  resolve: (r: CommandResult) => void
  timer: NodeJS.Timeout
}

/**
 * `ip [-4|-6] addr add|del ...` and `ip link set ...`, with plain arguments: the batch
 * carries them (without the family option, which a batch line cannot have: ip takes
 * the family from the address).
 */
export function batchable(argv: Argv): string | null {
  const args = argv[0] === 'ip' ? argv.slice(argv[1] === '-4' || argv[1] === '-6' ? 2 : 1) : null
  if (!args || args.length < 3) return null
  const ok = (args[0] === 'addr' && (args[1] === 'add' || args[1] === 'del')) || (args[0] === 'link' && args[1] === 'set')
  if (!ok || !args.every((a) => /^[A-Za-z0-9._:/-]+$/.test(a))) return null
  return args.join(' ')
}

/** One running ip: its commands waiting for their marker, and the lines it has read. */
interface Batch {
  proc: ChildProcess
  pending: Pending[]
  line: number
  tail: string
}

/** A Runner that sends what it can to one ip process and runs the rest with `fallback`. */
export function ipBatchRunner(fallback: Runner, spawnIp: () => ChildProcess = () => spawn('ip', ['-force', '-batch', '-'], { stdio: ['pipe', 'ignore', 'pipe'] })): Runner {
  let current: Batch | null = null

  const settle = (b: Batch, why: string): void => {
    for (const p of b.pending.splice(0)) {
      clearTimeout(p.timer)
      p.resolve({ code: 1, stdout: '', stderr: why, timedOut: false })
    }
  }
  const onLine = (b: Batch, text: string): void => {
    const head = b.pending[0]
    if (!head) return
    const m = FAILED.exec(text)
    if (!m) {
      head.stderr.push(text)
      return
    }
    const n = Number(m[1])
    if (n === head.line) {
      head.failed = true
      return
    }
    if (n !== head.line + 1) return // not ours (cannot happen: the lines are read in order)
    b.pending.shift()
    clearTimeout(head.timer)
    // The marker's own complaint is the last line before its "Command failed".
    head.resolve({ code: head.failed ? 1 : 0, stdout: '', stderr: head.stderr.slice(0, -1).join('\n'), timedOut: false })
  }
  const start = (): Batch | null => {
    let proc: ChildProcess
    try {
      proc = spawnIp()
    } catch {
      return null
    }
    const b: Batch = { proc, pending: [], line: 0, tail: '' }
    proc.stderr?.setEncoding('utf8')
    proc.stderr?.on('data', (chunk: string) => {
      const lines = (b.tail + chunk).split('\n')
      b.tail = lines.pop() ?? ''
      for (const l of lines) onLine(b, l.trimEnd())
    })
    proc.on('error', () => undefined)
    proc.stdin?.on('error', () => undefined)
    proc.on('exit', () => {
      if (current === b) current = null
      settle(b, 'ip -batch exited')
    })
    return b
  }
  /** The next commands go to a new ip; this one finishes what it has read, then exits. */
  const drop = (): void => {
    const old = current
    current = null
    old?.proc.stdin?.end()
  }
  const viaBatch = (command: string, timeoutMs: number): Promise<CommandResult> | null => {
    current ??= start()
    const b = current
    if (!b?.proc.stdin || b.proc.stdin.destroyed) return null
    return new Promise<CommandResult>((resolve) => {
      const p: Pending = {
        line: b.line + 1,
        failed: false,
        stderr: [],
        resolve,
        timer: setTimeout(() => {
          // A hung ip: it goes, and the next command starts another.
          b.pending = b.pending.filter((x) => x !== p)
          if (current === b) current = null
          b.proc.kill('SIGKILL')
          resolve({ code: 1, stdout: '', stderr: `${command}: timed out in ip -batch`, timedOut: true })
        }, timeoutMs),
      }
      b.line += 2
      b.pending.push(p)
      b.proc.stdin!.write(`${command}\n${MARKER}\n`)
    })
  }

  return async (argv, timeoutMs) => {
    const command = batchable(argv)
    if (command === null) {
      if (argv[0] === 'ip' && argv.includes('link') && (argv.includes('add') || argv.includes('del'))) drop()
      return fallback(argv, timeoutMs)
    }
    const r = await viaBatch(command, timeoutMs)
    if (r === null) return fallback(argv, timeoutMs)
    if (r.code !== 0 && /No such device|Cannot find device/.test(r.stderr)) {
      drop()
      return fallback(argv, timeoutMs)
    }
    return r
  }
}
