// The serial heartbeat line over real ptys: socat joins two of them like a null-modem
// cable, stty really runs on them, and each end is a SerialLine.
import t, { type Test } from 'tap'
import { type ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process'
import { closeSync, constants as fsConstants, existsSync, mkdtempSync, openSync, readdirSync, rmSync, writeFileSync, writeSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { realClock } from '../../src/io/clock.js'
import { SERIAL_RETRY_MS, SerialLine, type SerialLineOptions, STTY_TIMEOUT_MS } from '../../src/platform/serial.js'
import { type CommandResult, execRunner, type Runner } from '../../src/platform/exec.js'
import { encodeBlob, encodeHeartbeat, type Heartbeat, type SerialFrame } from '../../src/wire/heartbeat.js'
import { FakeClock } from '../helpers/clock.js'
import { prng } from '../helpers/prng.js'

const SOCAT_MISSING = spawnSync('socat', ['-V']).error !== undefined
if (SOCAT_MISSING && process.env.CARPD_LAB === 'required') t.fail('CARPD_LAB=required, but socat is not installed')
const ptySkip = SOCAT_MISSING ? 'socat is not installed: the pty tests need it (apt-get install socat)' : false

/** Every wait in this file ends by then. */
const DEADLINE_MS = 5000
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

async function waitUntil(what: string, done: () => boolean): Promise<void> {
  const until = Date.now() + DEADLINE_MS
  while (!done()) {
    if (Date.now() > until) throw new Error(`not within ${DEADLINE_MS} ms: ${what}`)
    await sleep(10)
  }
}

const openFds = (): number => readdirSync('/proc/self/fd').length

interface PtyPair {
  a: string
  b: string
  /** Starts socat (again: after stop(), the same links come back). */
  start(): Promise<void>
  stop(): Promise<void>
}

/** Two ptys joined by socat, as links in a private directory; gone at teardown. */
async function ptyPair(t: Test): Promise<PtyPair> {
  const dir = mkdtempSync(join(tmpdir(), 'carpd-serial-'))
  const a = join(dir, 'a')
  const b = join(dir, 'b')
  let socat: ChildProcess | null = null
  let stderr = ''
  const pair: PtyPair = {
    a,
    b,
    async start() {
      stderr = ''
      socat = spawn('socat', ['-d', '-d', `pty,raw,echo=0,link=${a}`, `pty,raw,echo=0,link=${b}`], { stdio: ['ignore', 'ignore', 'pipe'] })
      socat.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d))
      await waitUntil(`socat made ${a} and ${b}; socat said: ${stderr}`, () => existsSync(a) && existsSync(b))
    },
    async stop() {
      const child = socat
      socat = null
      if (child === null || child.exitCode !== null) return
      const exited = new Promise((r) => child.once('exit', r))
      child.kill('SIGTERM')
      await exited
    },
  }
  t.teardown(async () => {
    await pair.stop()
    rmSync(dir, { recursive: true, force: true })
  })
  await pair.start()
  return pair
}

interface End {
  line: SerialLine
  frames: SerialFrame[]
  logs: string[]
}

function serialEnd(device: string, opts: Partial<SerialLineOptions> = {}): End {
  const frames: SerialFrame[] = []
  const logs: string[] = []
  const line = new SerialLine({
    device,
    baud: 19200,
    run: execRunner,
    clock: realClock(),
    log: { event: (sub, msg) => logs.push(`${sub} ${msg}`) },
    onFrame: (f) => frames.push(f),
    ...opts,
  })
  return { line, frames, logs }
}

const hb = (node: string, seq: number): Heartbeat => ({ node, epoch: 0x1a2b3c4d, seq, demote: 0, vhids: [{ vhid: 1, state: 'M' }] })
const seqs = (frames: SerialFrame[]): number[] => frames.flatMap((f) => (f.kind === 'heartbeat' ? [f.hb.seq] : []))


