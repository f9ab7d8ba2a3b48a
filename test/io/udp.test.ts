// The election once more, over real UDP sockets on loopback with the real clock.
import t from 'tap'
import { createSocket } from 'node:dgram'
import { Agent } from '../../src/carp/agent.js'
import { Demotions } from '../../src/daemon/demotion.js'
import { realClock } from '../../src/io/clock.js'
import { openUdpTransport } from '../../src/io/udp.js'
import { dualTransport } from '../../src/io/transport.js'
import { decodeCarp } from '../../src/wire/carp.js'
import { makeConfig, RecordingPlatform, vhidConfig } from '../helpers/agents.js'
import { freeUdpPort } from '../helpers/ports.js'

const LO = '127.0.0.1'
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

async function startNode(name: string, port: number, peerPort: number, advskew: number) {
  const config = makeConfig(name, [vhidConfig({ advbaseS: 0, advskew, peers: [{ address: LO, port: peerPort }] })], { port })
  const transport = await openUdpTransport({ port, bindAddress: LO, multicastInterfaces: new Map() })
  const lines: string[] = []
  const demotions: Demotions = new Demotions((total, why) => agent.demoteChanged(total, why))
  const agent: Agent = new Agent({
    carp: config.carp,
    demotion: demotions,
    clock: realClock(),
    transport,
    platform: new RecordingPlatform(),
    log: { event: (sub, msg) => lines.push(`${sub} ${msg}`) },
    random: (n) => Buffer.alloc(n, name.charCodeAt(0)),
    interfaceNet: () => ({ address: LO, prefix: 8 }),
    multicastInterfaces: new Set<string>(),
  })
  return { agent, transport, lines }
}

t.test('a pair elects one master over loopback UDP and the backup takes over when it stops', async (t) => {
  const [pa, pb] = [await freeUdpPort(), await freeUdpPort()]
  // Sub-second mode: advskew 10 → adverts every 39 ms, master down after 117 ms.
  const a = await startNode('a', pa, pb, 10)
  const b = await startNode('b', pb, pa, 40)
  t.teardown(async () => {
    await a.transport.close()
    await b.transport.close()
  })
  a.agent.start()
  b.agent.start()
  await sleep(600)
  const st = (n: typeof a) => n.agent.status().vhids[0]!.state
  t.equal(st(a), 'MASTER')
  t.equal(st(b), 'BACKUP')
  t.ok(b.agent.status().vhids[0]!.received >= 5, `b heard a's adverts (${b.agent.status().vhids[0]!.received})`)
  t.same(b.agent.status().drops.badAuth, 0)
  await a.agent.stop()
  await sleep(50)
  t.equal(st(b), 'MASTER', 'bow-out over UDP')
  t.match(b.lines.join('\n'), /bowed out/)
  await b.agent.stop()
})

t.test('adverts on the wire are 36-byte CARP headers', async (t) => {
  const [pa, listen] = [await freeUdpPort(), await freeUdpPort()]
  const sniff = createSocket('udp4')
  const got: Buffer[] = []
  sniff.on('message', (m) => got.push(m))
  await new Promise<void>((r) => sniff.bind(listen, LO, r))
  const a = await startNode('a', pa, listen, 1)
  t.teardown(async () => {
    await a.transport.close()
    sniff.close()
  })
  a.agent.start()
  await sleep(300)
  await a.agent.stop()
  t.ok(got.length >= 3, `${got.length} adverts`)
  const d = decodeCarp(got[0]!)
  t.ok(d.ok && d.advert.vhid === 1 && d.advert.advskew === 1 && d.advert.advbase === 0)
})

t.test('binding a port in use fails with an error', async (t) => {
  const port = await freeUdpPort()
  const first = await openUdpTransport({ port, bindAddress: LO, multicastInterfaces: new Map() })
  t.teardown(() => first.close())
  await t.rejects(openUdpTransport({ port, bindAddress: LO, multicastInterfaces: new Map() }), { code: 'EADDRINUSE' })
})

t.test('a transport that joined 224.0.0.18 still sends and receives unicast', async (t) => {
  // Multicast delivery itself needs two hosts (the namespace lab, next issue).
  const [port, other] = [await freeUdpPort(), await freeUdpPort()]
  const tr = await openUdpTransport({ port, bindAddress: '0.0.0.0', multicastInterfaces: new Map([['lo', LO]]), multicastGroup: '224.0.0.18', ttl: 255 })
  const peer = await openUdpTransport({ port: other, bindAddress: LO, multicastInterfaces: new Map() })
  t.teardown(async () => {
    await tr.close()
    await peer.close()
  })
  const got = new Promise<{ payload: Buffer; from: { address: string; port: number } }>((resolve) =>
    peer.onPacket((payload, from) => resolve({ payload, from })),
  )
  await tr.send(Buffer.from('hello'), { address: LO, port: other }, 'lo')
  const { payload, from } = await got
  t.equal(payload.toString(), 'hello')
  t.same(from, { address: LO, port }, 'sent from the CARP port, so the rank is stable')
})

