// The board in-process: openBoard on in-memory edges, its failures (each closing what
// it opened), a board with state sync, a serial line and multi-WAN built from fakes,
// start and stop in order, reload and the demotion counter.
import t from 'tap'
import type { Config } from '../../src/config/types.js'
import { Board, type BoardIo, openBoard } from '../../src/daemon/board.js'
import { Demotions } from '../../src/daemon/demotion.js'
import type { Transport } from '../../src/io/transport.js'
import type { UdpOptions } from '../../src/io/udp.js'
import type { SyncBackend } from '../../src/sync/backend.js'
import { makeConfig, memIo, RecordingPlatform, vhidConfig } from '../helpers/agents.js'
import { FakeClock } from '../helpers/clock.js'
import { MemNet } from '../helpers/net.js'
import { FakeWanApplier, wanConfig } from '../helpers/wan-runtime.js'

const NET = { address: '192.0.2.2', prefix: 24 }

function edges(clock: FakeClock, events: string[], over: Partial<BoardIo> = {}): BoardIo {
  const net = new MemNet(clock, 1)
  let n = 0
  const backend: SyncBackend = {
    watch: () => {},
    snapshot: async () => {},
    load: async () => ({ loaded: 0, skipped: 0, failed: 0 }),
    remove: async () => {},
    stop: () => void events.push('backend stop'),
    counters: () => ({ badLines: 0, watchRestarts: 0, loadFailures: 0 }),
  } as unknown as SyncBackend
  return {
    ...memIo(new RecordingPlatform(), NET),
    openUdp: async (opts) => {
      const tr: Transport = net.transport({ address: opts.bindAddress === '0.0.0.0' ? NET.address : opts.bindAddress, port: opts.port || 40000 + n++ })
      events.push(`open ${opts.bindAddress}:${opts.port}${opts.ttl ? ` ttl ${opts.ttl}` : ''}${opts.multicastGroup && opts.multicastInterfaces.size ? ` join ${opts.multicastGroup}` : ''}`)
      return { ...tr, close: async () => void events.push(`close ${opts.bindAddress}:${opts.port}`) }
    },
    startControl: async (port) => {
      events.push(`control ${port}`)
      return { close: async () => void events.push(`control closed`) }
    },
    syncBackend: () => backend,
    serialPort: () => ({ start: () => void events.push('serial start'), send: () => {}, status: () => ({ device: '/dev/x', open: true, opens: 1, writeErrors: 0, notOpen: 0, reader: { frames: 0, garbage: 0, badCrc: 0, badField: 0, tooLong: 0 } }) as never, close: async () => void events.push('serial close') }),
    wanApplier: () => new FakeWanApplier(clock),
    ...over,
  }
}

const deps = (config: Config, clock: FakeClock, io: BoardIo) => ({ config, clock, log: { event: () => {} }, random: (k: number) => Buffer.alloc(k, 7), io })

t.test('openBoard: a missing interface, a socket that cannot open, a control port in use: each says why and closes what it opened', async (t) => {
  const clock = new FakeClock(0)
  const events: string[] = []
  const config = makeConfig('a', [vhidConfig()])
  const noIface = await openBoard(deps(config, clock, edges(clock, events, { interfaceNet: () => undefined })))
  t.equal(noIface, 'carp.1.interface = lan0: no such interface with an IPv4 address')
  const synced: Config = { ...config, sync: { ...config.sync, interface: 'sync0', peer: { address: '198.51.100.2', port: 0 }, key: 'k', backend: 'conntrack' } }
  events.length = 0
  const busy = await openBoard(deps(synced, clock, edges(clock, events, {
    openUdp: async (opts) => {
      if (opts.bindAddress !== '0.0.0.0') throw new Error('EADDRINUSE')
      events.push('open carp')
      return { send: async () => {}, onPacket: () => {}, close: async () => void events.push('close carp') }
    },
  })))
  t.equal(busy, 'cannot open the sync socket on 192.0.2.2:8242: EADDRINUSE')
  t.same(events, ['open carp', 'close carp'], 'the CARP socket opened before is closed again')
  t.equal(await openBoard(deps({ ...synced, sync: { ...synced.sync, backend: 'pf' } }, clock, edges(clock, []))), 'sync.backend = pf: the pf backend is not part of this version (use conntrack on Linux)')
  events.length = 0
  const noControl = await openBoard(deps(config, clock, edges(clock, events, { startControl: async () => { throw new Error('EADDRINUSE') } })))
  t.equal(noControl, 'cannot open the control socket on 127.0.0.1:8239: EADDRINUSE')
  t.same(events, ['open 0.0.0.0:8240 ttl 255 join 224.0.0.18', 'close 0.0.0.0:8240'])
})

