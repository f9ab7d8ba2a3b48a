// Runs one OS command: an argument array (never a shell), a timeout, and the result
// as exit code and output. The only place carpd starts child processes.

import { execFile } from 'node:child_process'
import type { Argv } from './types.js'

export interface CommandResult {
  code: number // exit code; -1 when it could not start or was killed by the timeout
  stdout: string
  stderr: string
  timedOut: boolean
}

/** Runs commands; tests pass a fake that records the argument arrays. */
export type Runner = (argv: Argv, timeoutMs: number) => Promise<CommandResult>

export const execRunner: Runner = (argv, timeoutMs) =>
  new Promise((resolve) => {
    execFile(
      argv[0]!,
      argv.slice(1),
      { timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: 1 << 20, windowsHide: true },
      (err, stdout, stderr) => {
        const e = err as (NodeJS.ErrnoException & { code?: number | string; killed?: boolean }) | null
        const code = e === null ? 0 : typeof e.code === 'number' ? e.code : -1
        const spawnError = e !== null && typeof e.code === 'string' ? `${e.code}: ${e.message}` : ''
        resolve({ code, stdout: String(stdout), stderr: String(stderr) || spawnError, timedOut: e?.killed === true })
      },
    )
  })
