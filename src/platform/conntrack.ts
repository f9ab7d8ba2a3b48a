// The Linux state-sync backend: conntrack(8) from conntrack-tools (SPEC "State sync
// behaviour"): `-L` reads the table, `-E` follows it, `-R -` loads flows from stdin,
// and `-R -` with `-D` lines removes them. Text both ways is sync/conntrack-text.ts.
//
// What conntrack-tools 1.4.7 on Linux 6.x does, measured (and why the code below is
// shaped so):
// - `-R` reads and checks every line first (a malformed one: exit 2, nothing done),
//   then runs them in order and stops at the first that fails, exit 1. The lines
//   before it are in the kernel, the ones after are not, and nothing says which line
//   failed. "Such conntrack exists" comes for a flow already there, and for a flow
//   without NAT, or with source NAT to an address and port, whose reply tuple another
//   flow holds. A destination-NAT-only flow (or ICMP) whose reply tuple is taken is
//   not refused: the kernel's NAT quietly picks another client port (or id).
// - `-R -` opens /dev/stdin by name, which fails on a socket: exec.ts's execStream
//   gives it a file.
// - `-I` is one netlink request (100,000 of them: ~1.2 s); `-D` and `-U` are not:
//   each dumps the whole table to match it (~0.35 s per line with 100,000 flows).
// - `-E` with a full socket buffer prints "WARNING: We have hit ENOBUFS! We are
//   losing events." on stderr and goes on reading: events were lost, the reader
//   lives. It cannot keep up with `-R`: a 20,000-flow load overflows even 8 MiB.
// - `-b N` makes the kernel socket buffer 2N bytes.

import type { Clock, TimerHandle } from '../io/clock.js'
import { realClock } from '../io/clock.js'
import type { Logger } from '../io/log.js'
import type { BackendCounters, FlowChange, SyncBackend } from '../sync/backend.js'
import { deleteArgs, flowKey, insertLine, parseConntrackLine, type ParsedLine } from '../sync/conntrack-text.js'
import type { Flow } from '../wire/flow.js'
import { execStream, type StreamResult, type StreamRunner } from './exec.js'
import { type Argv, PlatformError } from './types.js'

/**
 * `-R` lines per run: ~90 ms a run on a PC. Fewer runs are barely faster (100,000 flows:
 * 1.8 s in runs of 5,000, 1.5 s in runs of 50,000), and a failed run costs a table read.
 */
export const LOAD_BATCH_LINES = 5000
/** Each `-D` line reads the whole table, so few per run: a run stays well inside its timeout. */
export const REMOVE_BATCH_LINES = 32
/** Runs of one batch (the first and its retries after a failed line) before giving up on the rest. */
export const LOAD_ATTEMPTS_PER_BATCH = 6
/** conntrack -R processes at once (see startBatch). */
export const LOAD_PARALLEL = 2
/** 100,000 flows are read and parsed in ~0.6 s on a PC; a 500 MHz board is far slower. */
export const SNAPSHOT_TIMEOUT_MS = 120_000
export const LOAD_BATCH_TIMEOUT_MS = 60_000
export const REMOVE_TIMEOUT_BASE_MS = 20_000
export const REMOVE_TIMEOUT_PER_LINE_MS = 2_000
export const COUNT_TIMEOUT_MS = 5_000
/** `conntrack -E -b`: the kernel doubles it, so the socket holds 8 MiB of events. */
export const EVENT_BUFFER_BYTES = 4 * 1024 * 1024
/** The event reader starts again after this, doubling up to the maximum... */
export const WATCH_RESTART_MIN_MS = 500
export const WATCH_RESTART_MAX_MS = 30_000
/** ...and back to the minimum once a reader has lived this long. */
export const WATCH_STABLE_MS = 60_000

/**
 * Loose TCP pickup (the kernel's default, nf_conntrack_tcp_loose=1) makes an entry
 * for a mid-stream packet of a flow the kernel does not know. In a takeover the
 * flows' first packets come before the peer's states are loaded: the entries picked
 * up are marked and NATed afresh, and the peer's states are then refused ("Such
 * conntrack exists"): the pair's lab lost 30 of 35 that way. Returns a warning with
 * what fixes it, or null (pickup off, or no conntrack module to ask).
 */
