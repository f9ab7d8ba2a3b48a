import t from 'tap'
import { createSocket } from 'node:dgram'
import type { ControlReply, ControlRequest } from '../../src/control.js'
import { controlRequest, startControlServer } from '../../src/io/control.js'
import { freeUdpPort } from '../helpers/ports.js'

t.test('request and reply over loopback UDP', async (t) => {
  const port = await freeUdpPort()
  const seen: ControlRequest[] = []
  const server = await startControlServer(port, (req) => {
    seen.push(req)
    return { ok: false, error: 'test reply' } satisfies ControlReply
  })
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
  const first = await startControlServer(port, () => ({ ok: false, error: '' }))
  t.teardown(() => first.close())
  await t.rejects(startControlServer(port, () => ({ ok: false, error: '' })), { code: 'EADDRINUSE' })
})
