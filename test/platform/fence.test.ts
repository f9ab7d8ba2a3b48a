import t from 'tap'
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { FENCE_AFTERMATH_CHECK_MS, FENCE_AFTERMATH_MS, FENCE_REMOVE_TRIES, FENCE_RETRY_MS, FenceCore, earlierFences, holdLine, spawnFence } from '../../src/platform/fence.js'
import { FakeClock } from '../helpers/clock.js'

function core() {
  const clock = new FakeClock(0)
  const lines: string[] = []
  const removed: string[] = []
  const replies: string[] = []
  let failing = false
  const c = new FenceCore({
    clock,
    log: { event: (sub, msg) => lines.push(`${sub} ${msg}`) },
    removeVip: async (iface, vip) => {
      removed.push(`${iface} ${vip.address}/${vip.prefix}`)
      if (failing) throw new Error('RTNETLINK answers: Operation not permitted')
    },
    reply: (l) => replies.push(l),
  })
  return { c, clock, lines, removed, replies, fail: (on = true) => (failing = on) }
}

const settle = () => new Promise((r) => setImmediate(r))

t.test('a hold that runs out removes the VIPs and says so; a renewal pushes it back', async (t) => {
  const f = core()
  f.c.push(holdLine(1, 500, 'eth0', [{ address: '192.0.2.1', prefix: 24 }, { address: '192.0.2.2', prefix: 24 }])) // until 500
  t.same(f.c.guarded, [1])
  f.clock.advance(400)
  f.c.push('hold 1 900 eth0 192.0.2.1/24,192.0.2.2/24\n') // renewed at 400: now until 900
  f.clock.advance(400)
  t.same(f.removed, [], 'renewed in time')
  f.clock.advance(100)
  await settle()
  t.same(f.removed, ['eth0 192.0.2.1/24', 'eth0 192.0.2.2/24'])
  t.same(f.replies, ['expired 1'])
  t.match(f.lines[0], /fence vhid=1 no lease renewal from carpd before the lease ended \(stopped or hung\?\): removing 192.0.2.1\/24,192.0.2.2\/24 from eth0/)
  t.same(f.c.guarded, [])
})

t.test('drop lifts a hold; lines come in pieces; bad lines are counted, never acted on', async (t) => {
  const f = core()
  f.c.push('hold 2 100 eth')
  f.c.push('0 192.0.2.9/24\ndrop 2\n')
  f.clock.advance(1000)
  await settle()
  t.same(f.removed, [])
  for (const bad of ['hold 0 100 eth0 192.0.2.1/24', 'hold 1 -5 eth0 192.0.2.1/24', 'hold 1 100 eth0', 'hold 1 100 e;rm 192.0.2.1/24', 'hold 1 100 eth0 192.0.2.300/24', 'hold 1 100 eth0 192.0.2.1/40', 'take 1 100 eth0 192.0.2.1/24', 'drop x', 'drop 1 2']) f.c.push(`${bad}\n`)
  t.equal(f.c.badLines, 9)
  f.c.push('x'.repeat(5000))
  t.equal(f.c.badLines, 10, 'an endless line is dropped, not buffered')
  t.same(f.c.guarded, [])
})

t.test('carpd gone: what is guarded goes at once; a failing removal is logged and tried again until it works, 10 times at most', async (t) => {
  const f = core()
  f.fail()
  f.c.push(holdLine(3, 60_000, 'lan0', [{ address: '198.51.100.7', prefix: 32 }]))
  const ended = f.c.end()
  await settle()
  t.same(f.removed, ['lan0 198.51.100.7/32'])
  t.match(f.lines.join('\n'), /vhid=3 carpd exited: removing 198.51.100.7\/32 from lan0[^]*removing 198.51.100.7 failed \(try 1 of 10\): RTNETLINK/)
  t.same(f.replies, [], 'not expired while the VIP may still be there')
  f.clock.advance(FENCE_RETRY_MS)
  await settle()
  t.equal(f.removed.length, 2, 'tried again')
  f.fail(false)
  f.clock.advance(FENCE_RETRY_MS)
  await ended
  t.equal(f.removed.length, 3)
  t.same(f.replies, ['expired 3'])
  const g = core()
  g.fail()
  g.c.push(holdLine(4, 60_000, 'lan0', [{ address: '198.51.100.8', prefix: 32 }]))
  const gave = g.c.end()
  for (let i = 0; i < 40; i++) {
    await settle()
    g.clock.advance(FENCE_RETRY_MS)
  }
  await gave
  t.equal(g.removed.length, FENCE_REMOVE_TRIES, 'bounded: it gives up after 10 tries')
  t.same(g.replies, ['expired 4'])
})

