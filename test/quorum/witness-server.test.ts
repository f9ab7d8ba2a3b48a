// carpd witness over real UDP on loopback: in-process with a hand-driven clock, then the
// bundle as an operator runs it.
import t, { type Test } from 'tap'
import { spawn, spawnSync } from 'node:child_process'
import { createSocket, type Socket } from 'node:dgram'
import { EventEmitter } from 'node:events'
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { BOARDS } from '../../src/config/boards.gen.js'
import { loadConfig } from '../../src/config/load.js'
import type { Config } from '../../src/config/types.js'
import type { Logger } from '../../src/io/log.js'
import type { Transport } from '../../src/io/transport.js'
import { WITNESS_PORT_DEFAULT } from '../../src/quorum/witness.js'
import { senderId } from '../../src/wire/ids.js'
import { type VoteMessage, decodeVote, encodeVote } from '../../src/wire/vote.js'
import { type RunningWitness, readEpoch, runWitness, startWitness, writeEpoch } from '../../src/quorum/witness-server.js'
import { FakeClock } from '../helpers/clock.js'
import { watchLines } from '../helpers/lines.js'
import { freeUdpPort } from '../helpers/ports.js'

const KEY = 'witness s3cret'
const A = senderId('fw-a')
const B = senderId('fw-b')
const W = senderId('witness')
const LEASE_MS = 1000
const SILENCE_MS = 1260 // 1 s × 1.01 + 250 ms
const NO_REPLY_MS = 150 // how long a test waits to be sure nothing comes back

const dir = mkdtempSync(join(tmpdir(), 'carpd-witness-'))
t.teardown(() => rmSync(dir, { recursive: true, force: true }))
let files = 0

function config(port: number, lines: string[] = [], state = join(dir, `state-${++files}`)): Config {
  const text = ['node = witness', `witness.listen = 127.0.0.1:${port}`, `witness.key = ${KEY}`, `witness.state = ${state}`, `witness.lease = ${LEASE_MS}ms`, ...lines].join('\n')
  const r = loadConfig(text, '/cf/witness.conf', { readFile: () => '', boards: BOARDS })
  if (!r.ok) throw new Error(r.errors.map((e) => e.message).join('\n'))
  return r.config
}

function logger(): Logger & { lines: string[] } {
  const lines: string[] = []
  return { lines, event: (subsystem, message) => lines.push(`${subsystem} ${message}`) }
}

/** A simulated board: its own UDP socket, requests signed with `key`. */
class Board {
  private seq = 0
  private nonces = 0
  private readonly inbox: Buffer[] = []
  private waiting: ((b: Buffer) => void) | null = null
  constructor(
    readonly id: number,
    readonly sock: Socket,
    readonly to: number,
    readonly epoch = 0x1000 + id % 1000,
  ) {
    sock.on('message', (msg) => {
      if (this.waiting) {
        this.waiting(msg)
        this.waiting = null
      } else this.inbox.push(msg)
    })
  }

  static async open(t: Test, id: number, to: number): Promise<Board> {
    const sock = createSocket('udp4')
    await new Promise<void>((r) => sock.bind(0, '127.0.0.1', r))
    t.teardown(() => new Promise<void>((r) => sock.close(() => r())))
    return new Board(id, sock, to)
  }

  request(vhid = 1, leaseMs = LEASE_MS): Extract<VoteMessage, { kind: 'request' }> {
    const nonce = Buffer.alloc(8)
    nonce.writeUInt32BE(this.id, 0)
    nonce.writeUInt32BE(++this.nonces, 4)
    return { kind: 'request', sender: this.id, epoch: this.epoch, seq: ++this.seq, vhid, nonce, leaseMs, demote: 0, advbase: 1, advskew: 0, flags: 0 }
  }

  send(bytes: Buffer): Promise<void> {
    return new Promise((r, j) => this.sock.send(bytes, this.to, '127.0.0.1', (err) => (err ? j(err) : r())))
  }

  /** The next datagram, or null after `ms`. */
  next(ms = 2000): Promise<Buffer | null> {
    const queued = this.inbox.shift()
    if (queued) return Promise.resolve(queued)
    return new Promise((r) => {
      const timer = setTimeout(() => {
        this.waiting = null
        r(null)
      }, ms)
      this.waiting = (b) => {
        clearTimeout(timer)
        r(b)
      }
    })
  }