t.test('two ends exchange heartbeats both ways at 19200 baud; line noise is counted and passed over', { skip: ptySkip }, async (t) => {
  const pair = await ptyPair(t)
  const fdsBefore = openFds()
  const a = serialEnd(pair.a)
  const b = serialEnd(pair.b)
  t.teardown(() => Promise.all([a.line.close(), b.line.close()]))
  a.line.start()
  b.line.start()
  a.line.start() // a second start does nothing
  await waitUntil('both ends open', () => a.line.status().open && b.line.status().open)
  t.match(a.logs, [/^serial .*\/a: open at 19200 baud$/])
  // stty really ran on the pty.
  const settings = execFileSync('stty', ['-F', pair.a, '-a'], { encoding: 'utf8' })
  t.match(settings, /speed 19200 baud/)
  t.match(settings, /-icanon/)
  t.match(settings, /-echo /)
  t.match(settings, /-ixon/)
  t.match(settings, /-crtscts/)
  t.match(settings, / clocal/)

  for (let seq = 1; seq <= 5; seq++) {
    a.line.send(encodeHeartbeat(hb('fw-a', seq)))
    b.line.send(encodeHeartbeat(hb('fw-b', 100 + seq)))
  }
  b.line.send(encodeBlob(Buffer.from('vote')))
  await waitUntil('5 heartbeats each way', () => a.frames.length === 6 && b.frames.length === 5)
  t.same(seqs(b.frames), [1, 2, 3, 4, 5])
  t.same(seqs(a.frames), [101, 102, 103, 104, 105])
  t.same(b.frames[0], { kind: 'heartbeat', hb: hb('fw-a', 1) })
  t.same(a.frames[5], { kind: 'blob', bytes: Buffer.from('vote') })

  // Noise written straight into a's pty reaches b between a's frames. It holds every
  // byte value, ^C, ^S and ^Q included: raw and -ixon make them plain data.
  let noiseFd = openSync(pair.a, fsConstants.O_RDWR | fsConstants.O_NOCTTY | fsConstants.O_NONBLOCK)
  t.teardown(() => void (noiseFd >= 0 && closeSync(noiseFd)))
  const rand = prng(5)
  b.frames.length = 0
  let sent = 0
  for (let round = 0; round < 20; round++) {
    const noise = Buffer.from(Array.from({ length: 1 + Math.floor(rand() * 100) }, () => Math.floor(rand() * 256)))
    // A line end after the noise: the frame then starts a line of its own.
    writeSync(noiseFd, Buffer.concat([Buffer.from([0x07]), noise, Buffer.from('\r\n')]))
    for (let i = 0; i < 3; i++) a.line.send(encodeHeartbeat(hb('fw-a', 1000 + sent++)))
  }
  await waitUntil(`b decodes all ${sent} frames after the noise`, () => b.frames.length >= sent)
  t.same(seqs(b.frames), Array.from({ length: sent }, (_, i) => 1000 + i), 'every good frame, in order')
  const counters = b.line.status().reader
  t.ok(counters.garbage >= 20, `noise counted: ${JSON.stringify(counters)}`)
  t.equal(counters.frames, 5 + sent)

  const status = a.line.status()
  t.same({ ...status, reader: undefined }, { device: pair.a, open: true, opens: 1, writeErrors: 0, notOpen: 0, reader: undefined })
  await a.line.close()
  await b.line.close()
  t.notOk(a.line.status().open)
  a.line.send(encodeHeartbeat(hb('fw-a', 1)))
  t.equal(a.line.status().notOpen, 1, 'a closed line drops and counts')
  closeSync(noiseFd)
  noiseFd = -1
  t.equal(openFds(), fdsBefore, 'no fd left open by the serial lines')
  t.notOk(process.getActiveResourcesInfo().includes('TTYWrap'), 'no tty handle keeps the process alive')
})

t.test('115200 baud works too', { skip: ptySkip }, async (t) => {
  const pair = await ptyPair(t)
  const a = serialEnd(pair.a, { baud: 115200 })
  const b = serialEnd(pair.b, { baud: 115200 })
  t.teardown(() => Promise.all([a.line.close(), b.line.close()]))
  a.line.start()
  b.line.start()
  await waitUntil('both ends open', () => a.line.status().open && b.line.status().open)
  t.match(execFileSync('stty', ['-F', pair.b], { encoding: 'utf8' }), /speed 115200 baud/)
  a.line.send(encodeHeartbeat(hb('fw-a', 7)))
  b.line.send(encodeHeartbeat(hb('fw-b', 8)))
  await waitUntil('one heartbeat each way', () => a.frames.length === 1 && b.frames.length === 1)
  t.same([seqs(a.frames), seqs(b.frames)], [[8], [7]])
})