t.test('spawnFence: lines reach the child, expiries come back, a dead child is started again', async (t) => {
  // A stand-in child: answers "expired N" to each hold, exits on "drop 9".
  const script = `process.stdin.setEncoding('utf8').on('data', (d) => { for (const l of d.split('\\n')) { const m = /^hold (\\d+)/.exec(l); if (m) process.stdout.write('noise\\nexpired ' + m[1] + '\\n'); if (l === 'drop 9') process.exit(3) } })`
  const logs: string[] = []
  const expired: number[] = []
  const fence = spawnFence({ argv: [process.execPath, '-e', script], log: { event: (s, m) => logs.push(`${s} ${m}`) }, onExpired: (v) => expired.push(v) })
  t.teardown(() => fence.close())
  fence.hold(1, 1000, 'eth0', [{ address: '192.0.2.1', prefix: 24 }])
  const deadline = Date.now() + 5000
  while (expired.length < 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10))
  t.same(expired, [1])
  fence.drop(1) // nothing held any more (the child said expired): no line sent
  fence.hold(9, 1000, 'eth0', [{ address: '192.0.2.1', prefix: 24 }])
  fence.drop(9)
  while (!logs.some((l) => /fence exited \(code 3\); starting it again/.test(l)) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10))
  t.ok(logs.some((l) => /fence exited \(code 3\)/.test(l)), 'the exit is logged')
  fence.hold(4, 1000, 'eth0', [{ address: '192.0.2.1', prefix: 24 }])
  const deadline2 = Date.now() + 5000
  while (!expired.includes(4) && Date.now() < deadline2) await new Promise((r) => setTimeout(r, 10))
  t.ok(expired.includes(4), 'the restarted child answers')
})

t.test('spawnFence: a command that cannot start is logged', async (t) => {
  const logs: string[] = []
  const fence = spawnFence({ argv: ['/nonexistent/carpd-fence'], log: { event: (s, m) => logs.push(`${s} ${m}`) }, onExpired: () => {} })
  const deadline = Date.now() + 3000
  while (!logs.some((l) => /cannot start the fence/.test(l)) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10))
  fence.close()
  t.ok(logs.some((l) => /cannot start the fence: spawn \/nonexistent\/carpd-fence ENOENT/.test(l)))
})

t.test('after carpd died: a VIP a command of its put back is removed again for FENCE_AFTERMATH_MS (simulator seed 20000923)', async (t) => {
  const clock = new FakeClock(0)
  const lines: string[] = []
  const present = new Set<string>(['192.0.2.1'])
  const reads: string[] = []
  const c = new FenceCore({
    clock,
    log: { event: (sub, msg) => lines.push(`${sub} ${msg}`) },
    removeVip: async (_iface, vip) => void present.delete(vip.address),
    addresses: async (iface) => (reads.push(iface), new Set(present)),
    reply: () => {},
  })
  c.push(holdLine(1, 60_000, 'eth0', [{ address: '192.0.2.1', prefix: 24 }]))
  let ended = false
  void c.end().then(() => (ended = true))
  await settle()
  t.equal(present.has('192.0.2.1'), false, 'removed at once')
  const run = async (ms: number) => {
    for (let i = 0; i < ms; i += 50) {
      clock.advance(50)
      await settle()
    }
  }
  // The `ip addr add` carpd started before it died lands 1.8 s later.
  await run(1800)
  present.add('192.0.2.1')
  await run(FENCE_AFTERMATH_CHECK_MS + 50)
  t.equal(present.has('192.0.2.1'), false, `removed again within ${FENCE_AFTERMATH_CHECK_MS} ms`)
  t.equal(c.lateRemovals, 1)
  t.match(lines.join('\n'), /192\.0\.2\.1 came back on eth0 after carpd exited/)
  await run(FENCE_AFTERMATH_MS)
  t.equal(ended, true, 'the watch ends after FENCE_AFTERMATH_MS')
  const readsThen = reads.length
  await run(2000)
  t.equal(reads.length, readsThen, 'and looks no more')
  // Nothing guarded when carpd went (a clean stop drops its holds first): no watch at all.
  const idle = new FenceCore({ clock, log: { event: () => {} }, removeVip: async () => {}, addresses: async () => (reads.push('x'), new Set()), reply: () => {} })
  await idle.end()
  await run(1000)
  t.equal(reads.length, readsThen, 'nothing to watch')
})