  /** Sends a request and returns the witness's decoded answer (null: none came). */
  async ask(msg: VoteMessage = this.request(), key = KEY, waitMs?: number): Promise<VoteMessage | null> {
    await this.send(encodeVote(msg, key))
    const bytes = await this.next(waitMs)
    if (bytes === null) return null
    const r = decodeVote(bytes, KEY)
    if (!r.ok) throw new Error(`undecodable reply: ${r.error}`)
    return r.msg
  }
}

function answer(t: Test, got: VoteMessage | null, kind: 'grant' | 'deny', holder: number, leaseMs: number, what: string): void {
  if (got === null || (got.kind !== 'grant' && got.kind !== 'deny')) {
    t.fail(`${what}: got ${JSON.stringify(got)}`)
    return
  }
  t.same([got.kind, got.holder.toString(16), got.leaseMs], [kind, holder.toString(16), leaseMs], what)
}

async function started(t: Test, cfg: Config, clock: FakeClock, log = logger()): Promise<RunningWitness> {
  const w = await startWitness({ config: cfg, clock, log })
  if ('code' in w) throw new Error(w.message)
  t.teardown(() => w.close())
  return w
}

t.test('grant, deny and renew over UDP; restart silence; wrong key, garbage and replays dropped', async (t) => {
  const port = await freeUdpPort()
  const clock = new FakeClock(5000)
  const log = logger()
  const cfg = config(port)
  const w = await started(t, cfg, clock, log)
  t.same(w.listen, { address: '127.0.0.1', port })
  t.equal(w.epoch, 1, 'first start: epoch 1')
  t.equal(readFileSync(cfg.witness.state, 'utf8'), '1\n', 'persisted before answering')
  t.match(log.lines[0], `witness listening on 127.0.0.1:${port} epoch=1 max lease 1000ms; granting nothing for ${SILENCE_MS}ms`)
  const a = await Board.open(t, A, port)
  const b = await Board.open(t, B, port)

  // Restart silence: promised nobody, ask again when it ends.
  const req = a.request(4)
  const silent = await a.ask(req)
  answer(t, silent, 'deny', 0, SILENCE_MS, 'during the restart silence')
  t.same(silent, { kind: 'deny', sender: W, epoch: 1, seq: 1, vhid: 4, nonce: req.nonce, holder: 0, leaseMs: SILENCE_MS }, 'echoes vhid and nonce, signed by the witness')
  clock.advance(SILENCE_MS - 1)
  answer(t, await a.ask(), 'deny', 0, 1, '1 ms before the silence ends')
  clock.advance(1)
  t.match(log.lines.at(-1), 'witness restart silence over: granting leases')

  answer(t, await a.ask(), 'grant', A, LEASE_MS, 'a gets the lease')
  t.match(log.lines.at(-1), /^witness vhid=1 lease none -> [0-9a-f]{8} granted 1000ms reason="no holder yet"$/)
  answer(t, await b.ask(), 'deny', A, SILENCE_MS, 'b is told who holds it and for how long')
  clock.advance(900)
  answer(t, await a.ask(b.request(1, 60_000), KEY), 'deny', A, SILENCE_MS - 900, 'b asking through a’s socket is still b')
  answer(t, await a.ask(a.request(1, 60_000)), 'grant', A, LEASE_MS, 'a renews, its lease cut to the maximum')

  // Drops: wrong key, garbage, a replayed datagram. None gets an answer.
  t.equal(await b.ask(b.request(), 'wrong key', NO_REPLY_MS), null, 'wrong key: ignored')
  await b.send(Buffer.from('hello'))
  await b.send(Buffer.alloc(64, 0x51))
  const replayed = encodeVote(a.request(), KEY)
  await a.send(replayed)
  answer(t, decodeMsg(await a.next()), 'grant', A, LEASE_MS, 'the original is answered')
  await a.send(replayed)
  t.equal(await a.next(NO_REPLY_MS), null, 'its replay is not')

  clock.advance(SILENCE_MS - 1)
  answer(t, await b.ask(), 'deny', A, 1, 'b, 1 ms before a’s lease has surely expired')
  clock.advance(1)
  answer(t, await b.ask(), 'grant', B, LEASE_MS, 'b, once it has')
  t.match(log.lines.at(-1), /lease [0-9a-f]{8} -> [0-9a-f]{8} granted 1000ms reason="[0-9a-f]{8} silent 1260ms/)

  const st = w.core.status(clock.now())
  t.equal(st.drops.badAuth, 1)
  t.equal(st.drops.shortPacket, 1)
  t.equal(st.drops.badKind, 1)
  t.equal(st.drops.replay, 1)
  t.same(
    st.vhids.map((v) => [v.vhid, v.holder, v.grants, v.renewals, v.denials]),
    [
      [1, B.toString(16).padStart(8, '0'), 2, 2, 4],
      [4, null, 0, 0, 1],
    ],
  )
  t.match(w.statusLines().join('\n'), /vhid 1 holder [0-9a-f]{8} lease 1000ms left[^]*\ndrops shortPacket=1 badKind=1 badAuth=1 replay=1/)
})

function decodeMsg(bytes: Buffer | null): VoteMessage | null {
  if (bytes === null) return null
  const r = decodeVote(bytes, KEY)
  return r.ok ? r.msg : null
}

t.test('the epoch: written atomically at each start, one more each time', async (t) => {
  const state = join(dir, 'epoch-twice')
  const clock = new FakeClock()
  for (const want of [1, 2]) {
    const port = await freeUdpPort()
    const w = await startWitness({ config: config(port, [], state), clock, log: logger() })
    if ('code' in w) throw new Error(w.message)
    t.equal(w.epoch, want)
    t.equal(readFileSync(state, 'utf8'), `${want}\n`)
    const a = await Board.open(t, A, port)
    t.equal((await a.ask())?.epoch, want, `replies carry epoch ${want}`)
    await w.close()
  }
  t.notOk(readdirSync(dir).some((f) => f.endsWith('.tmp')), 'no temporary file left')

  writeFileSync(state, '4294967295\n')
  t.same(readEpoch(state), { epoch: 4294967295, note: null })
  const wrapped = await startWitness({ config: config(await freeUdpPort(), [], state), clock, log: logger() })
  if ('code' in wrapped) throw new Error(wrapped.message)
  t.equal(wrapped.epoch, 1, 'after the last u32 epoch: 1 (0 means none)')
  await wrapped.close()

  for (const garbage of ['', 'seven\n', '-3', '4294967296', '1.5', '12345678901234567890']) {
    writeFileSync(state, garbage)
    const log = logger()
    const w = await startWitness({ config: config(await freeUdpPort(), [], state), clock, log })
    if ('code' in w) throw new Error(w.message)
    t.equal(w.epoch, 1, `garbage ${JSON.stringify(garbage)}: read as 0`)
    t.match(log.lines[0], /^witness witness\.state = .*: no epoch in ".*", starting again from 0$/)
    await w.close()
  }
  writeFileSync(state, ' 41 \n')
  t.same(readEpoch(state), { epoch: 41, note: null }, 'spaces around the number are fine')
})

t.test('the state file cannot be read or written: exit 2, nothing bound', async (t) => {
  const clock = new FakeClock()
  const port = await freeUdpPort()
  const asDir = join(dir, 'a-directory')
  mkdirSync(asDir)
  const unreadable = await startWitness({ config: config(port, [], asDir), clock, log: logger() })
  t.match(unreadable, { code: 2, message: /^witness\.state = .*a-directory: cannot read the epoch: not a regular file \(a directory\)$/ })
  const nowhere = join(dir, 'no', 'such', 'dir', 'state')
  const unwritable = await startWitness({ config: config(port, [], nowhere), clock, log: logger() })
  t.match(unwritable, { code: 2, message: /^witness\.state = .*: cannot write the epoch: ENOENT/ })
  // The port is still free: nothing was bound.
  const w = await started(t, config(port), clock)
  t.equal(w.listen.port, port)
  t.throws(() => writeEpoch(nowhere, 1), { code: 'ENOENT' })
})

t.test('witness.listen and witness.key are required: exit 1 naming the key', async (t) => {
  const clock = new FakeClock()
  const noListen = config(1, [])
  noListen.witness.listen = null
  const errs: string[] = []
  const code = await runWitness({ config: noListen, clock, log: logger(), stderr: (s) => errs.push(s) })
  t.equal(code, 1)
  t.match(errs.join(''), /^carpd witness: \/cf\/witness\.conf: witness\.listen: missing: needed by carpd witness \(the address to listen on, e\.g\. witness\.listen = 192\.0\.2\.50:8241\)\n$/)
  // Without a stderr of its own it writes to the process's.
  t.equal(await runWitness({ config: noListen, clock, log: logger() }), 1)
  const noKey = config(1, [])
  noKey.witness.key = ''
  t.match(await startWitness({ config: noKey, clock, log: logger() }), { code: 1, message: /witness\.key: missing: .*set witness\.key or witness\.keyfile/ })
  t.equal(WITNESS_PORT_DEFAULT, 8241)
})

t.test('a port in use: exit 2 naming the address', async (t) => {
  const port = await freeUdpPort()
  const clock = new FakeClock()
  await started(t, config(port), clock)
  const again = await startWitness({ config: config(port), clock, log: logger() })
  t.match(again, { code: 2, message: `cannot open the witness socket on 127.0.0.1:${port}: ` })
  const errs: string[] = []
  t.equal(await runWitness({ config: config(port), clock, log: logger(), stderr: (s) => errs.push(s) }), 2)
  t.match(errs.join(''), /^carpd witness: cannot open the witness socket/)
})

t.test('no port in witness.listen: the default port 8241', async (t) => {
  const clock = new FakeClock()
  const cfg = config(1)
  cfg.witness.listen = { address: '127.0.0.1', port: 0 }
  let asked: number | undefined
  const fake: Transport = { send: async () => {}, onPacket: () => {}, close: async () => {} }
  const w = await startWitness({
    config: cfg,
    clock,
    log: logger(),
    openTransport: async (opts) => {
      asked = opts.port
      return fake
    },
  })
  t.equal(asked, WITNESS_PORT_DEFAULT)
  if (!('code' in w)) await w.close()
})

t.test('a reply the OS refuses is counted as sendError', async (t) => {
  const clock = new FakeClock()
  let handler: (payload: Buffer, from: { address: string; port: number }) => void = () => {}
  const failing: Transport = {
    send: () => Promise.reject(new Error('EPERM')),
    onPacket: (h) => void (handler = h),
    close: async () => {},
  }
  const w = await startWitness({ config: config(1), clock, log: logger(), openTransport: async () => failing })
  if ('code' in w) throw new Error(w.message)
  const req: VoteMessage = { kind: 'request', sender: A, epoch: 1, seq: 1, vhid: 1, nonce: Buffer.alloc(8), leaseMs: 1000, demote: 0, advbase: 1, advskew: 0, flags: 0 }
  handler(encodeVote(req, KEY), { address: '192.0.2.9', port: 9 })
  await new Promise((r) => setImmediate(r))
  t.equal(w.core.status(clock.now()).drops.sendError, 1)
  await w.close()
})

t.test('runWitness: SIGUSR1 prints the status, SIGTERM and SIGINT stop it with 0', async (t) => {
  for (const stopWith of ['SIGTERM', 'SIGINT'] as const) {
    const port = await freeUdpPort()
    const clock = new FakeClock()
    const signals = new EventEmitter()
    const log = logger()
    const running = runWitness({ config: config(port), clock, log, signals })
    await waitUntil(() => signals.listenerCount('SIGUSR1') === 1)
    signals.emit('SIGUSR1')
    t.match(log.lines.join('\n'), /status witness [0-9a-f]{8} epoch=1 max lease 1000ms restart silence: granting nothing for 1260ms\nstatus drops none/)
    signals.emit(stopWith)
    signals.emit(stopWith) // a second signal while stopping changes nothing
    t.equal(await running, 0, `${stopWith}: exit 0`)
    t.match(log.lines.at(-1), `witness ${stopWith}: stopping`)
    t.equal(signals.listenerCount('SIGTERM') + signals.listenerCount('SIGINT') + signals.listenerCount('SIGUSR1'), 0, 'handlers removed')
    // The socket is closed: the port can be bound again.
    const again = await startWitness({ config: config(port), clock, log: logger() })
    t.notOk('code' in again, 'port free again')
    if (!('code' in again)) await again.close()
  }
})

async function waitUntil(cond: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!cond()) {
    if (Date.now() > deadline) throw new Error('timed out')
    await new Promise((r) => setTimeout(r, 5))
  }
}