t.test('a full output queue: lines are dropped and counted, never queued or blocking', { skip: ptySkip }, async (t) => {
  const pair = await ptyPair(t)
  // Nobody reads b: socat stops taking from a, and a's output queue fills up.
  const a = serialEnd(pair.a)
  t.teardown(() => a.line.close())
  a.line.start()
  await waitUntil('a open', () => a.line.status().open)
  let sent = 0
  while (a.line.status().writeErrors < 10 && sent < 100_000) a.line.send(encodeHeartbeat(hb('fw-a', sent++)))
  const full = a.line.status()
  t.equal(full.writeErrors, 10, `full after ${sent - 10} lines`)
  t.ok(a.logs.some((l) => /\/a: write failed: EAGAIN/.test(l)), 'logged')
  t.equal(a.logs.filter((l) => /write failed: EAGAIN/.test(l)).length, 1, `once, not per line:\n${a.logs.join('\n')}`)
  // A reader on b drains it; the next line goes out and arrives whole.
  const b = serialEnd(pair.b)
  t.teardown(() => b.line.close())
  b.line.start()
  await waitUntil('b drains the queue', () => b.line.status().reader.frames > 0)
  await sleep(50)
  await waitUntil('a can write again', () => {
    a.line.send(encodeHeartbeat(hb('fw-a', 999_999)))
    return seqs(b.frames).includes(999_999)
  })
  t.equal(a.line.status().notOpen, 0)
})

t.test('the port goes away (socat stops) and comes back: logged, reopened, working', { skip: ptySkip }, async (t) => {
  const pair = await ptyPair(t)
  const fds = openFds()
  const a = serialEnd(pair.a, { retryMs: 50 })
  const b = serialEnd(pair.b, { retryMs: 50 })
  t.teardown(() => Promise.all([a.line.close(), b.line.close()]))
  a.line.start()
  b.line.start()
  await waitUntil('both ends open', () => a.line.status().open && b.line.status().open)
  // A frame cut in the middle when the port goes: its first half must not spoil the
  // first frame after the reopen. Nothing shows that half a line has arrived: a pause.
  const line = encodeHeartbeat(hb('fw-a', 1))
  a.line.send(line.slice(0, 20))
  await sleep(100)
  await pair.stop()
  await waitUntil('a sees its port gone', () => !a.line.status().open)
  t.match(a.logs.join('\n'), /\/a: end of input \(device gone, or the other end closed\); trying again every 50 ms/)
  a.line.send(line)
  t.equal(a.line.status().notOpen, 1)
  const missing = /cannot open .*\/a: ENOENT: no such file or directory, stat '.*\/a'; trying again every 50 ms$/
  await waitUntil('a has tried to open the missing device', () => a.logs.some((l) => missing.test(l)))
  await sleep(200) // several more attempts, each failing the same way
  t.equal(a.logs.filter((l) => missing.test(l)).length, 1, `a repeated error is logged once:\n${a.logs.join('\n')}`)
  await pair.start()
  await waitUntil('both ends open again', () => a.line.status().opens === 2 && b.line.status().opens === 2 && a.line.status().open && b.line.status().open)
  a.line.send(encodeHeartbeat(hb('fw-a', 2)))
  b.line.send(encodeHeartbeat(hb('fw-b', 3)))
  await waitUntil('a heartbeat each way after the reopen', () => seqs(b.frames).includes(2) && seqs(a.frames).includes(3))
  t.same(seqs(b.frames), [2], 'the half frame from before did not eat the first one after')

  // A read error (Linux ptys report EIO as end of input instead, so it is made here).
  const port = (b.line as unknown as { port: { stream: { destroy(err: Error): void } } }).port
  port.stream.destroy(new Error('EIO: i/o error, read'))
  await waitUntil('b reopens after the error', () => b.line.status().opens === 3 && b.line.status().open)
  t.match(b.logs.join('\n'), /\/b: read failed: EIO: i\/o error, read; trying again every 50 ms/)
  a.line.send(encodeHeartbeat(hb('fw-a', 4)))
  await waitUntil('b hears a again', () => seqs(b.frames).includes(4))

  await a.line.close()
  await b.line.close()
  t.equal(openFds(), fds, 'every reopen closed what the one before left')
})

/** A runner that answers stty with a canned result and records the calls. */
function fakeRunner(result: Partial<CommandResult> = {}): Runner & { calls: string[][] } {
  const calls: string[][] = []
  const run: Runner = async (argv) => {
    calls.push([...argv])
    return { code: 0, stdout: '', stderr: '', timedOut: false, ...result }
  }
  return Object.assign(run, { calls })
}