t.test('after a lease ran out: a VIP a slow add of a stopped carpd puts back is removed again, until carpd holds the vhid anew (simulator seed 110007078)', async (t) => {
  const clock = new FakeClock(0)
  const lines: string[] = []
  const present = new Set<string>(['192.0.2.1'])
  const c = new FenceCore({
    clock,
    log: { event: (sub, msg) => lines.push(`${sub} ${msg}`) },
    removeVip: async (_iface, vip) => void present.delete(vip.address),
    addresses: async () => new Set(present),
    reply: () => {},
  })
  const run = async (ms: number) => {
    for (let i = 0; i < ms; i += 50) {
      clock.advance(50)
      await settle()
    }
  }
  c.push(holdLine(1, 500, 'eth0', [{ address: '192.0.2.1', prefix: 24 }]))
  await run(600)
  t.equal(present.has('192.0.2.1'), false, 'removed at the end of the hold')
  await run(900)
  present.add('192.0.2.1') // the add carpd started before it was stopped
  await run(FENCE_AFTERMATH_CHECK_MS + 50)
  t.equal(present.has('192.0.2.1'), false, 'removed again')
  t.match(lines.join('\n'), /192\.0\.2\.1 came back on eth0 after the lease ended/)
  // carpd runs again and holds the vhid: its VIPs stay.
  c.push(holdLine(1, clock.now() + 60_000, 'eth0', [{ address: '192.0.2.1', prefix: 24 }]))
  present.add('192.0.2.1')
  await run(FENCE_AFTERMATH_MS)
  t.equal(present.has('192.0.2.1'), true, 'a new hold ends the watch')
  t.equal(c.lateRemovals, 1)
})

t.test('a lease-end removal under way: end() waits for it and its watch; a hold during it leaves nothing to watch (review)', async (t) => {
  const clock = new FakeClock(0)
  const present = new Set<string>(['192.0.2.1'])
  let reads = 0
  const slowRemove = async (_iface: string, vip: { address: string }) => {
    await new Promise<void>((r) => clock.at(clock.now() + 1000, r)) // a slow `ip addr del`
    present.delete(vip.address)
  }
  const run = async (ms: number) => {
    for (let i = 0; i < ms; i += 50) {
      clock.advance(50)
      await settle()
    }
  }
  const c = new FenceCore({ clock, log: { event: () => {} }, removeVip: slowRemove, addresses: async () => (reads++, new Set(present)), reply: () => {} })
  c.push(holdLine(1, 100, 'eth0', [{ address: '192.0.2.1', prefix: 24 }]))
  await run(200) // the lease ended: the removal runs
  let ended = false
  void c.end().then(() => (ended = true))
  await run(500)
  t.equal(ended, false, 'carpd gone mid-removal: end() waits for it')
  await run(1000 + FENCE_AFTERMATH_CHECK_MS)
  t.ok(reads > 0, 'then watches')
  await run(FENCE_AFTERMATH_MS)
  t.equal(ended, true, 'and ends after the watch')

  const d = new FenceCore({ clock, log: { event: () => {} }, removeVip: slowRemove, addresses: async () => (reads++, new Set(present)), reply: () => {} })
  present.add('192.0.2.1')
  d.push(holdLine(1, clock.now() + 100, 'eth0', [{ address: '192.0.2.1', prefix: 24 }]))
  await run(200)
  d.push(holdLine(1, clock.now() + 60_000, 'eth0', [{ address: '192.0.2.1', prefix: 24 }])) // carpd holds it again mid-removal
  const before = reads
  await run(1000 + FENCE_AFTERMATH_MS)
  t.equal(reads, before, 'no watch over a vhid carpd holds again')
  t.same(d.guarded, [1])
})

t.test('earlierFences: the processes whose command line is this node\'s fence and that are not our children', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'carpd-proc-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const argv = ['/usr/bin/node', '/cf/carpd.js', 'fence', 'fw-a']
  const write = (pid: number, ppid: number, args: string[], name = 'node') => {
    mkdirSync(join(dir, String(pid)))
    writeFileSync(join(dir, String(pid), 'cmdline'), args.join('\0') + '\0')
    writeFileSync(join(dir, String(pid), 'stat'), `${pid} (${name}) S ${ppid} ${pid} ${pid} 0 -1\n`)
  }
  write(101, 1, ['/usr/local/bin/node', '/cf/carpd.js', 'fence', 'fw-a'], 'no de) x') // orphaned: an earlier run's
  write(102, process.pid, argv) // our own fence
  write(103, 1, ['/usr/bin/node', '/cf/carpd.js', 'fence', 'fw-b']) // another node's
  write(104, 1, ['/usr/bin/node', '/cf/carpd.js', 'run']) // a carpd
  write(process.pid, 1, argv)
  mkdirSync(join(dir, 'self'))
  mkdirSync(join(dir, '105')) // gone meanwhile: no files
  t.same(earlierFences(argv, dir), [101], 'fw-a\'s orphaned fence only (any node binary, a name with ") " in it)')
  t.same(earlierFences(argv, join(dir, 'nosuch')), [], 'no /proc: none')
})
