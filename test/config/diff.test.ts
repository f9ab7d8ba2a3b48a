import t from 'tap'
import { restartChanges, restartNote } from '../../src/config/diff.js'
import { makeConfig, vhidConfig } from '../helpers/agents.js'
import { wanConfig } from '../helpers/wan-runtime.js'

t.test('restart-only changes: none for the same file, each named, secrets without their values', async (t) => {
  const old = makeConfig('a', [vhidConfig()])
  t.same(restartChanges(old, makeConfig('a', [vhidConfig({ advskew: 50 })])), [], 'a vhid change is the reload\'s own')
  const next = makeConfig('b', [vhidConfig()])
  next.sync = { ...next.sync, interface: 'sync0', peer: { address: '198.51.100.2', port: 8242 }, key: 'k' }
  next.witness = { ...next.witness, leaseMs: 1000 }
  const changes = restartChanges(old, next)
  t.same(changes.map((c) => c.key), ['node', 'sync.interface', 'sync.peer', 'witness.lease', 'sync.key'])
  t.same(changes.map(restartNote), [
    'node changed (a -> b): takes effect after a restart',
    'sync.interface changed ( -> sync0): takes effect after a restart',
    'sync.peer changed ((none) -> 198.51.100.2:8242): takes effect after a restart',
    'witness.lease changed (3000 ms -> 1000 ms): takes effect after a restart',
    'sync.key changed: takes effect after a restart',
  ])
  t.same(changes.at(-1), { key: 'sync.key', from: null, to: null }, 'no secret in a change')
})

t.test('multi-WAN: its settings are the reload\'s own, but not turning it on or off or changing the rules flavour', async (t) => {
  const off = makeConfig('a', [vhidConfig()])
  const on = { ...off, wans: [wanConfig(1), wanConfig(2)] }
  t.same(restartChanges(on, { ...on, wans: [wanConfig(1, { weight: 3 })] }), [], 'a WAN changed or removed applies in place')
  t.same(restartChanges(off, on).map(restartNote), ['wan changed (off -> 2 WANs): takes effect after a restart'])
  t.same(restartChanges(on, off).map((c) => c.key), ['wan'])
  t.same(restartChanges(on, { ...on, wanRules: 'nft' }).map(restartNote), ['wan.rules changed (iptables -> nft): takes effect after a restart'])
})

t.test('the console and syslog settings take effect after a restart (the logger is made at start)', async (t) => {
  const old = makeConfig('a', [vhidConfig()])
  const next = { ...old, log: { format: 'short' as const, syslog: { address: '192.0.2.9', port: 0 }, facility: 'local3' as const } }
  t.same(restartChanges(old, next).map(restartNote), [
    'log.format changed (full -> short): takes effect after a restart',
    'log.syslog changed ((none) -> 192.0.2.9): takes effect after a restart',
    'log.syslog.facility changed (daemon -> local3): takes effect after a restart',
  ])
})