t.test('a device that does not exist: logged once, tried again every retryMs, no throw', async (t) => {
  const clock = new FakeClock()
  const dir = mkdtempSync(join(tmpdir(), 'carpd-serial-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const dev = join(dir, 'ttyUSB0')
  const run = fakeRunner({ code: 1, stderr: `stty: ${dev}: Inappropriate ioctl for device\n` })
  const end = serialEnd(dev, { clock, run, retryMs: 1000 })
  end.line.start()
  await waitUntil('the first attempt fails', () => end.logs.length === 1)
  t.equal(end.logs[0], `serial cannot open ${dev}: ENOENT: no such file or directory, stat '${dev}'; trying again every 1000 ms`)
  t.equal(run.calls.length, 0, 'no stty for a device that is not there')
  t.equal(clock.armed, 1, 'a retry is armed')
  for (let i = 0; i < 5; i++) {
    clock.advance(1000)
    await waitUntil(`attempt ${i + 2} fails`, () => clock.armed === 1)
  }
  t.equal(end.logs.length, 1, 'the same error is not logged again')
  end.line.send('HB x\r\n')
  t.same(end.line.status(), {
    device: dev,
    open: false,
    opens: 0,
    writeErrors: 0,
    notOpen: 1,
    reader: { tooLong: 0, garbage: 0, badCrc: 0, badField: 0, frames: 0 },
  })
  // Something appears at the path: the next attempt gets further, and says so.
  writeFileSync(dev, '')
  clock.advance(999)
  t.equal(run.calls.length, 0, 'not before retryMs')
  clock.advance(1)
  await waitUntil('the next attempt fails differently', () => end.logs.length === 2)
  t.equal(end.logs[1], `serial cannot open ${dev}: stty exited 1: stty: ${dev}: Inappropriate ioctl for device; trying again every 1000 ms`)
  await end.line.close()
  t.equal(clock.armed, 0, 'close stops the retries')
  clock.advance(10_000)
  t.equal(run.calls.length, 1)
})

t.test('stty arguments, and each way an open can fail', async (t) => {
  const clock = new FakeClock()
  const fds = openFds()
  const run = fakeRunner()
  // stty succeeds (fake), but /dev/null is no terminal: refused, the fd closed again.
  const end = serialEnd('/dev/null', { clock, run, baud: 9600 })
  end.line.start()
  await waitUntil('refused', () => end.logs.length === 1)
  t.same(run.calls, [['stty', '-F', '/dev/null', '9600', 'raw', '-echo', '-echoe', '-echok', '-echoctl', '-echoke', '-ixon', '-ixoff', '-crtscts', 'clocal', 'cread', 'cs8', '-cstopb', '-parenb']])
  t.match(end.logs[0], `serial cannot open /dev/null: not a terminal; trying again every ${SERIAL_RETRY_MS} ms`)
  t.equal(openFds(), fds, 'the fd is closed')
  await end.line.close()

  const timedOut = serialEnd('/dev/null', { clock, run: fakeRunner({ code: -1, timedOut: true }) })
  timedOut.line.start()
  await waitUntil('timed out', () => timedOut.logs.length === 1)
  t.match(timedOut.logs[0], `cannot open /dev/null: stty timed out after ${STTY_TIMEOUT_MS} ms`)
  await timedOut.line.close()

  const silent = serialEnd('/dev/null', { clock, run: fakeRunner({ code: 1 }) })
  silent.line.start()
  await waitUntil('stty failed', () => silent.logs.length === 1)
  t.match(silent.logs[0], /cannot open \/dev\/null: stty exited 1; trying/, 'no stray colon when stty said nothing')
  await silent.line.close()

  // openSync itself failing: a directory cannot be opened for writing.
  const dir = serialEnd(tmpdir(), { clock, run: fakeRunner() })
  dir.line.start()
  await waitUntil('open fails', () => dir.logs.length === 1)
  t.match(dir.logs[0], /cannot open .*: EISDIR: illegal operation on a directory, open/)
  await dir.line.close()
})

t.test('close() while stty runs: waits for it, opens nothing, logs nothing', async (t) => {
  const clock = new FakeClock()
  let answer: (r: CommandResult) => void = () => {}
  const run: Runner = () => new Promise((resolve) => (answer = resolve))
  const end = serialEnd('/dev/null', { clock, run })
  end.line.start()
  let closed = false
  const closing = end.line.close().then(() => (closed = true))
  await sleep(20)
  t.notOk(closed, 'close waits for the stty that is running')
  answer({ code: 0, stdout: '', stderr: '', timedOut: false })
  await closing
  t.same(end.logs, [])
  t.equal(end.line.status().opens, 0)
  t.equal(clock.armed, 0)
  // A failing stty during close: not logged, not retried.
  const failing = serialEnd('/dev/null', { clock, run: fakeRunner({ code: 1, stderr: 'stty: boom\n' }) })
  failing.line.start()
  await failing.line.close()
  t.same(failing.logs, [])
  t.equal(clock.armed, 0)
})
