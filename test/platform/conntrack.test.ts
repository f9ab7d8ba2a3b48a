import t, { type Test } from 'tap'
import { execFileSync, spawnSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { readFileSync, readdirSync } from 'node:fs'
import { tmpdir } from 'node:os'
import {
  LOAD_ATTEMPTS_PER_BATCH,
  LOAD_PARALLEL,
  WATCH_RESTART_MIN_MS,
  WATCH_STABLE_MS,
  conntrackBackend,
  type ConntrackOptions,
  pickupWarning,
} from '../../src/platform/conntrack.js'
import { MAX_LINE_CHARS, execStream, type StreamOptions, type StreamResult } from '../../src/platform/exec.js'
import type { Argv } from '../../src/platform/types.js'
import type { FlowChange } from '../../src/sync/backend.js'
import { deleteArgs, flowKey, insertLine } from '../../src/sync/conntrack-text.js'
import { type Flow, PROTO_ICMP, PROTO_TCP, PROTO_UDP, TCP_STATES } from '../../src/wire/flow.js'
import { FakeClock } from '../helpers/clock.js'

// --- flows and the lines conntrack prints for them -----------------------------------

/** Flow number i: TCP/UDP/ICMP in turn, a third of them source-NATed, some marked or zoned. */
function flow(i: number, over: Partial<Flow> = {}): Flow {
  const src = `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`
  const proto = [PROTO_TCP, PROTO_UDP, PROTO_ICMP][i % 3]!
  const nat = i % 5 === 0
  const natDst = '198.51.100.1'
  if (proto === PROTO_ICMP) {
    return {
      family: 4, proto,
      orig: { src, dst: '203.0.113.53', sport: i & 0xffff, dport: 8 << 8 },
      reply: { src: '203.0.113.53', dst: nat ? natDst : src, sport: i & 0xffff, dport: 0 },
      tcpState: 0, timeoutS: 30, mark: 0, zone: 0, seenReply: true, assured: false,
      ...over,
    }
  }
  const sport = 1024 + (i % 60000)
  const dport = proto === PROTO_TCP ? 443 : 53
  return {
    family: 4, proto,
    orig: { src, dst: '203.0.113.5', sport, dport },
    reply: { src: '203.0.113.5', dst: nat ? natDst : src, sport: dport, dport: nat ? 2000 + (i % 60000) : sport },
    tcpState: proto === PROTO_TCP ? 3 : 0,
    timeoutS: proto === PROTO_TCP ? 3000 : 120,
    mark: i % 7 === 0 ? i : 0,
    zone: i % 11 === 0 ? 7 : 0,
    seenReply: i % 4 !== 0,
    assured: i % 4 !== 0 && proto === PROTO_TCP,
    ...over,
  }
}

/** The line `conntrack -L -o extended` prints for a flow. */
function lineOf(f: Flow): string {
  const name = f.proto === PROTO_TCP ? 'tcp      6' : f.proto === PROTO_UDP ? 'udp      17' : 'icmp     1'
  const tuple = (tu: Flow['orig']) =>
    f.proto === PROTO_ICMP ? `src=${tu.src} dst=${tu.dst} type=${tu.dport >> 8} code=${tu.dport & 255} id=${tu.sport}` : `src=${tu.src} dst=${tu.dst} sport=${tu.sport} dport=${tu.dport}`
  const state = f.proto === PROTO_TCP ? ` ${TCP_STATES[f.tcpState]}` : ''
  return [
    `ipv4     2 ${name} ${f.timeoutS}${state} ${tuple(f.orig)}`,
    f.seenReply ? '' : ' [UNREPLIED]',
    ` ${tuple(f.reply)}`,
    f.assured ? ' [ASSURED]' : '',
    ` mark=${f.mark}`,
    f.zone ? ` zone=${f.zone}` : '',
    ' use=1',
  ].join('')
}

const log = () => {
  const lines: string[] = []
  return { lines, event: (_: string, m: string) => void lines.push(m) }
}

// --- a conntrack in memory ---------------------------------------------------------

const EXISTS = 'conntrack v1.4.7 (conntrack-tools): Operation failed: Such conntrack exists, try -U to update\n'
const ok = (): StreamResult => ({ code: 0, stderr: '', timedOut: false, aborted: false })
const fail = (code: number, stderr = ''): StreamResult => ({ code, stderr, timedOut: false, aborted: false })

interface Reader {
  opts: StreamOptions
  emit(line: string): void
  stderr(line: string): void
  exit(code: number, stderr?: string): void
}

/**
 * Behaves as conntrack 1.4.7 does: -R runs its lines in order and stops at the first
 * that fails, -D of a missing flow is fine, -L lists, -C counts, -E runs until told.
 */
class FakeConntrack {
  readonly table = new Map<string, Flow>()
  /** Flows -I refuses although they are not in the table (their reply tuple is taken). */
  readonly refused = new Set<string>()
  readonly calls: string[] = []
  readonly readers: Reader[] = []
  /** Extra lines -L prints (IPv6, garbage). */
  extraLines: string[] = []
  /** Answers the next call whose argv (after the prefix) starts with the key, once. */
  readonly answers: [string, StreamResult][] = []
  /** Runs at each -R, as traffic would change the table meanwhile. */
  traffic: () => void = () => {}
  private readonly byLine = new Map<string, Flow>()

  constructor(flows: Flow[] = [], readonly prefix: Argv = []) {
    this.know(flows)
  }

  know(flows: Flow[]): void {
    for (const f of flows) {
      this.byLine.set(insertLine(f), f)
      this.byLine.set(deleteArgs(f).join(' '), f)
    }
  }

  has(f: Flow): boolean {
    return this.table.has(flowKey(f))
  }

  put(...flows: Flow[]): void {
    for (const f of flows) this.table.set(flowKey(f), f)
  }

  run = async (argv: Argv, opts: StreamOptions): Promise<StreamResult> => {
    // Checked by throwing: the backend's promise then rejects and the test fails.
    if (argv.slice(0, this.prefix.length).join(' ') !== this.prefix.join(' ') || argv[this.prefix.length] !== 'conntrack') {
      throw new Error(`not prefix + conntrack: ${argv.join(' ')}`)
    }
    const args = argv.slice(this.prefix.length + 1)
    const line = args.join(' ')
    this.calls.push(line)
    const answer = this.answers.findIndex(([key]) => line.startsWith(key))
    if (answer >= 0) return this.answers.splice(answer, 1)[0]![1]
    switch (args[0]) {
      case '-C':
        opts.onLine?.(`${this.table.size}`)
        return ok()
      case '-L':
        for (const f of this.table.values()) opts.onLine?.(lineOf(f))
        for (const l of this.extraLines) opts.onLine?.(l)
        return ok()
      case '-R':
        return this.load(opts)
      case '-E':
        return new Promise((resolve) => {
          const done = (r: StreamResult) => resolve(r)
          opts.signal?.addEventListener('abort', () => done({ code: -1, stderr: '', timedOut: false, aborted: true }))
          this.readers.push({
            opts,
            emit: (l) => opts.onLine?.(l),
            stderr: (l) => opts.onStderrLine?.(l),
            exit: (code, stderr = '') => done(fail(code, stderr)),
          })
        })
    }
    throw new Error(`unexpected conntrack ${line}`)
  }

  private load(opts: StreamOptions): StreamResult {
    if (opts.input === undefined) throw new Error('-R - without input')
    const text = typeof opts.input === 'string' ? opts.input : [...opts.input].join('')
    if (!text.endsWith('\n')) throw new Error('-R input must be whole lines')
    this.traffic()
    for (const line of text.split('\n').filter((l) => l !== '')) {
      const f = this.byLine.get(line)
      if (f === undefined) throw new Error(`a line the test did not make: ${line}`)
      const key = flowKey(f)
      if (line.startsWith('-I')) {
        if (this.table.has(key) || this.refused.has(key)) return fail(1, EXISTS)
        this.table.set(key, f)
      } else if (this.table.delete(key)) {
        opts.onLine?.(lineOf(f).replace(/^ipv4 +2 /, ''))
      }
    }
    return ok()
  }
}

function backend(ct: FakeConntrack, extra: Partial<ConntrackOptions> = {}) {
  const l = log()
  const clock = new FakeClock()
  const b = conntrackBackend({ log: l, run: ct.run, prefix: ct.prefix, clock, ...extra })
  return { b, log: l, clock }
}

const range = (from: number, to: number): Flow[] => Array.from({ length: to - from }, (_, i) => flow(from + i))

// --- snapshot ------------------------------------------------------------------------

t.test('snapshot streams the table as flows, IPv6 ones too; other protocols and garbage are counted', async (t) => {
  const flows = range(0, 30)
  const ct = new FakeConntrack(flows, ['ip', 'netns', 'exec', 'ns1'])
  ct.put(...flows)
  ct.extraLines = [
    'ipv6     10 tcp      6 99 ESTABLISHED src=2001:db8::1 dst=2001:db8::2 sport=1000 dport=80 src=2001:db8::2 dst=2001:db8::1 sport=80 dport=1000 [ASSURED] mark=0 use=1',
    'ipv4     2 gre      47 4 src=10.1.0.10 dst=203.0.113.53 srckey=0x1 dstkey=0x2 [UNREPLIED] src=203.0.113.53 dst=10.1.0.10 srckey=0x2 dstkey=0x1 mark=0 use=1',
    'ipv4     2 tcp      6 garbage',
    'ipv4     2 tcp      6 more garbage',
    '',
  ]
  const { b, log } = backend(ct)
  const seen: Flow[] = []
  await b.snapshot((f) => seen.push(f))
  t.same(seen.slice(0, flows.length), flows)
  t.match(seen.slice(flows.length), [{ family: 6, orig: { src: '2001:db8::1', dst: '2001:db8::2' } }])
  t.same(ct.calls, ['-L -o extended'])
  t.match(b.counters, { badLines: 2, otherFamily: 0, unsupported: 1, watchRestarts: 0, loadFailures: 0 })
  t.same(log.lines, ['conntrack -L: unreadable line skipped: "ipv4     2 tcp      6 garbage"'], 'the first bad line is shown, once')
})

t.test('snapshot rejects when the table cannot be read, and when onFlow throws', async (t) => {
  const ct = new FakeConntrack(range(0, 3))
  ct.put(...range(0, 3))
  const { b } = backend(ct)
  ct.answers.push(['-L', fail(1, 'conntrack v1.4.7 (conntrack-tools): Operation failed: Operation not permitted\n')])
  await t.rejects(b.snapshot(() => {}), { code: 'commandFailed', message: 'conntrack -L: exit code 1: Operation failed: Operation not permitted' })
  ct.answers.push(['-L', { code: -1, stderr: '', timedOut: true, aborted: false }])
  await t.rejects(b.snapshot(() => {}), { code: 'timeout' })
  ct.answers.push(['-L', fail(-1, 'ENOENT: spawn conntrack ENOENT')])
  await t.rejects(b.snapshot(() => {}), { message: /ENOENT/ })
  let n = 0
  await t.rejects(
    b.snapshot(() => {
      if (++n === 2) throw new Error('full')
    }),
    { message: 'full' },
  )
  t.equal(n, 2, 'no flow after the throw')
})

// --- load ----------------------------------------------------------------------------

t.test('load sends -R - in batches, one -C before each', async (t) => {
  const flows = range(0, 7)
  const ct = new FakeConntrack(flows)
  const { b, log } = backend(ct, { batchLines: 3 })
  t.same(await b.load(flows), { loaded: 7, skipped: 0, failed: 0 })
  // LOAD_PARALLEL (2) batches run at once: the third waits for a free place.
  t.equal(LOAD_PARALLEL, 2)
  t.same(ct.calls, ['-C', '-C', '-R -', '-R -', '-C', '-R -'])
  t.ok(flows.every((f) => ct.has(f)))
  t.match(log.lines.at(-1), /^conntrack -R: 7 loaded, 0 there already, 0 failed, 3 batches, \d+ ms$/)
  t.equal(b.counters.loadFailures, 0)
  // A generator is read once, lazily.
  const more = range(7, 9)
  ct.know(more)
  function* gen() {
    yield* more
  }
  t.same(await b.load(gen()), { loaded: 2, skipped: 0, failed: 0 })
})

t.test('flows already in the table are skipped: a failed run, a read of the table, the rest again', async (t) => {
  const flows = range(0, 6)
  const ct = new FakeConntrack(flows)
  ct.put(flows[1]!, flows[4]!)
  const { b } = backend(ct)
  t.same(await b.load(flows), { loaded: 4, skipped: 2, failed: 0 })
  // conntrack stopped at line 1; lines 2, 3 and 5 go again.
  t.same(ct.calls, ['-C', '-R -', '-L -o extended', '-C', '-C', '-R -'])
  t.ok(flows.every((f) => ct.has(f)))
  t.equal(b.counters.loadFailures, 0, 'a duplicate is not a failure')
  // All there already.
  t.same(await b.load(flows), { loaded: 0, skipped: 6, failed: 0 })
})

t.test('a flow the kernel refuses (its reply tuple is taken) fails; the others load', async (t) => {
  const flows = range(0, 5)
  const ct = new FakeConntrack(flows)
  ct.refused.add(flowKey(flows[2]!))
  const { b, log } = backend(ct)
  t.same(await b.load(flows), { loaded: 4, skipped: 0, failed: 1 })
  // The first run stops at line 2, which is missing: not yet known to be refused. The
  // second run stops at its first line, which is certain.
  t.same(ct.calls, ['-C', '-R -', '-L -o extended', '-C', '-C', '-R -', '-L -o extended', '-C', '-C', '-R -'])
  t.equal(b.counters.loadFailures, 1)
  t.ok(log.lines.includes(`conntrack -R: not loaded (exit code 1: Operation failed: Such conntrack exists, try -U to update): ${insertLine(flows[2]!)}`))
})

t.test('traffic changing the table meanwhile moves loaded/skipped, never makes a failure', async (t) => {
  const flows = range(0, 8)
  const noise = range(100, 120)
  const ct = new FakeConntrack(flows)
  ct.put(flows[3]!)
  let next = 0
  ct.traffic = () => ct.put(noise[next++]!, noise[next++]!, noise[next++]!)
  const { b } = backend(ct)
  const r = await b.load(flows)
  t.equal(r.failed, 0)
  t.equal(r.loaded + r.skipped, 8)
  t.ok(flows.every((f) => ct.has(f)))
})

t.test('a batch gives up after a bounded number of runs', async (t) => {
  const flows = range(0, LOAD_ATTEMPTS_PER_BATCH + 2)
  const ct = new FakeConntrack(flows)
  for (const f of flows) ct.refused.add(flowKey(f))
  const { b, log } = backend(ct)
  t.same(await b.load(flows), { loaded: 0, skipped: 0, failed: flows.length })
  t.equal(ct.calls.filter((c) => c === '-R -').length, LOAD_ATTEMPTS_PER_BATCH)
  t.ok(log.lines.includes(`conntrack -R: giving up on 2 flows after ${LOAD_ATTEMPTS_PER_BATCH} runs`))
})

t.test('load: a line conntrack cannot read, no conntrack, an unreadable table, a timeout', async (t) => {
  const flows = range(0, 4)
  const ct = new FakeConntrack(flows)
  const { b, log } = backend(ct, { batchLines: 2 })
  ct.answers.push(['-R', fail(2, "conntrack v1.4.7 (conntrack-tools): Bad parameter `X'\nTry `conntrack -h' or 'conntrack --help' for more information.\n")])
  t.same(await b.load(flows), { loaded: 2, skipped: 0, failed: 2 }, 'exit 2: that batch is not retried')
  t.ok(log.lines.includes("conntrack -R: exit code 2: Bad parameter `X'; 2 flows not loaded"))

  ct.table.clear()
  ct.answers.push(['-R', fail(-1, 'ENOENT: spawn conntrack ENOENT')])
  t.same(await b.load(flows), { loaded: 2, skipped: 0, failed: 2 })

  ct.table.clear()
  ct.answers.push(['-R', fail(1, EXISTS)], ['-L', fail(1, 'boom')])
  t.same(await b.load(flows), { loaded: 2, skipped: 0, failed: 2 }, 'cannot tell what happened: failed')

  // Killed by the timeout after the first line: that one is counted, the other goes again.
  ct.table.clear()
  ct.traffic = () => {
    ct.traffic = () => {}
    ct.put(flows[0]!)
    ct.answers.unshift(['-R', { code: -1, stderr: '', timedOut: true, aborted: false }])
  }
  const realRun = ct.run
  let first = true
  const run = async (argv: Argv, opts: StreamOptions) => {
    if (first && argv.includes('-R')) {
      first = false
      ct.put(flows[0]!)
      return { code: -1, stderr: '', timedOut: true, aborted: false }
    }
    return realRun(argv, opts)
  }
  ct.traffic = () => {}
  const timed = backend(ct, { run, batchLines: 2 })
  t.same(await timed.b.load(flows), { loaded: 4, skipped: 0, failed: 0 })
  t.ok(timed.log.lines.some((l) => /timed out after \d+ ms; 1 flows go again/.test(l)))
  t.equal(b.counters.loadFailures, 3)
  t.equal(timed.b.counters.loadFailures, 1)
})

t.test('load: without a table count, the line before the first missing one counts as the duplicate', async (t) => {
  const flows = range(0, 5)
  const ct = new FakeConntrack(flows)
  ct.put(flows[2]!)
  const { b } = backend(ct)
  ct.answers.push(['-C', fail(1)])
  t.same(await b.load(flows), { loaded: 4, skipped: 1, failed: 0 })
})

t.test('load: a big batch goes in pieces; stop() during a run fails the rest', async (t) => {
  const flows = range(0, 1000)
  const ct = new FakeConntrack(flows)
  const { b } = backend(ct)
  t.same(await b.load(flows), { loaded: 1000, skipped: 0, failed: 0 })
  ct.table.clear()
  const realRun = ct.run
  const run = (argv: Argv, opts: StreamOptions): Promise<StreamResult> => {
    if (!argv.includes('-R')) return realRun(argv, opts)
    return new Promise((resolve) => opts.signal!.addEventListener('abort', () => resolve({ code: -1, stderr: '', timedOut: false, aborted: true })))
  }
  const stopping = backend(ct, { run })
  const pending = stopping.b.load(flows)
  await new Promise((r) => setTimeout(r, 10))
  stopping.b.stop()
  t.same(await pending, { loaded: 0, skipped: 0, failed: 1000 })
})

t.test('load: flows that cannot be written safely are failed and never sent', async (t) => {
  const good = range(0, 2)
  const ct = new FakeConntrack(good)
  const { b, log } = backend(ct)
  const evil = { ...flow(9), orig: { ...flow(9).orig, src: '1.2.3.4 -F' } }
  t.same(await b.load([good[0]!, evil, good[1]!]), { loaded: 2, skipped: 0, failed: 1 })
  t.ok(log.lines.some((l) => l.startsWith('1 flows not loaded: they cannot be written as conntrack arguments (first: original source "1.2.3.4 -F"')))
})

t.test('load and remove run one at a time, in the order asked', async (t) => {
  const flows = range(0, 4)
  const ct = new FakeConntrack(flows)
  const { b } = backend(ct)
  const order: string[] = []
  const a = b.load(flows.slice(0, 2)).then(() => order.push('load 1'))
  const r = b.remove(flows.slice(0, 1)).then(() => order.push('remove'))
  const c = b.load(flows.slice(2)).then(() => order.push('load 2'))
  await Promise.all([a, r, c])
  t.same(order, ['load 1', 'remove', 'load 2'])
  t.same(ct.calls, ['-C', '-R -', '-R -', '-C', '-R -'])
  t.same([...ct.table.values()], flows.slice(1))
})

// --- remove --------------------------------------------------------------------------

t.test('remove sends -D lines through -R - in small batches; missing flows are fine', async (t) => {
  const flows = range(0, 5)
  const ct = new FakeConntrack(flows)
  ct.put(...flows.slice(0, 3))
  const { b, log } = backend(ct, { removeBatchLines: 2 })
  await b.remove(flows)
  t.same(ct.calls, ['-R -', '-R -', '-R -'])
  t.equal(ct.table.size, 0)
  t.match(log.lines, [/^conntrack -R \(delete\): 3 of 5 removed, \d+ ms$/])
})

t.test('remove rejects when a run fails, after trying every batch', async (t) => {
  const flows = range(0, 4)
  const ct = new FakeConntrack(flows)
  ct.put(...flows)
  const { b } = backend(ct, { removeBatchLines: 2 })
  ct.answers.push(['-R', fail(1, 'conntrack v1.4.7 (conntrack-tools): Operation failed: Device or resource busy\n')])
  await t.rejects(b.remove(flows), { code: 'commandFailed', message: 'conntrack -R (delete): exit code 1: Operation failed: Device or resource busy' })
  t.equal(ct.table.size, 2, 'the second batch still ran')
  ct.answers.push(['-R', { code: -1, stderr: '', timedOut: true, aborted: false }])
  await t.rejects(b.remove(flows), { code: 'timeout' })
  t.equal(b.counters.loadFailures, 2)
  // A flow that cannot be written is left out, not sent.
  const calls = ct.calls.length
  await b.remove([{ ...flows[0]!, zone: 70000 }])
  t.equal(ct.calls.length, calls)
})

// --- watch ---------------------------------------------------------------------------

const E = {
  new: '    [NEW] ipv4     2 tcp      6 300 ESTABLISHED src=192.0.2.10 dst=203.0.113.5 sport=40000 dport=80 src=203.0.113.5 dst=198.51.100.1 sport=80 dport=61000 [ASSURED] mark=5 [USERSPACE] portid=14292',
  update: ' [UPDATE] ipv4     2 tcp      6 432000 ESTABLISHED src=127.0.0.1 dst=127.0.0.1 sport=55094 dport=8080 src=127.0.0.1 dst=127.0.0.1 sport=8080 dport=55094 [ASSURED]',
  destroy: '[DESTROY] ipv4     2 udp      17 src=192.0.2.10 dst=203.0.113.53 sport=5353 dport=53 [UNREPLIED] src=203.0.113.53 dst=192.0.2.10 sport=53 dport=5353',
  v6: '    [NEW] ipv6     10 tcp      6 99 ESTABLISHED src=2001:db8::1 dst=2001:db8::2 sport=1000 dport=80 src=2001:db8::2 dst=2001:db8::1 sport=80 dport=1000',
}

t.test('watch: NEW and UPDATE are upserts, DESTROY a delete; other lines are counted', async (t) => {
  const ct = new FakeConntrack()
  const { b, log } = backend(ct)
  const changes: FlowChange[] = []
  const lost: string[] = []
  b.watch((c) => changes.push(c), (why) => lost.push(why))
  t.same(ct.calls, ['-E -o extended -b 4194304'])
  t.equal(ct.readers[0]!.opts.timeoutMs, 0, 'the reader has no timeout')
  const r = ct.readers[0]!
  r.emit(E.new)
  r.emit(E.update)
  r.emit(E.destroy)
  r.emit(E.v6)
  r.emit('ipv4     2 tcp      6 299 ESTABLISHED src=192.0.2.10 dst=203.0.113.5 sport=40000 dport=80 src=203.0.113.5 dst=198.51.100.1 sport=80 dport=61000 [ASSURED] mark=5 use=1')
  r.emit('garbage')
  r.emit('more garbage')
  r.stderr('NOTICE: Netlink socket buffer size has been set to 8388608 bytes.')
  t.same(
    changes.map((c) => `${c.op} ${c.flow.orig.src}`),
    ['upsert 192.0.2.10', 'upsert 127.0.0.1', 'delete 192.0.2.10', 'upsert 2001:db8::1'],
  )
  t.match(changes[0], { flow: { mark: 5, reply: { dst: '198.51.100.1' } } })
  t.match(b.counters, { otherFamily: 0, badLines: 2 })
  t.same(log.lines, ['conntrack -E: unreadable line skipped: "garbage"'])
  t.same(lost, [])
  t.throws(() => b.watch(() => {}, () => {}), /twice/)
  b.stop()
})

t.test('watch: ENOBUFS says events were lost, once until the next snapshot', async (t) => {
  const ct = new FakeConntrack()
  const { b } = backend(ct)
  const lost: string[] = []
  b.watch(() => {}, (why) => lost.push(why))
  const r = ct.readers[0]!
  const warn = ['WARNING: We have hit ENOBUFS! We are losing events.', 'This message means that the current netlink socket buffer size is too small.', 'Please, check --buffer-size in conntrack(8) manpage.']
  for (const l of [...warn, ...warn]) r.stderr(l)
  t.same(lost, ['the kernel dropped state events (ENOBUFS)'])
  await b.snapshot(() => {})
  r.stderr(warn[0]!)
  t.equal(lost.length, 2, 'reported again after a snapshot began')
  t.equal(b.counters.watchRestarts, 0, 'the reader lives on')
  b.stop()
})

t.test('watch: a reader that ends is reported and started again, with a bounded backoff', async (t) => {
  const ct = new FakeConntrack()
  const { b, clock, log } = backend(ct)
  const lost: string[] = []
  b.watch(() => {}, (why) => lost.push(why))
  const settle = () => new Promise((r) => setImmediate(r))
  const delays: number[] = []
  for (let i = 0; i < 8; i++) {
    ct.readers.at(-1)!.exit(1, 'NOTICE: Netlink socket buffer size has been set to 8388608 bytes.\nconntrack v1.4.7 (conntrack-tools): Operation failed: No buffer space available\n')
    await settle()
    const from = clock.now()
    const count = ct.readers.length
    while (ct.readers.length === count) clock.advance(100)
    delays.push(clock.now() - from)
  }
  t.same(delays, [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000])
  t.equal(b.counters.watchRestarts, 8)
  t.equal(lost[0], 'conntrack -E ended (exit code 1: Operation failed: No buffer space available)')
  t.equal(log.lines[0], 'conntrack -E ended (exit code 1: Operation failed: No buffer space available); starting it again in 500 ms')
  // A reader that lived long enough resets the backoff.
  clock.advance(WATCH_STABLE_MS)
  ct.readers.at(-1)!.exit(0)
  await settle()
  const from = clock.now()
  const count = ct.readers.length
  while (ct.readers.length === count) clock.advance(100)
  t.equal(clock.now() - from, WATCH_RESTART_MIN_MS)
  b.stop()
})

t.test('stop kills the reader and everything running; nothing starts afterwards', async (t) => {
  const ct = new FakeConntrack(range(0, 2))
  const { b, clock } = backend(ct)
  const lost: string[] = []
  b.watch(() => {}, (why) => lost.push(why))
  const reader = ct.readers[0]!
  b.stop()
  t.equal(reader.opts.signal?.aborted, true)
  await new Promise((r) => setImmediate(r))
  clock.advance(60_000)
  t.equal(ct.readers.length, 1, 'not started again')
  t.same(lost, [])
  t.same(await b.load(range(0, 2)), { loaded: 0, skipped: 0, failed: 2 })
  await b.remove(range(0, 2))
  await t.rejects(b.snapshot(() => {}), { message: /stopped/ })
  t.same(ct.calls, ['-E -o extended -b 4194304'])
  // Stopped while a reader waits for its restart: the restart is cancelled.
  const ct2 = new FakeConntrack()
  const two = backend(ct2)
  two.b.watch(() => {}, () => {})
  ct2.readers[0]!.exit(1)
  await new Promise((r) => setImmediate(r))
  two.b.stop()
  two.clock.advance(60_000)
  t.equal(ct2.readers.length, 1)
})

// --- the streaming runner ------------------------------------------------------------

/** Running, not a zombie waiting for whoever inherited it to reap it. */
const alive = (pid: number) => {
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'))
  } catch {
    return false
  }
}

