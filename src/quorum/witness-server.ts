// `carpd witness -c FILE`: the third host of split-brain protection (SPEC "Split-brain
// protection"). Wires the pure WitnessCore (quorum/witness.ts) to a UDP socket on
// witness.listen, the epoch file witness.state, the console and signals.

import { EXIT_OK, EXIT_RUNTIME, EXIT_USAGE } from '../config/constants.js'
import { readBoundedFile, replaceFile } from '../io/files.js'
import type { Config, Endpoint } from '../config/types.js'
import type { Clock, TimerHandle } from '../io/clock.js'
import type { Logger } from '../io/log.js'
import type { Transport } from '../io/transport.js'
import { type UdpOptions, openUdpTransport } from '../io/udp.js'
import { WITNESS_PORT_DEFAULT, WitnessCore, renderWitnessStatus } from './witness.js'
import { senderId } from '../wire/ids.js'
import { decodeVote, encodeVote } from '../wire/vote.js'

const EPOCH_MAX = 0xffffffff // u32 on the wire
const EPOCH_FILE_MODE = 0o644

/** Where signals arrive: `process`, or an EventEmitter in tests. */
export interface SignalSource {
  on(signal: 'SIGTERM' | 'SIGINT' | 'SIGUSR1', fn: () => void): unknown
  off(signal: 'SIGTERM' | 'SIGINT' | 'SIGUSR1', fn: () => void): unknown
}

export interface WitnessRunOptions {
  config: Config
  log: Logger
  clock: Clock
  /** Usage and runtime errors (default: process.stderr). */
  stderr?: (text: string) => void
  /** Where SIGTERM, SIGINT and SIGUSR1 arrive (default: process). */
  signals?: SignalSource
  /** Opens the socket (default: io/udp.ts). */
  openTransport?: (opts: UdpOptions) => Promise<Transport>
}

/** A witness that is answering requests. */
export interface RunningWitness {
  listen: Endpoint // the address and port it is bound to
  epoch: number // this run's epoch, already persisted
  core: WitnessCore
  /** The status as console lines (SIGUSR1). */
  statusLines(): string[]
  close(): Promise<void>
}

/** Why the witness did not start: `code` is the exit code, `message` names the key. */
export interface WitnessStartError {
  code: number
  message: string
}

/**
 * Runs the witness until SIGTERM or SIGINT; resolves with the exit code. Usage errors
 * (a file without witness.listen or witness.key) give 1, runtime failures (the state
 * file, the socket) give 2, each with one line on stderr.
 */
export async function runWitness(opts: WitnessRunOptions): Promise<number> {
  const stderr = opts.stderr ?? ((text: string) => void process.stderr.write(text))
  const signals = opts.signals ?? process
  const started = await startWitness(opts)
  if ('code' in started) {
    stderr(`carpd witness: ${started.message}\n`)
    return started.code
  }
  return new Promise<number>((resolve) => {
    const status = (): void => {
      for (const line of started.statusLines()) opts.log.event('status', line)
    }
    // The handlers stay until the socket is closed: a second signal meanwhile must
    // find one (with none, a second SIGTERM would kill the process with 143, not 0).
    let stopping = false
    const stop = (signal: string): void => {
      if (stopping) return
      stopping = true
      opts.log.event('witness', `${signal}: stopping`)
      void started.close().then(() => {
        signals.off('SIGTERM', onTerm)
        signals.off('SIGINT', onInt)
        signals.off('SIGUSR1', status)
        resolve(EXIT_OK)
      })
    }
    const onTerm = (): void => stop('SIGTERM')
    const onInt = (): void => stop('SIGINT')
    signals.on('SIGTERM', onTerm)
    signals.on('SIGINT', onInt)
    signals.on('SIGUSR1', status)
  })
}

