import t from 'tap'
import { EventEmitter } from 'node:events'
import { PassThrough, Writable } from 'node:stream'
import type { ChildProcess } from 'node:child_process'
import type { CommandResult, Runner } from '../../src/platform/exec.js'
import { batchable, ipBatchRunner } from '../../src/platform/ip-batch.js'

/** A stand-in for `ip -force -batch -`: each line is a command; lines naming "nosuch" (and the marker) fail as ip says. */
function fakeIp(opts: { hang?: boolean } = {}) {
  const spawned: FakeProc[] = []
  class FakeProc extends EventEmitter {
    readonly stderr = new PassThrough()
    readonly lines: string[] = []
    killed = false
    readonly stdin = new Writable({
      write: (chunk: Buffer, _enc, done) => {
        for (const l of chunk.toString().split('\n').filter(Boolean)) {
          this.lines.push(l)
          if (opts.hang) continue
          const n = this.lines.length
          if (l.includes('carpd.batch.marker')) this.stderr.write(`Device "carpd.batch.marker" does not exist.\nCommand failed -:${n}\n`)
          else if (l.includes('nosuch')) this.stderr.write(`Cannot find device "nosuch"\nCommand failed -:${n}\n`)
          else if (l.includes('192.0.2.9')) this.stderr.write(`Error: ipv4: Address already assigned.\nCommand failed -:${n}\n`)
        }
        done()
      },
    })
    kill(): boolean {
      this.killed = true
      this.emit('exit', null, 'SIGKILL')
      return true
    }
  }
  const spawnIp = () => {
    const p = new FakeProc()
    spawned.push(p)
    return p as unknown as ChildProcess
  }
  return { spawned, spawnIp }
}

const fallbackCalls: string[] = []
const fallback: Runner = async (argv) => {
  fallbackCalls.push(argv.join(' '))
  return { code: 0, stdout: 'out', stderr: '', timedOut: false }
}

t.test('batchable: VIP and link changes with plain arguments, nothing else', async (t) => {
  t.equal(batchable(['ip', '-4', 'addr', 'add', '192.0.2.1/24', 'dev', 'carp1']), 'addr add 192.0.2.1/24 dev carp1')
  t.equal(batchable(['ip', 'addr', 'del', '192.0.2.1/24', 'dev', 'eth0']), 'addr del 192.0.2.1/24 dev eth0')
  t.equal(batchable(['ip', 'link', 'set', 'dev', 'carp1', 'up']), 'link set dev carp1 up')
  t.equal(batchable(['ip', '-6', 'addr', 'add', '2001:db8::1/64', 'dev', 'carp1', 'nodad']), 'addr add 2001:db8::1/64 dev carp1 nodad', 'IPv6: ip takes the family from the address')
  t.equal(batchable(['ip', '-j', '-4', 'addr', 'show', 'dev', 'eth0']), null, 'output wanted: its own process')
  t.equal(batchable(['ip', 'link', 'add', 'link', 'eth0', 'name', 'carp1']), null)
  t.equal(batchable(['arping', '-U', '192.0.2.1']), null)
  t.equal(batchable(['ip', 'addr', 'add', '192.0.2.1/24', 'dev', 'a b']), null, 'a space would split the line')
  t.equal(batchable(['ip', 'addr', 'add', '192.0.2.1/24', 'dev', 'x"y']), null)
  t.equal(batchable(['ip', 'addr']), null)
})

t.test('commands go to one ip process, in order, each with its own result', async (t) => {
  const ip = fakeIp()
  const run = ipBatchRunner(fallback, ip.spawnIp)
  const results: CommandResult[] = await Promise.all([
    run(['ip', '-4', 'addr', 'add', '192.0.2.1/24', 'dev', 'carp1'], 1000),
    run(['ip', '-4', 'addr', 'add', '192.0.2.9/24', 'dev', 'carp1'], 1000),
    run(['ip', 'link', 'set', 'dev', 'carp1', 'down'], 1000),
  ])
  t.equal(ip.spawned.length, 1, 'one process for all')
  t.same(ip.spawned[0]!.lines, [
    'addr add 192.0.2.1/24 dev carp1', 'link show dev carpd.batch.marker',
    'addr add 192.0.2.9/24 dev carp1', 'link show dev carpd.batch.marker',
    'link set dev carp1 down', 'link show dev carpd.batch.marker',
  ])
  t.same(results.map((r) => r.code), [0, 1, 0])
  t.equal(results[1]!.stderr, 'Error: ipv4: Address already assigned.', "the failed command's own message, not the marker's")
  t.equal(results[0]!.stderr, '')
  const other = await run(['ip', '-j', 'addr', 'show'], 1000)
  t.equal(other.stdout, 'out', 'the rest runs as before')
  t.same(fallbackCalls, ['ip -j addr show'])
  // ip keeps interface indexes by name: a device it cannot find is looked up again by
  // a process of its own, and the next command goes to a fresh ip; so after a link add.
  const found = await run(['ip', 'link', 'set', 'dev', 'nosuch', 'up'], 1000)
  t.equal(found.stdout, 'out', 'run again as its own process')
  await run(['ip', 'link', 'set', 'dev', 'carp1', 'up'], 1000)
  t.equal(ip.spawned.length, 2, 'a fresh ip after it')
  await run(['ip', 'link', 'add', 'link', 'eth0', 'name', 'carp1', 'type', 'macvlan'], 1000)
  await run(['ip', 'link', 'set', 'dev', 'carp1', 'up'], 1000)
  t.equal(ip.spawned.length, 3, 'and after a link add')
})

t.test('a dead ip fails what waited and the next command starts another; a hung one times out and goes', async (t) => {
  const ip = fakeIp()
  const run = ipBatchRunner(fallback, ip.spawnIp)
  await run(['ip', 'link', 'set', 'dev', 'carp1', 'up'], 1000)
  ip.spawned[0]!.emit('exit', 1, null)
  const again = await run(['ip', 'link', 'set', 'dev', 'carp1', 'up'], 1000)
  t.equal(again.code, 0)
  t.equal(ip.spawned.length, 2, 'started again')
  const hung = fakeIp({ hang: true })
  const slow = ipBatchRunner(fallback, hung.spawnIp)
  const r = await slow(['ip', 'link', 'set', 'dev', 'carp1', 'up'], 20)
  t.same([r.code, r.timedOut], [1, true])
  t.ok(hung.spawned[0]!.killed, 'killed')
  const waiting = slow(['ip', 'link', 'set', 'dev', 'carp1', 'up'], 20)
  t.equal(hung.spawned.length, 2, 'a new one for the next command')
  hung.spawned[1]!.emit('exit', 1, null)
  t.match(await waiting, { code: 1, stderr: 'ip -batch exited' })
  const broken = ipBatchRunner(fallback, () => {
    throw new Error('no ip')
  })
  t.equal((await broken(['ip', 'link', 'set', 'dev', 'carp1', 'up'], 1000)).stdout, 'out', 'no ip process: each command its own')
})