export function pickupWarning(read: (path: string) => string): string | null {
  try {
    if (read('/proc/sys/net/netfilter/nf_conntrack_tcp_loose').trim() !== '1') return null
  } catch {
    return null
  }
  return (
    "nf_conntrack_tcp_loose=1: a takeover's first packets make new entries before the peer's states are loaded, and those states are then refused; " +
    'run: sysctl -w net.netfilter.nf_conntrack_tcp_loose=0, and drop "ct state invalid" in the forward and input chains (a packet that comes before its state is then sent again, not reset)'
  )
}

export interface ConntrackOptions {
  log: Logger
  /** Runs the commands; tests pass a fake. */
  run?: StreamRunner
  /** Put in front of every command, e.g. ['ip', 'netns', 'exec', 'NS'] (the lab's namespaces). */
  prefix?: Argv
  /** The conntrack program. */
  program?: string
  batchLines?: number
  removeBatchLines?: number
  /** Times the event reader's restarts. */
  clock?: Clock
}

export interface ConntrackCounters extends BackendCounters {
  /** Flows carpd cannot carry (SCTP, GRE, ICMPv6..., or a zone per direction), skipped. */
  unsupported: number
}

export interface ConntrackBackend extends SyncBackend {
  readonly counters: ConntrackCounters
}

interface Pending {
  key: string
  line: string
}

interface LoadTally {
  loaded: number
  skipped: number
  failed: number
}

export function conntrackBackend(opts: ConntrackOptions): ConntrackBackend {
  return new Conntrack(opts)
}

class Conntrack implements ConntrackBackend {
  readonly counters: ConntrackCounters = { badLines: 0, otherFamily: 0, watchRestarts: 0, loadFailures: 0, unsupported: 0 }
  private readonly run: StreamRunner
  private readonly prefix: Argv
  private readonly program: string
  private readonly batchLines: number
  private readonly removeBatchLines: number
  private readonly clock: Clock
  private readonly log: Logger
  /** Aborted by stop(): kills every command still running. */
  private readonly stopper = new AbortController()
  private stopped = false
  /** load() and remove() run one at a time: a failed -R is read by the table count around it. */
  private queue: Promise<unknown> = Promise.resolve()
  private watching = false
  private restartTimer: TimerHandle | null = null
  private restartDelayMs = WATCH_RESTART_MIN_MS
  /** A loss was reported and no snapshot has begun since: do not report it again. */
  private lossReported = false

  constructor(opts: ConntrackOptions) {
    this.log = opts.log
    this.run = opts.run ?? execStream
    this.prefix = opts.prefix ?? []
    this.program = opts.program ?? 'conntrack'
    this.batchLines = Math.max(1, opts.batchLines ?? LOAD_BATCH_LINES)
    this.removeBatchLines = Math.max(1, opts.removeBatchLines ?? REMOVE_BATCH_LINES)
    this.clock = opts.clock ?? realClock()
  }

  // --- following the table -------------------------------------------------------

  watch(onChange: (change: FlowChange) => void, onLost: (why: string) => void): void {
    if (this.watching) throw new Error('conntrack: watch() was called twice')
    this.watching = true
    const start = (): void => {
      this.restartTimer = null
      if (this.stopped) return
      const startedMs = this.clock.now()
      let badShown = false
      const argv = this.argv(['-E', '-o', 'extended', '-b', String(EVENT_BUFFER_BYTES)])
      void this.run(argv, {
        timeoutMs: 0,
        signal: this.stopper.signal,
        onLine: (line) => {
          const parsed = parseConntrackLine(line)
          if (parsed.ok) {
            if (parsed.event === null) return
            onChange(parsed.event === 'DESTROY' ? { op: 'delete', flow: parsed.flow } : { op: 'upsert', flow: parsed.flow })
          } else if (this.countSkip(parsed) && !badShown) {
            badShown = true
            this.log.event('conntrack', `conntrack -E: unreadable line skipped: ${JSON.stringify(line.slice(0, 200))}`)
          }
        },
        onStderrLine: (line) => {
          // The reader goes on after this: the events are gone, the reader is not.
          if (!/ENOBUFS|No buffer space/i.test(line) || this.lossReported) return
          this.lossReported = true
          this.log.event('conntrack', 'conntrack -E: the kernel dropped events (socket buffer full)')
          onLost('the kernel dropped state events (ENOBUFS)')
        },
      }).then((r) => {
        if (this.stopped) return
        this.counters.watchRestarts++
        if (this.clock.now() - startedMs >= WATCH_STABLE_MS) this.restartDelayMs = WATCH_RESTART_MIN_MS
        const delayMs = this.restartDelayMs
        this.restartDelayMs = Math.min(WATCH_RESTART_MAX_MS, delayMs * 2)
        const why = `conntrack -E ended (${describe(r)})`
        this.log.event('conntrack', `${why}; starting it again in ${delayMs} ms`)
        onLost(why)
        this.restartTimer = this.clock.at(this.clock.now() + delayMs, start)
      })
    }
    start()
  }