/** Checks the file, persists the next epoch, binds the socket and starts answering. */
export async function startWitness(opts: WitnessRunOptions): Promise<RunningWitness | WitnessStartError> {
  const { config, log, clock } = opts
  const { witness } = config
  if (witness.listen === null) {
    return usage(config, 'witness.listen', `the address to listen on, e.g. witness.listen = 192.0.2.50:${WITNESS_PORT_DEFAULT}`)
  }
  if (witness.key === '') return usage(config, 'witness.key', "the key shared with the boards' witness.key; set witness.key or witness.keyfile")
  const listen = { address: witness.listen.address, port: witness.listen.port || WITNESS_PORT_DEFAULT }

  // The epoch is on disk before anything is answered, so every reply of this run
  // carries an epoch no earlier run used, and the boards' replay windows, which
  // keep a window per epoch, accept this run's sequence numbers starting again at 1.
  const read = readEpoch(witness.state)
  if ('error' in read) return { code: EXIT_RUNTIME, message: read.error }
  if (read.note !== null) log.event('witness', read.note)
  const epoch = read.epoch >= EPOCH_MAX ? 1 : read.epoch + 1
  try {
    writeEpoch(witness.state, epoch)
  } catch (err) {
    return { code: EXIT_RUNTIME, message: `witness.state = ${witness.state}: cannot write the epoch: ${(err as Error).message}` }
  }

  let transport: Transport
  try {
    transport = await (opts.openTransport ?? openUdpTransport)({ port: listen.port, bindAddress: listen.address, multicastInterfaces: new Map() })
  } catch (err) {
    return { code: EXIT_RUNTIME, message: `cannot open the witness socket on ${listen.address}:${listen.port}: ${(err as Error).message}` }
  }

  const core = new WitnessCore({ epoch, maxLeaseMs: witness.leaseMs, startMs: clock.now(), senderId: senderId(config.node) })
  transport.onPacket((payload, from) => {
    const decoded = decodeVote(payload, witness.key)
    if (!decoded.ok) {
      core.drop(decoded.error)
      return
    }
    const { reply, log: line } = core.receive(decoded.msg, clock.now())
    if (line !== null) log.event('witness', line)
    if (reply !== null) transport.send(encodeVote(reply, witness.key), from).catch(() => core.drop('sendError'))
  })
  const silenceMs = Math.ceil(core.silentUntil - clock.now())
  log.event(
    'witness',
    `listening on ${listen.address}:${listen.port} epoch=${epoch} max lease ${witness.leaseMs}ms; ` +
      `granting nothing for ${silenceMs}ms (leases granted before this start may still run)`,
  )
  let silenceOver: TimerHandle | null = clock.at(core.silentUntil, () => {
    silenceOver = null
    log.event('witness', 'restart silence over: granting leases')
  })

  return {
    listen,
    epoch,
    core,
    statusLines: () => renderWitnessStatus(core.status(clock.now())),
    close: async () => {
      silenceOver?.cancel()
      await transport.close()
    },
  }
}

function usage(config: Config, key: string, what: string): WitnessStartError {
  return { code: EXIT_USAGE, message: `${config.file}: ${key}: missing: needed by carpd witness (${what})` }
}

/**
 * The last epoch from the state file: a missing file is a first start (0); a file
 * that holds no number is reported and read as 0, since the restart silence, not
 * the epoch, is what keeps leases from being granted twice. Other read errors stop
 * the witness: a file it cannot read it likely cannot write either.
 */
/** The state file holds one decimal number and a newline. */
const EPOCH_FILE_MAX_BYTES = 64

export function readEpoch(path: string): { epoch: number; note: string | null } | { error: string } {
  let text: string
  try {
    text = readBoundedFile(path, EPOCH_FILE_MAX_BYTES)
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'ENOENT') return { epoch: 0, note: null }
    return { error: `witness.state = ${path}: cannot read the epoch: ${(err as Error).message}` }
  }
  const trimmed = text.trim()
  const epoch = /^\d{1,10}$/.test(trimmed) ? Number(trimmed) : NaN
  if (!(epoch <= EPOCH_MAX)) {
    return { epoch: 0, note: `witness.state = ${path}: no epoch in ${JSON.stringify(trimmed.slice(0, 40))}, starting again from 0` }
  }
  return { epoch, note: null }
}

/** Writes the epoch so that a power cut leaves the old one or the new, never a torn file. */
export function writeEpoch(path: string, epoch: number): void {
  replaceFile(path, `${epoch}
`, EPOCH_FILE_MODE)
}