t.test('execStream: stdin a program can open by name, output line by line, exit codes', async (t) => {
  const before = readdirSync(tmpdir()).filter((n) => n.startsWith('carpd-stdin-')).length
  const lines: string[] = []
  // conntrack -R - opens /dev/stdin by name; a socket (Node's usual pipe) cannot be opened so.
  const r = await execStream(['sh', '-c', 'cat /dev/stdin; echo err >&2; exit 3'], {
    input: (function* () {
      yield 'one\ntw'
      yield 'o\nthree'
    })(),
    onLine: (l) => lines.push(l),
    timeoutMs: 5000,
  })
  t.same(lines, ['one', 'two', 'three'])
  t.same(r, { code: 3, stderr: 'err\n', timedOut: false, aborted: false })
  t.equal(readdirSync(tmpdir()).filter((n) => n.startsWith('carpd-stdin-')).length, before, 'no input file left behind')
  const cut: string[] = []
  // A line longer than one pipe read, then a short one.
  const long = `head -c ${MAX_LINE_CHARS * 8} /dev/zero | tr '\\0' x; printf '\\nafter\\n'`
  await execStream(['sh', '-c', long], { onLine: (l) => cut.push(l), timeoutMs: 5000 })
  t.same(cut.map((l) => l.length), [MAX_LINE_CHARS, 5], 'an over-long line is cut, the next one is whole')
  const missing = await execStream(['/nonexistent/carpd-test'], { timeoutMs: 1000 })
  t.equal(missing.code, -1)
  t.match(missing.stderr, /ENOENT/)
  const stdin = await execStream(['sh', '-c', 'cat; echo done'], { onLine: (l) => cut.push(l), timeoutMs: 5000 })
  t.equal(stdin.code, 0, 'no input: stdin is /dev/null')
  const tmp = process.env.TMPDIR
  process.env.TMPDIR = '/nonexistent/carpd-test'
  try {
    const nowhere = await execStream(['cat'], { input: 'x\n', timeoutMs: 1000 })
    t.match(nowhere, { code: -1, stderr: /^cannot write the input file: ENOENT/ })
  } finally {
    if (tmp === undefined) delete process.env.TMPDIR
    else process.env.TMPDIR = tmp
  }
})