  // --- reading the table ---------------------------------------------------------

  async snapshot(onFlow: (flow: Flow) => void): Promise<void> {
    // Whatever was lost before this point, this read covers.
    this.lossReported = false
    let badShown = false
    await this.readTable(SNAPSHOT_TIMEOUT_MS, (parsed, line) => {
      if (parsed.ok) onFlow(parsed.flow)
      else if (this.countSkip(parsed) && !badShown) {
        badShown = true
        this.log.event('conntrack', `conntrack -L: unreadable line skipped: ${JSON.stringify(line.slice(0, 200))}`)
      }
    })
  }

  /** Streams `conntrack -L`; rejects with a PlatformError when the table cannot be read. */
  private async readTable(timeoutMs: number, onLine: (parsed: ParsedLine, line: string) => void): Promise<void> {
    if (this.stopped) throw new PlatformError('commandFailed', 'conntrack: stopped')
    // A throwing callback must not escape into a stream handler: stop the read instead.
    const local = new AbortController()
    const onStop = (): void => local.abort()
    this.stopper.signal.addEventListener('abort', onStop, { once: true })
    let thrown: unknown = null
    const argv = this.argv(['-L', '-o', 'extended'])
    const r = await this.run(argv, {
      timeoutMs,
      signal: local.signal,
      onLine: (line) => {
        if (thrown !== null) return
        try {
          onLine(parseConntrackLine(line), line)
        } catch (err) {
          thrown = err
          local.abort()
        }
      },
    }).finally(() => this.stopper.signal.removeEventListener('abort', onStop))
    if (thrown !== null) throw thrown
    if (r.aborted) throw new PlatformError('commandFailed', 'conntrack -L: stopped')
    if (r.timedOut) throw new PlatformError('timeout', `conntrack -L timed out after ${timeoutMs} ms`)
    if (r.code !== 0) throw new PlatformError('commandFailed', `conntrack -L: ${describe(r)}`)
  }

  /** Counts a line that gave no flow; true for a bad one. */
  private countSkip(parsed: ParsedLine & { ok: false }): boolean {
    switch (parsed.reason) {
      case 'blank':
        return false
      case 'otherFamily':
        this.counters.otherFamily++
        return false
      case 'unsupported':
        this.counters.unsupported++
        return false
      case 'bad':
        this.counters.badLines++
        return true
    }
  }

  // --- loading flows -------------------------------------------------------------

  load(flows: Iterable<Flow>): Promise<LoadTally> {
    return this.serial(async () => {
      const started = this.clock.now()
      const tally: LoadTally = { loaded: 0, skipped: 0, failed: 0 }
      let refused = 0
      let firstRefusal = ''
      let batch: Pending[] = []
      let batches = 0
      const running = new Set<Promise<void>>()
      for (const flow of flows) {
        let line: string
        try {
          line = insertLine(flow)
        } catch (err) {
          // A flow that cannot be written is not sent (a peer must not make options).
          refused++
          firstRefusal ||= (err as Error).message
          continue
        }
        batch.push({ key: flowKey(flow), line })
        if (batch.length >= this.batchLines) {
          batches++
          await this.startBatch(running, batch, tally)
          batch = []
        }
      }
      if (batch.length > 0) {
        batches++
        await this.startBatch(running, batch, tally)
      }
      await Promise.all(running)
      if (refused > 0) {
        tally.failed += refused
        this.log.event('conntrack', `${refused} flows not loaded: they cannot be written as conntrack arguments (first: ${firstRefusal})`)
      }
      const ms = Math.round(this.clock.now() - started)
      this.log.event('conntrack', `conntrack -R: ${tally.loaded} loaded, ${tally.skipped} there already, ${tally.failed} failed, ${batches} batches, ${ms} ms`)
      return tally
    })
  }