t.test('a board with sync, serial line, witness and multi-WAN: built from the edges, started and stopped in order', async (t) => {
  const clock = new FakeClock(0)
  const events: string[] = []
  const base = makeConfig('a', [vhidConfig()])
  const config: Config = {
    ...base,
    sync: { ...base.sync, interface: 'sync0', peer: { address: '198.51.100.2', port: 0 }, key: 'k', backend: 'conntrack' },
    serial: { device: '/dev/ttyS1', baud: 19200 },
    witness: { ...base.witness, address: { address: '203.0.113.50', port: 0 }, key: 'w' },
    wans: [wanConfig(1), wanConfig(2)],
  }
  let fenced = 0
  const lines: string[] = []
  const io = edges(clock, events, { spawnFence: () => (fenced++, { hold: () => {}, drop: () => {}, close: () => void events.push('fence close') }), pickupWarning: () => 'pickup is on' })
  const board = await openBoard({ ...deps(config, clock, io), log: { event: (sub: string, text: string) => void lines.push(`${sub} ${text}`) } })
  if (typeof board === 'string') throw new Error(board)
  t.ok(board.sync && board.quorum && board.wan, 'every subsystem built')
  t.equal(board.quorum!.mode, 'witness')
  t.same(events, ['open 0.0.0.0:8240 ttl 255 join 224.0.0.18', 'open 192.0.2.2:8242 ttl 255', 'open 0.0.0.0:0', 'control 8239'])
  await board.start()
  t.equal(fenced, 1, 'the fence is spawned at start, with a witness')
  t.ok(lines.includes('sync warning: pickup is on'), "the kernel's loose TCP pickup is warned about at start, with sync on conntrack")
  t.ok(events.includes('serial start'))
  const status = board.status()
  t.equal(status.node, 'a')
  t.ok(status.sync && status.quorum && status.wan, 'the status has every part')
  t.same(Object.keys(status), ['node', 'version', 'uptimeMs', 'maint', 'demote', 'vhids', 'drops', 'sendErrors', 'platformFailures', 'repairs', 'links', 'sync', 'quorum', 'wan', 'bugs'], 'the JSON keys in their order (repairs is new)')
  // A takeover loads the peer's states, then multi-WAN looks for dead WANs' connections.
  const order: string[] = []
  const [syncPromoted, wanPromoted] = [board.sync!.promoted.bind(board.sync), board.wan!.promoted.bind(board.wan)]
  board.sync!.promoted = () => (order.push('sync'), syncPromoted())
  board.wan!.promoted = () => (order.push('wan'), wanPromoted())
  await (board.agent as unknown as { sync: { promoted(): Promise<void> } }).sync.promoted()
  t.same(order, ['sync', 'wan'], "the agent's takeover reaches state sync, then multi-WAN")
  // wan.* changes apply in place; turning multi-WAN off waits for a restart.
  t.same(board.reload({ ...config, wans: [wanConfig(1, { weight: 2 }), wanConfig(2)] }), ['wan1 settings changed'])
  t.same(board.reload({ ...config, wans: [] }), ['wan changed (2 WANs -> off): takes effect after a restart'])
  events.length = 0
  await board.stop()
  t.same(events.filter((e) => !e.startsWith('open')), ['close 192.0.2.2:0', 'close 192.0.2.2:0', 'fence close', 'serial close', 'backend stop', 'control closed', 'close 0.0.0.0:0', 'close 192.0.2.2:8242', 'close 0.0.0.0:8240'], 'runtimes first (the WAN probes\' sockets, the fence, the serial line, the sync backend), then the closers in reverse')
  await board.stop()
  t.equal(events.filter((e) => e === 'control closed').length, 1, 'a second stop does nothing')
})

t.test('reload: a missing interface is refused; otherwise CARP changes in place and the rest is noted', async (t) => {
  const clock = new FakeClock(0)
  const lines: string[] = []
  const config = makeConfig('a', [vhidConfig()])
  const io = { ...edges(clock, []), interfaceNet: (iface: string) => (iface === 'lan0' ? NET : undefined) }
  const board = new Board({ ...deps(config, clock, io), log: { event: (sub, msg) => lines.push(`${sub} ${msg}`) } }, { carp: new MemNet(clock, 1).transport({ address: NET.address, port: 8240 }), sync: null, witness: null, nets: new Map([['lan0', NET]]) })
  await board.start()
  t.equal(board.reload(makeConfig('a', [vhidConfig(), vhidConfig({ vhid: 2, interface: 'lan9' })])), null)
  t.match(lines.join('\n'), /carp\.2\.interface = lan9: no such interface/)
  t.same(board.reload(makeConfig('a', [vhidConfig({ advskew: 50 })])), ['vhid 1: advskew 0 -> 50'])
  t.match(lines.join('\n'), /config reload: vhid 1: advskew 0 -> 50/)
  await board.stop()
})

