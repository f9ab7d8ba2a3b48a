// The serial heartbeat line (issue 5): a tty on a null-modem cable between the two
// routers, opened with node: built-ins only. wire/heartbeat.ts owns the frames; this
// file owns the file descriptor: stty, open, read, write, and opening again after a
// USB adapter is pulled out and put back.
//
// What Linux and Node do with ttys, measured on ptys (socat) with Node 20 (and why
// the code below is shaped so):
// - fs.createReadStream reads on the libuv pool: a blocking read() of a quiet tty
//   parks a pool thread for good (and with O_NONBLOCK it fails with EAGAIN instead).
//   node:tty's ReadStream waits in epoll like a socket.
// - When the fd is a pty slave, libuv's uv_tty_init opens the device again and dup2()s
//   the new open over the fd it was given, then reads on the new fd. Destroying the
//   stream closes only the new fd, so the one passed in must be closed here or it
//   leaks on every reopen. For any other tty (ttyS, ttyUSB) it reads on the fd it was
//   given and closes it itself; closing it here as well could close an unrelated file
//   that got the number in between.
// - A pty whose other end closes reads EIO, which Node reports as end of input, not
//   as an error; writes then fail with EIO. A pulled USB adapter looks the same.
// - stty on a pty takes ~5 ms, and the speed is kept (a pty has no UART to set).

import { closeSync, constants as fsConstants, openSync, statSync, writeSync } from 'node:fs'
import { isatty, ReadStream } from 'node:tty'
import type { Runner } from './exec.js'
import { LineReader, type LineReaderCounters, type SerialFrame } from '../wire/heartbeat.js'
import type { Clock, TimerHandle } from '../io/clock.js'
import type { Logger } from '../io/log.js'

/** Time between attempts to open a port that is missing or failed. */
export const SERIAL_RETRY_MS = 5000
/** stty on a real port returns in milliseconds; one that hangs is a driver that does too. */
export const STTY_TIMEOUT_MS = 5000

// After the speed: raw bytes (no line editing, no CR/NL mapping, no signal from a ^C
// in line noise), no echo (the peer would hear its own frames come back), no XON/XOFF
// (a ^S in noise would stop our output) and no RTS/CTS (a three-wire null-modem cable
// has none: output would wait for ever), clocal (ignore carrier: no hangup, no waiting
// for DCD on a cable without it), receiver on, 8N1.
const STTY_MODES = ['raw', '-echo', '-echoe', '-echok', '-echoctl', '-echoke', '-ixon', '-ixoff', '-crtscts', 'clocal', 'cread', 'cs8', '-cstopb', '-parenb']

// O_NOCTTY: the port must never become carpd's controlling terminal (a hangup on it
// would send carpd SIGHUP). O_NONBLOCK: neither open (carrier) nor write (a full
// output queue) may block the event loop.
const OPEN_FLAGS = fsConstants.O_RDWR | fsConstants.O_NOCTTY | fsConstants.O_NONBLOCK

export interface SerialLineOptions {
  device: string // e.g. /dev/ttyS1, /dev/ttyUSB0
  baud: number // a speed stty knows: 9600, 19200, 115200 ...
  run: Runner
  clock: Clock
  log: Logger
  /** Called for each frame decoded off the line, in order. */
  onFrame: (frame: SerialFrame) => void
  retryMs?: number
}

export interface SerialStatus {
  device: string
  open: boolean
  opens: number // successful opens since start
  writeErrors: number // lines not (or not wholly) written while open
  notOpen: number // lines dropped because the port was not open
  reader: LineReaderCounters
}

interface OpenPort {
  fd: number
  stream: ReadStream
  /** Whether `fd` is ours to close (libuv reopened the device; see the top of the file). */
  ownFd: boolean
  closed: Promise<void>
}

/**
 * One serial port carrying heartbeat lines. start() opens it and keeps it open: a
 * failed open or a lost port is logged (once per distinct error) and tried again
 * every retryMs. send() never throws and never blocks. A closed line stays closed.
 */
export class SerialLine {
  private readonly reader = new LineReader()
  private readonly retryMs: number
  private port: OpenPort | null = null
  private opening: Promise<void> | null = null
  private retry: TimerHandle | null = null
  private started = false
  private closing = false
  private lastOpenError = ''
  /** Write errors logged since the port opened (a handful of errno messages at most). */
  private readonly writeErrorsLogged = new Set<string>()
  private opens = 0
  private writeErrors = 0
  private notOpen = 0

  constructor(private readonly opts: SerialLineOptions) {
    this.retryMs = opts.retryMs ?? SERIAL_RETRY_MS
  }

  start(): void {
    if (this.started) return
    this.started = true
    this.attempt()
  }