  /**
   * Starts a batch once fewer than LOAD_PARALLEL run: each conntrack process waits
   * on the kernel for every line, so two of them load 100,000 flows in ~60% of the
   * time one needs (a promotion is waiting for them).
   */
  private async startBatch(running: Set<Promise<void>>, batch: Pending[], tally: LoadTally): Promise<void> {
    while (running.size >= LOAD_PARALLEL) await Promise.race(running)
    const p: Promise<void> = this.loadBatch(batch, tally).finally(() => running.delete(p))
    running.add(p)
  }

  /**
   * One batch through `conntrack -R -`. When a run stops at a failing line, a read of
   * the table says which lines are in it now; those not in it go again. A line counts
   * as failed only when a run stops at its very first line and that line is not in
   * the table, which is certain whatever else changes the table meanwhile. How many
   * of the present lines this run put there (the first ones: conntrack runs the lines
   * in order) comes from the table's size before and after: exact on a quiet table,
   * off by the traffic's own changes on a busy one (only loaded vs skipped, never failed).
   */
  private async loadBatch(lines: Pending[], tally: LoadTally): Promise<void> {
    let rest = lines
    for (let attempt = 1; rest.length > 0; attempt++) {
      if (this.stopped || attempt > LOAD_ATTEMPTS_PER_BATCH) {
        tally.failed += rest.length
        if (this.stopped) return
        this.counters.loadFailures++
        this.log.event('conntrack', `conntrack -R: giving up on ${rest.length} flows after ${LOAD_ATTEMPTS_PER_BATCH} runs`)
        return
      }
      const before = await this.tableSize()
      const r = await this.run(this.argv(['-R', '-']), {
        input: chunked(rest),
        timeoutMs: LOAD_BATCH_TIMEOUT_MS,
        signal: this.stopper.signal,
      })
      if (r.code === 0) {
        tally.loaded += rest.length
        return
      }
      if (r.aborted) {
        tally.failed += rest.length
        return
      }
      // Exit 2 is a line conntrack would not read (it then runs none): a bug here, not a state.
      // -1 without a timeout: conntrack could not start. Neither gets better by retrying.
      if (r.code === 2 || (r.code === -1 && !r.timedOut)) {
        this.log.event('conntrack', `conntrack -R: ${describe(r)}; ${rest.length} flows not loaded`)
        this.counters.loadFailures++
        tally.failed += rest.length
        return
      }
      let present: Set<string>
      try {
        present = await this.presentKeys(rest)
      } catch (err) {
        this.log.event('conntrack', `conntrack -R failed (${describe(r)}) and the table cannot be read: ${(err as Error).message}`)
        this.counters.loadFailures++
        tally.failed += rest.length
        return
      }
      const after = await this.tableSize()
      const firstAbsent = rest.findIndex((p) => !present.has(p.key))
      const next = rest.filter((p) => !present.has(p.key))
      const presentLines = rest.length - next.length
      if (!r.timedOut && firstAbsent === 0) {
        // Nothing ran before it and it is not in the table: this very line was refused.
        this.counters.loadFailures++
        tally.failed++
        tally.skipped += presentLines
        this.log.event('conntrack', `conntrack -R: not loaded (${describe(r)}): ${rest[0]!.line}`)
        rest = next.slice(1)
        continue
      }
      // conntrack stopped at a line before the first one missing from the table: the
      // lines before that one are ours, it and the other present ones were there
      // already. The missing line has not run yet (or was refused: then it comes first
      // next time, and that run says so for certain).
      const gap = firstAbsent < 0 ? rest.length : firstAbsent
      let ours: number
      if (r.timedOut) ours = presentLines // killed somewhere: every present line may be ours
      else if (before !== null && after !== null) ours = Math.max(0, Math.min(after - before, gap))
      else ours = Math.max(0, gap - 1) // no count: guess the usual case, a duplicate just before the gap
      tally.loaded += ours
      tally.skipped += presentLines - ours
      if (r.timedOut) {
        this.counters.loadFailures++
        this.log.event('conntrack', `conntrack -R timed out after ${LOAD_BATCH_TIMEOUT_MS} ms; ${next.length} flows go again`)
      }
      rest = next
    }
  }