t.test('execStream: a timeout or an abort kills the process group', async (t) => {
  const started = performance.now()
  const slow = await execStream(['sh', '-c', 'sleep 30 & wait'], { timeoutMs: 200 })
  t.match(slow, { code: -1, timedOut: true, aborted: false })
  const ac = new AbortController()
  const pids: string[] = []
  const running = execStream(['sh', '-c', 'sleep 30 & echo $!; wait'], { timeoutMs: 0, signal: ac.signal, onLine: (l) => pids.push(l) })
  while (pids.length === 0) await new Promise((r) => setTimeout(r, 10))
  ac.abort()
  t.match(await running, { code: -1, aborted: true, timedOut: false })
  await new Promise((r) => setTimeout(r, 100))
  t.notOk(alive(Number(pids[0])), 'the grandchild died with it')
  t.ok(performance.now() - started < 5000)
  t.match(await execStream(['true'], { timeoutMs: 1000, signal: AbortSignal.abort() }), { aborted: true, code: -1 })
})

// --- the real conntrack, in a namespace of its own -----------------------------------

const LAB_REQUIRED = process.env.CARPD_LAB === 'required'

function realUnavailable(): string | null {
  if (process.getuid?.() !== 0) return 'needs root (a network namespace and its conntrack table)'
  const ip = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' })
  if (ip.status !== 0) return `ip netns does not work here: ${ip.stderr || ip.error?.message}`
  const ct = spawnSync('conntrack', ['--version'], { encoding: 'utf8' })
  if (ct.status !== 0) return `no conntrack: ${ct.stderr || ct.error?.message}`
  return null
}

