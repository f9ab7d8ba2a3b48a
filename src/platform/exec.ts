// Runs one OS command: an argument array (never a shell), a timeout, and the result
// as exit code and output. With linux.ts the only code that starts processes.
//
// The command gets a process group of its own, so a timeout kills whatever it
// started too, and the result comes when the command exits, not when its output
// pipes close: a hook that leaves a daemon behind (`sleep 60 &`) must not hold the
// vhid's queue until the timeout.

import { type ChildProcess, spawn } from 'node:child_process'
import { type FileHandle, mkdtemp, open, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
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
/** After a short command exits, how long its output may take to drain from the pipes. */
const EXIT_DRAIN_MS = 50

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
    // 'close' comes once the pipes are drained, but a grandchild may hold them open
    // for ever (a hook that leaves `sleep &` behind): so after 'exit' wait for
    // 'close' at most EXIT_DRAIN_MS. (setImmediate alone lost stderr still in the pipe.)
    child.on('exit', (code) => {
      const done = (): void => finish(code ?? -1)
      child.once('close', done)
      setTimeout(done, EXIT_DRAIN_MS).unref()
    })
  })

/** Longest stdout/stderr line passed on; a longer one is cut here (it cannot be a conntrack line). */
export const MAX_LINE_CHARS = 16 * 1024

export interface StreamOptions {
  /** The command's stdin, given as a file (see execStream); without it stdin is /dev/null. */
  input?: string | Iterable<string>
  /** Each line of stdout, without its newline, as it arrives: the output is never held whole. */
  onLine?: (line: string) => void
  /** Each line of stderr (the first 64 KiB of it also come back in the result). */
  onStderrLine?: (line: string) => void
  /** Killed (the whole process group) after this long; 0 = never (a long-running reader). */
  timeoutMs: number
  /** Aborting kills the process group; the result then says `aborted`. */
  signal?: AbortSignal
}

export interface StreamResult {
  code: number // exit code; -1 when it could not start, was killed, or died of a signal
  stderr: string
  timedOut: boolean
  aborted: boolean
}

/** Runs a command with streamed input and output; tests pass a fake. */
export type StreamRunner = (argv: Argv, opts: StreamOptions) => Promise<StreamResult>

/**
 * Waits for stdout to be read to its end after the exit, but not forever: a
 * grandchild that inherited the pipe must not hold the result.
 */
const PIPE_DRAIN_MS = 1000

/**
 * Like execRunner, for commands whose output is too big to hold (`conntrack -L` of
 * 100,000 flows is 17 MB) or that never end (`conntrack -E`). Resolves when stdout
 * has been read to its end and the command has exited; never rejects.
 *
 * The input goes through a file, not a pipe: Node's pipes to a child are socket
 * pairs, and a program that opens /dev/stdin by name (`conntrack -R -` does) cannot
 * open a socket ("Failed to open file /dev/stdin for reading"). The file is made in a
 * private directory under os.tmpdir() (tmpfs on a board: no flash writes) and
 * unlinked as soon as it is open, so nothing is left behind even if carpd dies.
 */
export const execStream: StreamRunner = async (argv, opts) => {
  let stdin: FileHandle | null = null
  if (opts.input !== undefined) {
    try {
      stdin = await inputFile(opts.input)
    } catch (err) {
      const e = err as NodeJS.ErrnoException
      return { code: -1, stderr: `cannot write the input file: ${e.code ?? 'error'}: ${e.message}`, timedOut: false, aborted: false }
    }
  }
  try {
    return await runStreaming(argv, opts, stdin === null ? 'ignore' : stdin.fd)
  } finally {
    await stdin?.close()
  }
}

/** Writes the input to a file that has no name any more, and returns it open for reading at its start. */
async function inputFile(input: string | Iterable<string>): Promise<FileHandle> {
  const dir = await mkdtemp(join(tmpdir(), 'carpd-stdin-'))
  const path = join(dir, 'input')
  let writer: FileHandle | null = null
  let reader: FileHandle | null = null
  try {
    writer = await open(path, 'wx', 0o600)
    // A second open has its own offset, at 0, for the child to read from.
    reader = await open(path, 'r')
    await rm(dir, { recursive: true })
    for (const chunk of typeof input === 'string' ? [input] : input) await writer.write(chunk)
    return reader
  } catch (err) {
    await reader?.close()
    throw err
  } finally {
    await writer?.close()
    await rm(dir, { recursive: true, force: true })
  }
}