t.test("reload: a WAN is NATed to a VIP only when the agent runs its vhid (review: one held back until a restart has no board answering for it)", async (t) => {
  const clock = new FakeClock(0)
  const applier = new FakeWanApplier(clock)
  const WAN0 = { address: '203.0.113.2', prefix: 28 }
  const wans = [wanConfig(1, { interface: 'wan0', gateway: '203.0.113.1' })]
  const config: Config = { ...makeConfig('a', [vhidConfig()]), wans }
  const netOf = (iface: string) => (iface === 'lan0' ? NET : iface === 'wan0' ? WAN0 : undefined)
  const io = { ...edges(clock, []), wanApplier: () => applier, interfaceNet: netOf, addressNow: (iface: string) => netOf(iface)?.address ?? null }
  const board = new Board({ ...deps(config, clock, io) }, { carp: new MemNet(clock, 1).transport({ address: NET.address, port: 8240 }), sync: null, witness: null, nets: new Map([['lan0', NET]]) })
  await board.start()
  const onWan0 = vhidConfig({ vhid: 2, interface: 'wan0', vips: [{ address: '203.0.113.4', prefix: 28 }] })
  const notes = board.reload({ ...config, carp: { ...config.carp, vhids: [vhidConfig(), onWan0] }, wans: [{ ...wans[0]!, natAddress: '203.0.113.4', vipInterfaces: ['carp2'] }] })
  t.match(notes, ['vhid 2: multicast to 224.0.0.18 on wan0 takes effect after a restart'], 'vhid 2 waits for a restart (the socket never joined wan0)')
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r))
  const loads = applier.calls.filter((c) => c.what === 'loadRules')
  t.ok(loads.length > 0, 'the rules were loaded')
  t.notOk(loads.some((c) => c.text!.includes('203.0.113.4')), 'no rule NATs to the VIP no board holds yet')
  t.match(loads.at(-1)!.text, /SNAT --to-source 203\.0\.113\.2/, "the board's own address instead")
  await board.stop()
})

t.test('the demotion counter: shares by reason, capped, a change heard once', async (t) => {
  const heard: string[] = []
  const d = new Demotions((total, why) => heard.push(`${total} ${why}`))
  d.set('link:lan0', 240, 'down')
  d.set('sync', 32, 'waiting')
  d.set('sync', 32, 'again')
  t.equal(d.total(), 255, 'capped at 255')
  t.same(d.shares(), { 'link:lan0': 240, sync: 32 })
  d.set('link:lan0', 0, 'up')
  t.same(heard, ['240 down', '255 waiting', '32 up'])
  t.equal(d.get('link:lan0'), 0)
})

t.test('openBoard: an IPv6-only vhid gets an IPv6 socket on the CARP port joining ff02::12 on its interface, no IPv4 address needed', async (t) => {
  const clock = new FakeClock(0)
  const events: string[] = []
  const opened: UdpOptions[] = []
  const config = makeConfig('a', [vhidConfig(), vhidConfig({ vhid: 2, interface: 'lan6', vips: [{ address: '2001:db8::1', prefix: 64 }], vmac: true })])
  const io = edges(clock, events, { interfaceNet: (iface) => (iface === 'lan0' ? NET : undefined) })
  const openUdp = io.openUdp
  const board = await openBoard(deps(config, clock, { ...io, openUdp: (opts) => (opened.push(opts), openUdp(opts)) }))
  if (typeof board === 'string') throw new Error(board)
  t.same(events.slice(0, 2), ['open 0.0.0.0:8240 ttl 255 join 224.0.0.18', 'open :::8240 ttl 255 join ff02::12'])
  t.match(opened[1], { ipv6: true, bindAddress: '::', multicastGroup: 'ff02::12' })
  t.same([...opened[1]!.multicastInterfaces], [['lan6', '::%lan6']], 'joined on the interface, named as the scope of ::')
  t.same([...opened[1]!.sendInterfaces!], [['carp2', '::%carp2']], 'its virtual MAC sends by scope too')
  t.same([...opened[0]!.multicastInterfaces], [['lan0', '192.0.2.2']], 'the IPv4 socket joins only where IPv4 vhids are')
  t.equal((board.agent as unknown as { deps: { ipv6Socket: boolean } }).deps.ipv6Socket, true, 'the agent knows it has an IPv6 socket')
  await board.stop()
  t.ok(events.includes('close :::8240') && events.includes('close 0.0.0.0:8240'), 'both closed')
  const typo = await openBoard(deps(config, clock, { ...io, hasInterface: (iface) => iface !== 'lan6' }))
  t.equal(typo, 'carp.2.interface = lan6: no such interface', 'an IPv6 vhid on a missing interface is refused at start')
  const mixed = makeConfig('a', [vhidConfig({ vips: [{ address: '2001:db8::1', prefix: 64 }, { address: '192.0.2.1', prefix: 24 }], vmac: true })])
  opened.length = 0
  const m = await openBoard(deps(mixed, clock, { ...io, openUdp: (opts) => (opened.push(opts), openUdp(opts)) }))
  if (typeof m === 'string') throw new Error(m)
  t.same([...opened[0]!.sendInterfaces!], [['carp1', '192.0.2.1']], 'a vhid with both families names its macvlan by its first IPv4 VIP')
  t.equal(opened.length, 1, 'and needs no IPv6 socket')
  await m.stop()
})