  /** Writes one whole line (from encodeHeartbeat or encodeBlob); drops and counts it when it cannot. */
  send(line: string): void {
    if (this.port === null) {
      this.notOpen++
      return
    }
    // writeSync on the non-blocking fd: a line goes out whole and in order, or fails at
    // once with EAGAIN when the output queue is full (nobody reading, or flow control).
    // A stale heartbeat is worth nothing, so it is dropped rather than queued. It
    // behaves the same on a pty and on a real port. fs.write runs on the pool, where
    // two lines in flight may be reordered; a tty.WriteStream works on a pty only
    // because libuv reopens it: on a tty it cannot reopen (ttyS, ttyUSB) libuv marks
    // the handle for blocking writes, which retry EAGAIN instead of dropping.
    try {
      const want = Buffer.byteLength(line)
      const wrote = writeSync(this.port.fd, line)
      // A short write leaves the peer a cut line; its reader drops it (and the next,
      // glued to it) and is back in step at the next line end.
      if (wrote < want) throw new Error('short write (output queue full)')
    } catch (err) {
      this.writeErrors++
      // Once per distinct error while the port stays open: a peer that reads slowly
      // makes the queue fill and drain in turn, and writeErrors tells the rest.
      const message = (err as Error).message
      if (!this.writeErrorsLogged.has(message)) this.opts.log.event('serial', `${this.opts.device}: write failed: ${message}`)
      this.writeErrorsLogged.add(message)
    }
  }

  /** Stops retrying and closes the port; resolves when the fd is closed. */
  async close(): Promise<void> {
    this.closing = true
    this.retry?.cancel()
    this.retry = null
    // An stty already running finishes (within STTY_TIMEOUT_MS) and opens nothing.
    await this.opening
    const port = this.port
    if (port === null) return
    this.port = null
    this.release(port)
    await port.closed
  }

  status(): SerialStatus {
    return {
      device: this.opts.device,
      open: this.port !== null,
      opens: this.opens,
      writeErrors: this.writeErrors,
      notOpen: this.notOpen,
      reader: { ...this.reader.counters },
    }
  }

  private attempt(): void {
    this.retry = null
    this.opening = this.open().finally(() => {
      this.opening = null
    })
  }

  private async open(): Promise<void> {
    const { device, baud } = this.opts
    let fd = -1
    try {
      // An unplugged USB adapter is the usual failure: found without starting a
      // process every retryMs, and with the same message every time (stty's own
      // message does not always come back through the runner).
      statSync(device)
      const r = await this.opts.run(['stty', '-F', device, String(baud), ...STTY_MODES], STTY_TIMEOUT_MS)
      if (r.timedOut) throw new Error(`stty timed out after ${STTY_TIMEOUT_MS} ms`)
      const said = r.stderr.trim()
      if (r.code !== 0) throw new Error(`stty exited ${r.code}${said === '' ? '' : `: ${said}`}`)
      if (this.closing) return
      fd = openSync(device, OPEN_FLAGS)
      if (!isatty(fd)) throw new Error('not a terminal')
      this.attach(fd, baud)
    } catch (err) {
      if (fd >= 0) closeSync(fd)
      this.failed(`cannot open ${device}: ${(err as Error).message}`)
    }
  }

  private attach(fd: number, baud: number): void {
    const stream = new ReadStream(fd)
    // libuv's handle fd is not public; it is the only way to learn whether the
    // device was reopened (see the top of the file).
    const handleFd = (stream as unknown as { _handle?: { fd?: unknown } })._handle?.fd
    const port: OpenPort = {
      fd,
      stream,
      ownFd: typeof handleFd === 'number' && handleFd !== fd,
      closed: new Promise((resolve) => stream.once('close', () => resolve())),
    }
    this.port = port
    this.opens++
    this.lastOpenError = ''
    this.writeErrorsLogged.clear()
    // Bytes of a line cut when the port was lost must not run into the first line
    // read now: ending that line drops it (counted), and the reader starts clean.
    this.reader.push(Buffer.from('\n'))
    this.opts.log.event('serial', `${this.opts.device}: open at ${baud} baud`)
    let why = 'end of input (device gone, or the other end closed)'
    stream.on('data', (chunk: Buffer) => {
      for (const frame of this.reader.push(chunk)) this.opts.onFrame(frame)
    })
    stream.on('error', (err) => {
      why = `read failed: ${err.message}`
    })
    stream.on('close', () => this.lost(port, why))
  }

  /** The port went away under us: close what is left and open it again later. */
  private lost(port: OpenPort, why: string): void {
    // close() (or an earlier loss) let it go already.
    if (this.port !== port) return
    this.port = null
    this.release(port)
    this.failed(`${this.opts.device}: ${why}`)
  }

  private release(port: OpenPort): void {
    port.stream.destroy()
    if (port.ownFd) closeSync(port.fd)
  }

  private failed(message: string): void {
    if (this.closing) return
    // A port that stays missing would otherwise log the same line every retryMs.
    if (message !== this.lastOpenError) this.opts.log.event('serial', `${message}; trying again every ${this.retryMs} ms`)
    this.lastOpenError = message
    this.retry = this.opts.clock.at(this.opts.clock.now() + this.retryMs, () => this.attempt())
  }
}
