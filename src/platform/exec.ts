// Runs one OS command: an argument array (never a shell), a timeout, and the result
// as exit code and output. With linux.ts the only code that starts processes.
//
// The command gets a process group of its own, so a timeout kills whatever it
// started too, and the result comes when the command exits, not when its output
// pipes close: a hook that leaves a daemon behind (`sleep 60 &`) must not hold the
// vhid's queue until the timeout.

import { spawn } from 'node:child_process'
import type { Argv } from './types.js'

export interface CommandResult {
  code: number // exit code; -1 when it could not start or was killed by the timeout
  stdout: string
  stderr: string
  timedOut: boolean
}

/** Runs commands; tests pass a fake that records the argument arrays. */
export type Runner = (argv: Argv, timeoutMs: number) => Promise<CommandResult>

const MAX_OUTPUT_BYTES = 64 * 1024

export const execRunner: Runner = (argv, timeoutMs) =>
  new Promise((resolve) => {
    let stdout = ''
    let stderr = ''
    let timedOut = false
    let settled = false
    const child = spawn(argv[0]!, argv.slice(1), { detached: true, stdio: ['ignore', 'pipe', 'pipe'] })
    const finish = (code: number, error = ''): void => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      child.stdout?.destroy()
      child.stderr?.destroy()
      resolve({ code, stdout, stderr: stderr || error, timedOut })
    }
    const killGroup = (): void => {
      try {
        process.kill(-child.pid!, 'SIGKILL')
      } catch {
        // the group is gone already
      }
    }
    const timer = setTimeout(() => {
      timedOut = true
      killGroup()
      finish(-1)
    }, timeoutMs)
    child.stdout!.setEncoding('utf8').on('data', (d: string) => {
      if (stdout.length < MAX_OUTPUT_BYTES) stdout += d
    })
    child.stderr!.setEncoding('utf8').on('data', (d: string) => {
      if (stderr.length < MAX_OUTPUT_BYTES) stderr += d
    })
    child.on('error', (err: NodeJS.ErrnoException) => finish(-1, `${err.code ?? 'error'}: ${err.message}`))
    // 'exit', not 'close': the pipes may stay open in a grandchild. Give the output
    // that is already written a moment to arrive.
    child.on('exit', (code) => setImmediate(() => finish(code ?? -1)))
  })