/** A fresh namespace (so the host's own table is never touched), deleted afterwards. */
function namespace(t: Test): string {
  const ns = `carpdct-${process.pid}-${randomBytes(3).toString('hex')}`
  execFileSync('ip', ['netns', 'add', ns])
  const del = () => spawnSync('ip', ['netns', 'del', ns], { stdio: 'ignore' })
  process.once('exit', del)
  t.teardown(() => {
    process.removeListener('exit', del)
    del()
  })
  return ns
}

const until = async (test: () => boolean, ms: number): Promise<boolean> => {
  for (const end = Date.now() + ms; Date.now() < end; await new Promise((r) => setTimeout(r, 20))) if (test()) return true
  return test()
}

/** What conntrack keeps of a loaded flow: all of it but the timeout, which runs down. */
const kept = (f: Flow) => ({ ...f, timeoutS: 0 })

const why = realUnavailable()
if (why !== null && LAB_REQUIRED) {
  t.fail(`CARPD_LAB=required but the real conntrack test cannot run: ${why}`)
} else {
  t.test('the real conntrack in a namespace: load, snapshot, watch, remove', { skip: why ?? false }, async (t) => {
    const ns = namespace(t)
    const prefix = ['ip', 'netns', 'exec', ns]
    const l = log()
    const b = conntrackBackend({ log: l, prefix, batchLines: 300 })
    t.teardown(() => b.stop())

    const flows = range(1, 1001)
    // Some are in the kernel already; one more holds the reply tuple of a TCP flow
    // without NAT, which the kernel therefore refuses: a NAT flow from 10.200.0.1
    // mapped onto the victim's own address and port. (A source-NAT flow in the
    // victim's place is refused too: see the next test.)
    const already = flows.filter((_, i) => i % 9 === 4)
    const victim = flows.find((f, i) => i > 400 && f.proto === PROTO_TCP && f.reply.dst === f.orig.src && !already.includes(f))!
    const holder = { ...victim, orig: { ...victim.orig, src: '10.200.0.1' } }
    const first = await b.load([...already, holder])
    t.same(first, { loaded: already.length + 1, skipped: 0, failed: 0 })

    const started = performance.now()
    const result = await b.load(flows)
    // Failed is certain; loaded vs skipped comes from table counts, which the other
    // batch running at the same time (LOAD_PARALLEL) moves: a duplicate may count as loaded.
    t.equal(result.failed, 1, `loaded in ${Math.round(performance.now() - started)} ms`)
    t.equal(result.loaded + result.skipped, flows.length - 1)
    t.ok(result.skipped <= already.length && result.skipped >= already.length - Math.ceil(flows.length / 300), `${result.skipped} of ${already.length} duplicates counted as skipped`)

    const seen = new Map<string, Flow>()
    await b.snapshot((f) => seen.set(flowKey(f), f))
    t.equal(seen.size, flows.length, 'every flow but the refused one, and the holder')
    let same = 0
    for (const f of flows) {
      const got = seen.get(flowKey(f))
      if (f === victim) t.notOk(got, 'the refused flow is not there')
      else if (got && JSON.stringify(kept(got)) === JSON.stringify(kept(f))) same++
      else t.same(got && kept(got), kept(f), `flow ${flowKey(f)} as loaded`)
    }
    t.equal(same, flows.length - 1, 'tuples, NAT, state, mark, zone and flags as loaded')
    // NAT flows are loaded as the original tuple and --src-nat ADDR:PORT: the reply
    // tuple is the kernel's own, and it is the one asked for, address and port.
    const natFlows = flows.filter((f) => f.reply.dst !== f.orig.src)
    t.equal(natFlows.length, 200)
    t.ok(natFlows.every((f) => !insertLine(f).includes(' -r ') && / --src-nat 198\.51\.100\.1(:\d+)? /.test(insertLine(f))))
    t.same(
      natFlows.map((f) => seen.get(flowKey(f))?.reply),
      natFlows.map((f) => f.reply),
      'the reply tuples of NAT flows as asked',
    )
    const loadedTimeout = new Map(flows.map((f) => [flowKey(f), f.timeoutS]))
    t.ok(
      [...seen].every(([k, f]) => k === flowKey(holder) || (f.timeoutS <= loadedTimeout.get(k)! && f.timeoutS >= loadedTimeout.get(k)! - 5)),
      'timeouts as loaded, less the seconds gone',
    )

    // Events: this board's own inserts and deletes come back as NEW and DESTROY.
    const changes: FlowChange[] = []
    const lost: string[] = []
    b.watch((c) => changes.push(c), (w) => lost.push(w))
    const probe = (i: number) => flow(5000 + i, { timeoutS: 60 })
    // The reader is up when it reports a flow inserted after it started.
    let i = 0
    const ready = await until(() => {
      if (changes.some((c) => c.op === 'upsert')) return true
      void b.load([probe(i++)])
      return false
    }, 5000)
    t.ok(ready, 'conntrack -E reports inserts')
    changes.length = 0
    const watched = [flow(6001), flow(6002), flow(6003)]
    await b.load(watched)
    const keys = watched.map(flowKey)
    t.ok(await until(() => keys.every((k) => changes.some((c) => c.op === 'upsert' && flowKey(c.flow) === k)), 5000), 'NEW for each flow loaded')
    await b.remove(watched)
    t.ok(await until(() => keys.every((k) => changes.some((c) => c.op === 'delete' && flowKey(c.flow) === k)), 5000), 'DESTROY for each flow removed')
    t.same(lost, [], 'nothing lost')

    // remove: only the flows named, in their zone; missing ones are fine.
    const gone = flows.filter((f, k) => k % 2 === 0 && f !== victim)
    const zoned = gone.find((f) => f.zone === 7)!
    const sameTupleZone0 = { ...zoned, zone: 0 }
    t.same(await b.load([sameTupleZone0]), { loaded: 1, skipped: 0, failed: 0 })
    await b.remove([...gone, victim, flow(9999)])
    const left = new Set<string>()
    await b.snapshot((f) => left.add(flowKey(f)))
    t.ok(gone.every((f) => !left.has(flowKey(f))), `${gone.length} removed`)
    t.ok(flows.filter((f, k) => k % 2 === 1 && f !== victim).every((f) => left.has(flowKey(f))), 'the others stay')
    t.ok(left.has(flowKey(sameTupleZone0)), 'the same tuple in zone 0 stays')
    t.ok(left.has(flowKey(holder)))
    t.match(b.counters, { badLines: 0, otherFamily: 0, loadFailures: 1 })
  })

  t.test('the real conntrack: a source-NAT flow whose reply tuple is taken is refused', { skip: why ?? false }, async (t) => {
    const ns = namespace(t)
    const l = log()
    const b = conntrackBackend({ log: l, prefix: ['ip', 'netns', 'exec', ns] })
    t.teardown(() => b.stop())
    const nat = flow(15) // TCP, source NAT to 198.51.100.1:2015
    t.same(nat.reply, { src: '203.0.113.5', dst: '198.51.100.1', sport: 443, dport: 2015 })
    const holder = { ...nat, orig: { ...nat.orig, src: '10.200.0.1' } }
    // --src-nat ADDR:PORT is a range of one port: the kernel's NAT finds no other, and
    // the entry clashes with the holder's reply tuple. (With the reply tuple given
    // explicitly, it used to be loaded quietly with another port.)
    t.same(await b.load([holder, nat]), { loaded: 1, skipped: 0, failed: 1 })
    t.ok(l.lines.includes(`conntrack -R: not loaded (exit code 1: Operation failed: Such conntrack exists, try -U to update): ${insertLine(nat)}`))
    t.equal(b.counters.loadFailures, 1)
    const got = new Map<string, Flow>()
    await b.snapshot((f) => got.set(flowKey(f), f))
    t.notOk(got.has(flowKey(nat)), 'not in the table')
    t.same(got.get(flowKey(holder))?.reply, nat.reply, 'the holder keeps its reply tuple')

    // Destination NAT alone fixes only the reply's source: the kernel then moves the
    // reply's destination port (the client's source port) to a free one, and says nothing.
    const dnat: Flow = { ...flow(3), orig: { src: '10.0.0.50', dst: '198.51.100.1', sport: 5555, dport: 443 }, reply: { src: '10.1.1.1', dst: '10.0.0.50', sport: 8443, dport: 5555 } }
    const dnatHolder: Flow = { ...dnat, orig: { ...dnat.orig, dst: '198.51.100.9' } }
    t.match(insertLine(dnat), / --dst-nat 10\.1\.1\.1:8443 /)
    t.same(await b.load([dnatHolder, dnat]), { loaded: 2, skipped: 0, failed: 0 })
    got.clear()
    await b.snapshot((f) => got.set(flowKey(f), f))
    const moved = got.get(flowKey(dnat))!
    t.same(got.get(flowKey(dnatHolder))?.reply, dnat.reply)
    t.same({ ...moved.reply, dport: 0 }, { ...dnat.reply, dport: 0 })
    t.not(moved.reply.dport, dnat.reply.dport, `destination NAT with its reply tuple taken: port ${dnat.reply.dport} moved to ${moved.reply.dport}`)
  })

  /**
   * Sends one UDP datagram inside the namespace from `from` to `to` (each ADDR:PORT)
   * and says which of the `listen` sockets got it, and from where.
   */
  const udpProbe = (ns: string, from: string, to: string, listen: string[]): { at: string; from: string }[] => {
    const script = `
      const dgram = require('node:dgram')
      const hp = (s) => ({ address: s.slice(0, s.lastIndexOf(':')), port: Number(s.slice(s.lastIndexOf(':') + 1)) })
      const [from, to, ...listen] = process.argv.slice(1)
      const got = []
      const done = () => { process.stdout.write(JSON.stringify(got)); process.exit(0) }
      const bind = (s, at) => new Promise((resolve) => s.bind(hp(at), resolve))
      ;(async () => {
        for (const at of listen) {
          const s = dgram.createSocket('udp4')
          s.on('message', (_, r) => { got.push({ at, from: r.address + ':' + r.port }); setTimeout(done, 50) })
          await bind(s, at)
        }
        const tx = dgram.createSocket('udp4')
        await bind(tx, from)
        tx.send('carpd', hp(to).port, hp(to).address)
        setTimeout(done, 2000)
      })()`
    const r = spawnSync('ip', ['netns', 'exec', ns, process.execPath, '-e', script, from, to, ...listen], { encoding: 'utf8', timeout: 10_000 })
    if (r.status !== 0) throw new Error(`probe ${from} -> ${to}: ${r.stderr || r.error?.message}`)
    return JSON.parse(r.stdout) as { at: string; from: string }[]
  }

  const nftWhy = why ?? (spawnSync('nft', ['--version'], { encoding: 'utf8' }).status === 0 ? null : 'no nft')
  if (nftWhy !== null && why === null && LAB_REQUIRED) t.fail(`CARPD_LAB=required but nft is missing`)
  t.test('the real conntrack: a loaded NAT flow has the NAT status, so its replies are translated back', { skip: nftWhy ?? false }, async (t) => {
    // The NAT status (IPS_SRC_NAT, IPS_DST_NAT) is not in conntrack's output, and
    // `conntrack -L --src-nat` lists a flow whose reply tuple merely looks NATed. What
    // the status decides is whether the kernel translates a packet back
    // (nf_nat_packet), so this sends the reply a flow's server would send, inside the
    // namespace, and looks where it arrives: translated back, at the client's own
    // address and port, or not, at the NAT address (the router itself, which would
    // reset a TCP connection). UDP, as a datagram is sent from any port without raw
    // sockets; TCP takes the same path through nf_nat_setup_info.
    const ns = namespace(t)
    const x = (...argv: string[]) => execFileSync('ip', ['netns', 'exec', ns, ...argv], { encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'] })
    execFileSync('ip', ['-n', ns, 'link', 'set', 'lo', 'up'])
    for (const a of ['10.0.0.20', '10.0.0.21', '10.0.0.30', '10.0.0.31', '10.0.0.40', '10.0.0.41', '10.1.1.1', '198.51.100.1', '198.51.100.2', '203.0.113.5']) {
      execFileSync('ip', ['-n', ns, 'addr', 'add', `${a}/32`, 'dev', 'lo'])
    }
    // The nat chain puts the kernel's NAT on the hooks; the ct rule makes the namespace
    // track packets at all (measured: without it neither kind of flow is translated).
    execFileSync('ip', ['netns', 'exec', ns, 'nft', '-f', '-'], {
      input: [
        'table ip nat {',
        '  chain post { type nat hook postrouting priority 100; }',
        '}',
        'table ip carpd_probe {',
        '  chain out { type filter hook output priority 0; ct state established counter; }',
        '}',
        '',
      ].join('\n'),
      stdio: ['pipe', 'pipe', 'pipe'],
    })
    const b = conntrackBackend({ log: log(), prefix: ['ip', 'netns', 'exec', ns] })
    t.teardown(() => b.stop())

    const udp = (client: string, cport: number, server: string, sport: number, reply: Flow['reply']): Flow => ({
      family: 4, proto: PROTO_UDP, orig: { src: client, dst: server, sport: cport, dport: sport }, reply,
      tcpState: 0, timeoutS: 300, mark: 0, zone: 0, seenReply: true, assured: false,
    })
    // Source NAT, destination NAT and both; each twice: loaded by carpd, and by the
    // line carpd wrote before, which gave the reply tuple explicitly.
    const snat = udp('10.0.0.20', 1039, '203.0.113.5', 53, { src: '203.0.113.5', dst: '198.51.100.1', sport: 53, dport: 2020 })
    const snatOld = udp('10.0.0.21', 1039, '203.0.113.5', 53, { src: '203.0.113.5', dst: '198.51.100.1', sport: 53, dport: 2021 })
    const dnat = udp('10.0.0.30', 5555, '198.51.100.1', 443, { src: '10.1.1.1', dst: '10.0.0.30', sport: 8443, dport: 5555 })
    const dnatOld = udp('10.0.0.31', 5555, '198.51.100.1', 443, { src: '10.1.1.1', dst: '10.0.0.31', sport: 8443, dport: 5555 })
    const both = udp('10.0.0.40', 7000, '198.51.100.1', 80, { src: '10.1.1.1', dst: '198.51.100.2', sport: 8080, dport: 3000 })
    const bothOld = udp('10.0.0.41', 7000, '198.51.100.1', 80, { src: '10.1.1.1', dst: '198.51.100.2', sport: 8080, dport: 3001 })

    t.same(await b.load([snat, dnat, both]), { loaded: 3, skipped: 0, failed: 0 })
    /** The former insertLine: the reply tuple given, then --src-nat/--dst-nat with the address alone. */
    const explicitReplyLine = (f: Flow): string =>
      insertLine(f)
        .replace(/ --(src|dst)-nat/, (m) => ` -r ${f.reply.src} -q ${f.reply.dst} --reply-port-src ${f.reply.sport} --reply-port-dst ${f.reply.dport}${m}`)
        .replace(/(--(?:src|dst)-nat [\d.]+):\d+/g, '$1')
    t.equal(
      explicitReplyLine(snatOld),
      '-I -p udp -s 10.0.0.21 -d 203.0.113.5 --sport 1039 --dport 53 -r 203.0.113.5 -q 198.51.100.1 --reply-port-src 53 --reply-port-dst 2021 --src-nat 198.51.100.1 -t 300 -u SEEN_REPLY',
    )
    for (const f of [snatOld, dnatOld, bothOld]) x('conntrack', ...explicitReplyLine(f).split(' '))

    // Both kinds look the same in the table: the reply tuples as asked.
    const got = new Map<string, Flow>()
    await b.snapshot((f) => got.set(flowKey(f), f))
    for (const f of [snat, snatOld, dnat, dnatOld, both, bothOld]) t.same(got.get(flowKey(f)) && kept(got.get(flowKey(f))!), kept(f), `in the table as asked: ${f.orig.src}`)

    // The replies of carpd's flows are translated back...
    t.same(udpProbe(ns, '203.0.113.5:53', '198.51.100.1:2020', ['198.51.100.1:2020', '10.0.0.20:1039']), [{ at: '10.0.0.20:1039', from: '203.0.113.5:53' }], 'source NAT: to the client')
    t.same(udpProbe(ns, '10.1.1.1:8443', '10.0.0.30:5555', ['10.0.0.30:5555']), [{ at: '10.0.0.30:5555', from: '198.51.100.1:443' }], 'destination NAT: from the address the client asked for')
    t.same(udpProbe(ns, '10.1.1.1:8080', '198.51.100.2:3000', ['198.51.100.2:3000', '10.0.0.40:7000']), [{ at: '10.0.0.40:7000', from: '198.51.100.1:80' }], 'both')
    // ...those of the explicit reply tuple are not: the check can fail.
    t.same(udpProbe(ns, '203.0.113.5:53', '198.51.100.1:2021', ['198.51.100.1:2021', '10.0.0.21:1039']), [{ at: '198.51.100.1:2021', from: '203.0.113.5:53' }], 'old line, source NAT: to the router itself')
    t.same(udpProbe(ns, '10.1.1.1:8443', '10.0.0.31:5555', ['10.0.0.31:5555']), [{ at: '10.0.0.31:5555', from: '10.1.1.1:8443' }], 'old line, destination NAT: from the server, untranslated')
    t.same(udpProbe(ns, '10.1.1.1:8080', '198.51.100.2:3001', ['198.51.100.2:3001', '10.0.0.41:7000']), [{ at: '198.51.100.2:3001', from: '10.1.1.1:8080' }], 'old line, both: neither')
  })
}

t.test('pickupWarning: loose TCP pickup on warns with the fix; off, or no conntrack module, is quiet', async (t) => {
  const reading = (value: string | null) => (path: string) => {
    t.equal(path, '/proc/sys/net/netfilter/nf_conntrack_tcp_loose')
    if (value === null) throw Object.assign(new Error('ENOENT'), { code: 'ENOENT' })
    return value
  }
  t.match(pickupWarning(reading('1\n')), /^nf_conntrack_tcp_loose=1: .*run: sysctl -w net\.netfilter\.nf_conntrack_tcp_loose=0, and drop "ct state invalid"/)
  t.equal(pickupWarning(reading('0\n')), null)
  t.equal(pickupWarning(reading(null)), null, 'no module loaded: nothing to say')
})