t.test('multicast sends on different interfaces set the outgoing interface one at a time', async (t) => {
  const { udpTransport } = await import('../../src/io/udp.js')
  const calls: string[] = []
  const pending = new Map<string, () => void>()
  const fake = {
    setMulticastInterface: (addr: string) => calls.push(`if ${addr}`),
    send: (_p: Buffer, port: number, addr: string, cb: (err: Error | null) => void) => {
      calls.push(`send ${addr}:${port}`)
      pending.set(`${addr}:${port}`, () => cb(port === 666 ? new Error('ENETUNREACH') : null))
    },
  }
  const tr = udpTransport(fake as never, new Map([['lan0', '192.0.2.2'], ['lan1', '198.51.100.2']]), '224.0.0.18')
  const group = (port = 8240) => ({ address: '224.0.0.18', port })
  const first = tr.send(Buffer.alloc(1), group(666), 'lan0')
  const second = tr.send(Buffer.alloc(1), group(), 'lan1')
  const unicast = tr.send(Buffer.alloc(1), { address: '192.0.2.3', port: 8240 }, 'lan0')
  await new Promise((r) => setImmediate(r))
  t.same(calls, ['send 192.0.2.3:8240', 'if 192.0.2.2', 'send 224.0.0.18:666'], 'unicast goes at once; lan1 waits')
  pending.get('224.0.0.18:666')!() // the first multicast send fails
  await t.rejects(first, /ENETUNREACH/)
  await new Promise((r) => setImmediate(r))
  t.same(calls.slice(3), ['if 198.51.100.2', 'send 224.0.0.18:8240'], 'a failed send does not block the next')
  pending.get('224.0.0.18:8240')!()
  pending.get('192.0.2.3:8240')!()
  await second
  await unicast
})

t.test('multicast interfaces without a group are refused, and the socket is not left bound', async (t) => {
  const port = await freeUdpPort()
  await t.rejects(openUdpTransport({ port, bindAddress: '0.0.0.0', multicastInterfaces: new Map([['lo', LO]]) }), /without a group/)
  const again = await openUdpTransport({ port, bindAddress: LO, multicastInterfaces: new Map() })
  await again.close()
})

t.test('IPv6: a v6-only socket on ::1 and a v4 one on the same port, one receiver through dualTransport', async (t) => {
  const port = await freeUdpPort()
  const v4 = await openUdpTransport({ port, bindAddress: LO, multicastInterfaces: new Map() })
  const v6 = await openUdpTransport({ port, bindAddress: '::1', ipv6: true, multicastInterfaces: new Map(), ttl: 255 })
  const both = dualTransport(v4, v6)
  t.teardown(() => both.close())
  const got: string[] = []
  both.onPacket((payload, from) => got.push(`${payload.toString()} from ${from.address}`))
  await both.send(Buffer.from('four'), { address: LO, port })
  await both.send(Buffer.from('six'), { address: '::1', port })
  for (let i = 0; i < 50 && got.length < 2; i++) await sleep(10)
  t.same(got.sort(), ['four from 127.0.0.1', 'six from ::1'], 'each family by its own socket, the sender as the kernel names it')
})

t.test('IPv6 link-local: a unicast peer is sent to through the named interface; a source comes without its zone, which names the interface', async (t) => {
  const { udpTransport } = await import('../../src/io/udp.js')
  const sent: string[] = []
  let onMessage: ((msg: Buffer, rinfo: { address: string; port: number }) => void) | null = null
  const fake = {
    setMulticastInterface: () => {},
    send: (_p: Buffer, port: number, addr: string, cb: (err: Error | null) => void) => (sent.push(`${addr} ${port}`), cb(null)),
    removeAllListeners: () => {},
    on: (_e: string, fn: typeof onMessage) => (onMessage = fn),
  }
  const tr = udpTransport(fake as never, new Map([['lan0', '::%lan0']]), 'ff02::12')
  await tr.send(Buffer.alloc(1), { address: 'fe80::2', port: 8240 }, 'lan0')
  await tr.send(Buffer.alloc(1), { address: '2001:db8::2', port: 8240 }, 'lan0')
  t.same(sent, ['fe80::2%lan0 8240', '2001:db8::2 8240'], 'the zone only where the address needs one')
  const got: string[] = []
  tr.onPacket((_p, from, iface) => got.push(`${from.address} ${from.port} ${iface}`))
  onMessage!(Buffer.alloc(1), { address: 'fe80::1%lan0', port: 8240 })
  onMessage!(Buffer.alloc(1), { address: '192.0.2.1', port: 8240 })
  t.same(got, ['fe80::1 8240 lan0', '192.0.2.1 8240 undefined'], 'the zone comes apart, as the interface it came in on')
})