// ---------------------------------------------------------------------------------
// The bundle, as an operator runs it.

const root = resolve(import.meta.dirname, '../..')
const CARPD = join(root, 'build/carpd.js')

t.test('the bundle: carpd witness -c FILE answers, prints status, stops; usage errors exit 1', async (t) => {
  const built = spawnSync(process.execPath, [join(root, 'esbuild.config.mjs')], { env: { ...process.env, CARPD_QUIET_BUILD: '1' }, encoding: 'utf8' })
  t.equal(built.status, 0, built.stderr)

  const help = spawnSync(process.execPath, [CARPD, 'witness', '--help'], { encoding: 'utf8' })
  t.equal(help.status, 0)
  t.match(help.stdout, /^usage: carpd witness -c FILE\n/)
  t.match(help.stdout, /witness\.listen = /)
  t.match(help.stdout, /witness\.key = /)
  t.match(help.stdout, /node = witness/)

  const port = await freeUdpPort()
  const state = join(dir, 'bundle.state')
  const conf = join(dir, 'witness.conf')
  writeFileSync(conf, `node = witness\nwitness.listen = 127.0.0.1:${port}\nwitness.key = ${KEY}\nwitness.lease = 500ms\nwitness.state = ${state}\n`)
  const child = spawn(process.execPath, [CARPD, 'witness', '-c', conf], { stdio: ['ignore', 'pipe', 'pipe'] })
  t.teardown(() => void child.kill('SIGKILL'))
  const watched = watchLines(child, 'witness')
  // The silence still to run when the line is written: 755 ms (500 x 1.01 + 250) less
  // the few ms the start took (a loaded CI run printed 754).
  const listening = await watched.waitFor(/witness witness listening on 127\.0\.0\.1:\d+ epoch=1 max lease 500ms; granting nothing for \d+ms/)
  const silence = Number(/granting nothing for (\d+)ms/.exec(listening)![1])
  t.ok(silence > 600 && silence <= 755, `restart silence ${silence} ms of 755`)
  t.equal(readFileSync(state, 'utf8'), '1\n')
  const a = await Board.open(t, A, port)
  const first = await a.ask(a.request(1, 500))
  t.match(first, { kind: 'deny', holder: 0, sender: W, epoch: 1 }, 'answers at once: nothing granted yet')
  await watched.waitFor(/restart silence over: granting leases/)
  t.match(await a.ask(a.request(1, 500)), { kind: 'grant', holder: A, leaseMs: 500, sender: W, epoch: 1 }, 'then grants')
  await watched.waitFor(/witness witness vhid=1 lease none -> [0-9a-f]{8} granted 500ms/)
  child.kill('SIGUSR1')
  await watched.waitFor(/witness status vhid 1 holder [0-9a-f]{8} lease \d+ms left/)
  child.kill('SIGTERM')
  t.equal(await watched.exited, 0, 'SIGTERM: exit 0')

  const noKey = join(dir, 'nokey.conf')
  writeFileSync(noKey, `node = witness\nwitness.listen = 127.0.0.1:${port}\nwitness.state = ${state}\n`)
  const r1 = spawnSync(process.execPath, [CARPD, 'witness', '-c', noKey], { encoding: 'utf8', timeout: 10_000 })
  t.equal(r1.status, 1, 'witness.key missing: exit 1')
  t.match(r1.stderr, /nokey\.conf:2: witness\.key: missing: needed when witness\.listen is set; set witness\.key or witness\.keyfile/)
  const noListen = join(dir, 'nolisten.conf')
  writeFileSync(noListen, `node = witness\nwitness.key = ${KEY}\nwitness.state = ${state}\n`)
  const r2 = spawnSync(process.execPath, [CARPD, 'witness', '-c', noListen], { encoding: 'utf8', timeout: 10_000 })
  t.equal(r2.status, 1, 'witness.listen missing: exit 1')
  t.match(r2.stderr, /nolisten\.conf: witness\.listen: missing: needed by carpd witness/)
  t.equal(readFileSync(state, 'utf8'), '1\n', 'a usage error does not consume an epoch')
})