function runStreaming(argv: Argv, opts: StreamOptions, stdin: number | 'ignore'): Promise<StreamResult> {
  return new Promise((resolve) => {
    let stderr = ''
    let timedOut = false
    let aborted = false
    let settled = false
    let exitCode: number | null = null
    let stdoutEnded = false
    let drainTimer: NodeJS.Timeout | undefined
    let timer: NodeJS.Timeout | undefined
    let child: ChildProcess | null = null
    const finish = (code: number, error = ''): void => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      clearTimeout(drainTimer)
      opts.signal?.removeEventListener('abort', onAbort)
      child?.stdout?.destroy()
      child?.stderr?.destroy()
      resolve({ code: timedOut || aborted ? -1 : code, stderr: stderr || error, timedOut, aborted })
    }
    const killGroup = (): void => {
      try {
        if (child?.pid !== undefined) process.kill(-child.pid, 'SIGKILL')
      } catch {
        // gone already
      }
    }
    const onAbort = (): void => {
      aborted = true
      killGroup()
      finish(-1)
    }
    if (opts.signal?.aborted) {
      aborted = true
      finish(-1)
      return
    }
    try {
      child = spawn(argv[0]!, argv.slice(1), { detached: true, stdio: [stdin, 'pipe', 'pipe'] })
    } catch (err) {
      // spawn throws at once on some failures (EPERM, ENOMEM): a result, not a rejection.
      finish(-1, `${(err as NodeJS.ErrnoException).code ?? 'error'}: ${(err as Error).message}`)
      return
    }
    if (!child.stdout || !child.stderr) {
      // Out of file descriptors: no pipes to read.
      killGroup()
      finish(-1, 'spawn gave no output pipes (out of file descriptors?)')
      return
    }
    opts.signal?.addEventListener('abort', onAbort, { once: true })
    if (opts.timeoutMs > 0) {
      timer = setTimeout(() => {
        timedOut = true
        killGroup()
        finish(-1)
      }, opts.timeoutMs)
    }
    const maybeDone = (): void => {
      if (exitCode !== null && stdoutEnded) finish(exitCode)
    }
    // Nothing is passed on after the result: a killed command's last bytes are not wanted.
    splitLines(child.stdout, (line) => settled || opts.onLine?.(line), () => {
      stdoutEnded = true
      maybeDone()
    })
    splitLines(child.stderr, (line) => {
      if (settled) return
      if (stderr.length < MAX_OUTPUT_BYTES) stderr += `${line}\n`
      opts.onStderrLine?.(line)
    })
    child.on('error', (err: NodeJS.ErrnoException) => finish(-1, `${err.code ?? 'error'}: ${err.message}`))
    child.on('exit', (code) => {
      exitCode = code ?? -1
      maybeDone()
      if (!settled) drainTimer = setTimeout(() => finish(exitCode!), PIPE_DRAIN_MS)
    })
  })
}

/** Calls `onLine` for each line of a stream; a last line without its newline counts too. */
function splitLines(stream: NodeJS.ReadableStream, onLine: (line: string) => void, onEnd?: () => void): void {
  let partial = ''
  let cutting = false // inside an over-long line: drop the rest of it
  let ended = false
  const end = (): void => {
    if (ended) return
    ended = true
    if (partial !== '' && !cutting) onLine(partial)
    partial = ''
    onEnd?.()
  }
  stream.setEncoding('utf8')
  stream.on('data', (chunk: string) => {
    let start = 0
    for (let nl = chunk.indexOf('\n'); nl >= 0; nl = chunk.indexOf('\n', start)) {
      const piece = chunk.slice(start, nl)
      start = nl + 1
      if (cutting) {
        cutting = false
        continue
      }
      const line = partial === '' ? piece : partial + piece
      partial = ''
      onLine(line.length > MAX_LINE_CHARS ? line.slice(0, MAX_LINE_CHARS) : line)
    }
    if (start < chunk.length && !cutting) {
      partial += chunk.slice(start)
      if (partial.length > MAX_LINE_CHARS) {
        onLine(partial.slice(0, MAX_LINE_CHARS))
        partial = ''
        cutting = true
      }
    }
  })
  stream.on('end', end)
  // A destroyed pipe (the command was killed) closes without 'end'.
  stream.on('close', end)
}