  /** Which of these flows are in the table now. */
  private async presentKeys(lines: Pending[]): Promise<Set<string>> {
    const wanted = new Set(lines.map((p) => p.key))
    const present = new Set<string>()
    await this.readTable(SNAPSHOT_TIMEOUT_MS, (parsed) => {
      if (!parsed.ok) return
      const key = flowKey(parsed.flow)
      if (wanted.has(key)) present.add(key)
    })
    return present
  }

  /** `conntrack -C`: the number of flows in the table, read by the kernel in O(1); null when unknown. */
  private async tableSize(): Promise<number | null> {
    let first: string | null = null
    const r = await this.run(this.argv(['-C']), {
      timeoutMs: COUNT_TIMEOUT_MS,
      signal: this.stopper.signal,
      onLine: (line) => {
        first ??= line.trim()
      },
    })
    if (r.code !== 0 || first === null) return null
    const n = Number(first)
    return Number.isSafeInteger(n) && n >= 0 ? n : null
  }

  // --- removing flows ------------------------------------------------------------

  remove(flows: Iterable<Flow>): Promise<void> {
    return this.serial(async () => {
      const started = this.clock.now()
      let batch: string[] = []
      let asked = 0
      let deleted = 0
      let refused = 0
      let error: PlatformError | null = null
      const flush = async (): Promise<void> => {
        const lines = batch
        batch = []
        if (lines.length === 0 || this.stopped) return
        const timeoutMs = REMOVE_TIMEOUT_BASE_MS + REMOVE_TIMEOUT_PER_LINE_MS * lines.length
        // Each deleted flow is printed on stdout; a missing one is not an error in -R.
        const r = await this.run(this.argv(['-R', '-']), {
          input: lines.join(''),
          timeoutMs,
          signal: this.stopper.signal,
          onLine: (line) => {
            if (line.trim() !== '') deleted++
          },
        })
        if (r.code === 0 || r.aborted) return
        this.counters.loadFailures++
        error ??= r.timedOut
          ? new PlatformError('timeout', `conntrack -R (delete) timed out after ${timeoutMs} ms`)
          : new PlatformError('commandFailed', `conntrack -R (delete): ${describe(r)}`)
      }
      for (const flow of flows) {
        try {
          batch.push(`${deleteArgs(flow).join(' ')}\n`)
          asked++
        } catch {
          refused++
          continue
        }
        if (batch.length >= this.removeBatchLines) await flush()
      }
      await flush()
      const ms = Math.round(this.clock.now() - started)
      const refusedText = refused > 0 ? `, ${refused} not writable as arguments` : ''
      this.log.event('conntrack', `conntrack -R (delete): ${deleted} of ${asked} removed${refusedText}, ${ms} ms`)
      if (error !== null) throw error
    })
  }

  stop(): void {
    this.stopped = true
    this.restartTimer?.cancel()
    this.restartTimer = null
    this.stopper.abort()
  }

  // --- helpers -------------------------------------------------------------------

  private argv(args: string[]): Argv {
    return [...this.prefix, this.program, ...args]
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const result = this.queue.then(fn)
    this.queue = result.catch(() => {})
    return result
  }
}

/** The input of one -R run in pieces of about 64 KiB: one string per line would be slow. */
function* chunked(lines: Pending[]): Iterable<string> {
  let chunk = ''
  for (const p of lines) {
    chunk += `${p.line}\n`
    if (chunk.length >= 64 * 1024) {
      yield chunk
      chunk = ''
    }
  }
  if (chunk !== '') yield chunk
}

/** Why a command failed, in a few words: its last meaningful stderr line, or its exit. */
function describe(r: StreamResult): string {
  if (r.timedOut) return 'timed out'
  const lines = r.stderr
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !/^NOTICE:|have been shown\.$|^Try `/.test(l))
  const last = lines.at(-1)?.replace(/^conntrack v[\d.]+ \(conntrack-tools\): /, '')
  return last ? `exit code ${r.code}: ${last}` : `exit code ${r.code}`
}
