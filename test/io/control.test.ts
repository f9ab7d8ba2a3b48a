import t from 'tap'
import { createSocket } from 'node:dgram'
import { type ControlReply, type ControlRequest, answerRequest } from '../../src/control/protocol.js'
import { CONTROL_PART_BYTES, answerBudget, replyTo, controlRequest, partAssembler, replyParts, startControlServer } from '../../src/io/control.js'
import { freeUdpPort } from '../helpers/ports.js'

/** The board's way of answering: control/protocol.ts around a handler. */
const serve = (handle: (req: ControlRequest) => ControlReply) => (bytes: Buffer) => answerRequest(bytes, handle)

t.test('request and reply over loopback UDP', async (t) => {
  const port = await freeUdpPort()
  const seen: ControlRequest[] = []
  const server = await startControlServer(port, serve((req) => {
    seen.push(req)
    return { ok: false, error: 'test reply' } satisfies ControlReply
  }))
  t.teardown(() => server.close())
  t.same(await controlRequest(port, { cmd: 'maint', on: true }), { ok: false, error: 'test reply' })
  t.same(seen, [{ cmd: 'maint', on: true }])
  // A malformed datagram gets an error reply and never reaches the handler.
  const raw = createSocket('udp4')
  const reply = new Promise<string>((resolve) => raw.on('message', (m) => resolve(m.toString())))
  raw.send('garbage', port, '127.0.0.1')
  t.same(JSON.parse(await reply), { ok: false, error: 'request is not JSON' })
  raw.close()
  t.equal(seen.length, 1)
})

t.test('no agent: the client times out with a message that says what to check', async (t) => {
  const port = await freeUdpPort()
  await t.rejects(controlRequest(port, { cmd: 'status' }, 200), /no answer from carpd on 127\.0\.0\.1:\d+ within 200 ms/)
})

t.test('a reply that is not JSON is an error', async (t) => {
  const port = await freeUdpPort()
  const fake = createSocket('udp4')
  fake.on('message', (_m, rinfo) => fake.send('not json', rinfo.port, rinfo.address))
  await new Promise<void>((r) => fake.bind(port, '127.0.0.1', r))
  t.teardown(() => fake.close())
  await t.rejects(controlRequest(port, { cmd: 'status' }), /not JSON/)
})

t.test('the control port in use is an error at start', async (t) => {
  const port = await freeUdpPort()
  const first = await startControlServer(port, serve(() => ({ ok: false, error: '' })))
  t.teardown(() => first.close())
  await t.rejects(startControlServer(port, serve(() => ({ ok: false, error: '' }))), { code: 'EADDRINUSE' })
})

t.test('hardening: a datagram from the agent\'s own address and port, or a reply, gets no answer (no loop)', async (t) => {
  const handled: ControlRequest[] = []
  const handle = (req: ControlRequest): ControlReply => (handled.push(req), { ok: false, error: 'x' })
  const status = Buffer.from(JSON.stringify({ cmd: 'status' }))
  t.same(replyTo(status, { address: '127.0.0.1', port: 8239 }, 8239, serve(handle)), [], 'from itself: silence')
  t.same(replyTo(Buffer.from('garbage'), { address: '127.0.0.1', port: 8239 }, 8239, serve(handle)), [], 'garbage from itself: silence too')
  t.same(replyTo(Buffer.from(JSON.stringify({ ok: false, error: 'unknown command' })), { address: '127.0.0.1', port: 40000 }, 8239, serve(handle)), [], 'a reply: silence')
  t.equal(handled.length, 0)
  t.equal(replyTo(status, { address: '127.0.0.1', port: 40000 }, 8239, serve(handle)).length, 1, 'a client gets its answer')
})

t.test('review: answers have a budget per second, so a flood cannot starve the agent', async (t) => {
  let now = 0
  const budget = answerBudget(20, () => now)
  let given = 0
  for (let i = 0; i < 1000; i++) if (budget()) given++
  t.equal(given, 20, 'a burst of 20')
  now = 500
  given = 0
  for (let i = 0; i < 1000; i++) if (budget()) given++
  t.equal(given, 10, 'then 20 a second')
})

t.test('hardening: a reply larger than a datagram goes in parts and comes out whole', async (t) => {
  const port = await freeUdpPort()
  const big = 'é'.repeat(150_000) // 300,000 bytes of UTF-8, slices cut inside characters
  const server = await startControlServer(port, serve(() => ({ ok: false, error: big })))
  t.teardown(() => server.close())
  const reply = await controlRequest(port, { cmd: 'status' })
  t.same(reply, { ok: false, error: big })
  t.equal(replyParts(JSON.stringify(reply)).length, Math.ceil(Buffer.byteLength(JSON.stringify(reply)) / CONTROL_PART_BYTES))
  const assemble = partAssembler()
  t.throws(() => assemble(Buffer.from('carpd-part 9/3\nxx')), /cannot be read/)
  t.throws(() => partAssembler()(Buffer.from('carpd-part 1/99\nxx')), /cannot be read/)
  const two = partAssembler()
  t.equal(two(Buffer.from('carpd-part 2/2\nb')), null)
  t.equal(two(Buffer.from('carpd-part 1/2\na')), 'ab', 'parts in any order')
  const mixed = partAssembler()
  mixed(Buffer.from('carpd-part 1/2\na'))
  t.throws(() => mixed(Buffer.from('{"ok":true}')), /mixed/)
  t.throws(() => mixed(Buffer.from('carpd-part 1/3\na')), /two replies/)
})
