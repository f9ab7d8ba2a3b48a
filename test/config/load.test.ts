import t, { type Test } from 'tap'
import { ioError } from '../../src/config/errors.js'
import { loadConfig } from '../../src/config/load.js'
import { renderEffective } from '../../src/config/render.js'
import { SCHEMA, instantiate, type ValueType } from '../../src/config/schema.js'
import type { Config, ConfigErrorCode } from '../../src/config/types.js'
import { FILE, MINIMAL, errorsOf, load, withLines } from '../helpers/config-fixtures.js'

/** The single error of a load that must fail with exactly one. */
function onlyError(t: Test, text: string, options = {}) {
  const errors = errorsOf(load(text, options))
  t.equal(errors.length, 1, `one error: ${errors.map((e) => e.message).join(' | ')}`)
  return errors[0]!
}

function configOf(t: Test, text: string, options = {}): Config {
  const result = load(text, options)
  if (!result.ok) {
    t.fail(`load failed: ${result.errors.map((e) => e.message).join(' | ')}`)
    throw new Error('load failed')
  }
  return result.config
}

t.test('the minimal file gives the full config with every default', async (t) => {
  const result = load(MINIMAL)
  t.ok(result.ok)
  if (!result.ok) return
  t.same(result.warnings, [])
  t.same(result.config, {
    file: FILE,
    node: 'fw-a',
    board: '',
    platform: 'linux',
    controlPort: 8239,
    log: { format: 'full', syslog: null, facility: 'daemon' },
    carp: {
      port: 8240,
      preempt: true,
      preemptHolddownMs: 0,
      upscript: '',
      downscript: '',
      vhids: [
        {
          vhid: 1,
          interface: 'lan0',
          vips: [{ address: '192.0.2.1', prefix: 24 }],
          advbaseS: 1,
          advskew: 0,
          pass: 's3cret',
          peers: [],
          vmac: true,
        },
      ],
    },
    sync: { interface: '', peer: null, port: 8242, key: '', backend: 'none', bulkTimeoutMs: 30_000 },
    serial: { device: '', baud: 19200 },
    heartbeat: { intervalMs: 250, timeoutMs: 1000 },
    witness: { address: null, key: '', leaseMs: 3000, listen: null, state: '/cf/witness.state' },
    wans: [],
    wanRules: 'iptables',
    wanProbe: { intervalMs: 250, timeoutMs: 1000, window: 240, lossDown: 0.05, lossUp: 0.01, latencyDownMs: 800, latencyUpMs: 400, downRounds: 6, upRounds: 8, failbackHoldMs: 10_000 },
  })
})

t.test('a full file: every SPEC key, blocks sorted, ports 0 when omitted', async (t) => {
  const text = `
node = fw-b
platform = linux
control.port = 9000
carp.port = 9001
carp.preempt = no
carp.preempt.holddown = 30s
carp.upscript = /cf/up.sh
carp.downscript = /cf/down.sh

carp.7.interface = lan1
carp.7.vip = 198.51.100.1/24, 198.51.100.9/32
carp.7.advbase = 0
carp.7.advskew = 20
carp.7.pass = seven
carp.7.peer = 192.0.2.3:9001, 192.0.2.4

carp.1.interface = lan0
carp.1.vip = 192.0.2.1/24
carp.1.pass = one

sync.interface = sync0
sync.peer = 198.51.100.2
sync.key = sk
sync.backend = conntrack
serial.device = /dev/ttyUSB0
serial.baud = 115200
heartbeat.interval = 100ms
heartbeat.timeout = 0.5s
witness = 192.0.2.50:8241
witness.key = wk
witness.lease = 2s
witness.listen = 192.0.2.50
witness.state = /var/db/witness
wan.2.interface = wan1
wan.2.gateway = 203.0.113.129
wan.2.probe = 9.9.9.9
wan.2.tier = 2
wan.1.interface = wan0
wan.1.gateway = 203.0.113.1
wan.1.weight = 3
wan.1.probe = 203.0.113.53, 1.1.1.1
wan.rules = nft
wan.probe.interval = 500ms
wan.probe.timeout = 2s
wan.probe.window = 20
wan.probe.loss.down = 50%
wan.probe.loss.up = 0.1
wan.probe.latency.down = 300ms
wan.probe.latency.up = 150ms
`
  const config = configOf(t, text)
  t.same(config.carp, {
    port: 9001,
    preempt: false,
    preemptHolddownMs: 30000,
    upscript: '/cf/up.sh',
    downscript: '/cf/down.sh',
    vhids: [
      { vhid: 1, interface: 'lan0', vips: [{ address: '192.0.2.1', prefix: 24 }], advbaseS: 1, advskew: 0, pass: 'one', peers: [], vmac: true },
      {
        vhid: 7,
        interface: 'lan1',
        vips: [
          { address: '198.51.100.1', prefix: 24 },
          { address: '198.51.100.9', prefix: 32 },
        ],
        advbaseS: 0,
        advskew: 20,
        pass: 'seven',
        peers: [
          { address: '192.0.2.3', port: 9001 },
          { address: '192.0.2.4', port: 0 },
        ],
        vmac: true,
      },
    ],
  })
  t.equal(config.node, 'fw-b')
  t.equal(config.controlPort, 9000)
  t.same(config.sync, { interface: 'sync0', peer: { address: '198.51.100.2', port: 0 }, port: 8242, key: 'sk', backend: 'conntrack', bulkTimeoutMs: 30_000 })
  t.same(config.serial, { device: '/dev/ttyUSB0', baud: 115200 })
  t.same(config.heartbeat, { intervalMs: 100, timeoutMs: 500 })
  t.same(config.witness, {
    address: { address: '192.0.2.50', port: 8241 },
    key: 'wk',
    leaseMs: 2000,
    listen: { address: '192.0.2.50', port: 0 },
    state: '/var/db/witness',
  })
  t.same(config.wans, [
    { wan: 1, interface: 'wan0', gateway: '203.0.113.1', weight: 3, tier: 1, probes: ['203.0.113.53', '1.1.1.1'], probeNeed: 1, natAddress: null, vipInterfaces: [] },
    { wan: 2, interface: 'wan1', gateway: '203.0.113.129', weight: 1, tier: 2, probes: ['9.9.9.9'], probeNeed: 1, natAddress: null, vipInterfaces: [] },
  ])
  t.equal(config.wanRules, 'nft')
  t.same(config.wanProbe, { intervalMs: 500, timeoutMs: 2000, window: 20, lossDown: 0.5, lossUp: 0.1, latencyDownMs: 300, latencyUpMs: 150, downRounds: 6, upRounds: 8, failbackHoldMs: 10_000 })
})

t.test("a WAN that shares its interface with a carp block NATs to that block's first IPv4 VIP", async (t) => {
  const text = [
    MINIMAL,
    'carp.2.interface = wan0',
    'carp.2.vip = 2001:db8::1/64, 203.0.113.4/28, 203.0.113.5/28',
    'carp.2.pass = two',
    'wan.1.interface = wan0',
    'wan.1.gateway = 203.0.113.1',
    'wan.1.probe = 203.0.113.53',
    'wan.2.interface = wan1',
    'wan.2.gateway = 198.51.100.1',
    'wan.2.probe = 198.51.100.53',
  ].join('\n')
  const config = configOf(t, text)
  t.same(
    config.wans.map((w) => [w.interface, w.natAddress, w.vipInterfaces]),
    [
      ['wan0', '203.0.113.4', ['carp2']],
      ['wan1', null, []],
    ],
    "the pair shares 203.0.113.4 on wan0 (the IPv6 VIP is not a NAT address), and traffic to it comes in on carp2; wan1 has no VIP: its own address",
  )
  const both = configOf(t, `${text}\ncarp.3.interface = wan1\ncarp.3.vip = 192.0.2.200/32, 198.51.100.4/24\ncarp.3.pass = three\ncarp.3.vmac = no`)
  t.same([both.wans[1]!.natAddress, both.wans[1]!.vipInterfaces], ['198.51.100.4', []], "the VIP on the gateway's subnet first; without a virtual MAC, no macvlan to mark")
  const routed = configOf(t, `${text}\ncarp.3.interface = wan1\ncarp.3.vip = 192.0.2.200/32\ncarp.3.pass = three`)
  t.same([routed.wans[1]!.natAddress, routed.wans[1]!.vipInterfaces], ['192.0.2.200', ['carp3']], 'none there: the first IPv4 VIP (a /32, a routed block)')
})

// ---------------------------------------------------------------------------
// Every value type, good and bad, through the whole loader

const TYPE_CASES: Record<ValueType, { key: string; good: string; bad: string; code: ConfigErrorCode }> = {
  string: { key: 'board.note', good: 'a note', bad: '', code: 'badValue' }, // '' is fine for board.note; see below
  name: { key: 'node', good: 'fw-a.lab', bad: 'fw a', code: 'badValue' },
  ifname: { key: 'carp.1.interface', good: 'eth0.10', bad: 'eth0.1234567890123', code: 'badValue' }, // 16 characters
  int: { key: 'carp.1.advskew', good: '100', bad: '255', code: 'outOfRange' },
  bool: { key: 'carp.preempt', good: 'off', bad: 'perhaps', code: 'badValue' },
  enum: { key: 'platform', good: 'linux', bad: 'solaris', code: 'badValue' },
  duration: { key: 'witness.lease', good: '1.5s', bad: '100ms', code: 'outOfRange' },
  seconds: { key: 'carp.1.advbase', good: '2s', bad: '1.5', code: 'badValue' },
  percent: { key: 'wan.probe.loss.down', good: '30%', bad: '130%', code: 'outOfRange' },
  ipv4: { key: 'wan.1.gateway', good: '203.0.113.1', bad: '203.0.113.300', code: 'badValue' },
  ipv4List: { key: 'wan.1.probe', good: '9.9.9.9, 1.1.1.1', bad: '9.9.9.9 1.1.1.1', code: 'badValue' },
  cidrList: { key: 'carp.1.vip', good: '192.0.2.1/24, 192.0.2.2/24', bad: '192.0.2.1', code: 'badValue' },
  endpoint: { key: 'sync.peer', good: '198.51.100.2:8242', bad: '198.51.100.2:99999', code: 'outOfRange' },
  endpointList: { key: 'carp.1.peer', good: '192.0.2.3, 192.0.2.4:8240', bad: '192.0.2.3,,192.0.2.4', code: 'badValue' },
  path: { key: 'serial.device', good: '/dev/ttyS1', bad: 'ttyS1', code: 'badValue' },
  port: { key: 'control.port', good: '8239', bad: '0', code: 'outOfRange' },
}

/** A complete file with `key = value` as its last line, replacing any other line of that key. */
function fileWith(key: string, value: string): string {
  const base = [
    'node = fw-a',
    'carp.1.interface = lan0',
    'carp.1.vip = 192.0.2.1/24',
    'carp.1.pass = s3cret',
    'sync.interface = sync0',
    'sync.peer = 198.51.100.2',
    'sync.key = k',
    'wan.1.interface = wan0',
    'wan.1.gateway = 203.0.113.1',
    'wan.1.probe = 9.9.9.9',
  ].filter((line) => !line.startsWith(`${key} =`))
  return [...base, `${key} = ${value}`].join('\n')
}

function lastLine(text: string): number {
  return text.split('\n').length
}

t.test('every value type accepts a good value and rejects a bad one', async (t) => {
  for (const [type, c] of Object.entries(TYPE_CASES)) {
    t.ok(load(fileWith(c.key, c.good)).ok, `${type}: ${c.key} = ${c.good}`)
    if (type === 'string') continue
    const errors = errorsOf(load(fileWith(c.key, c.bad)))
    t.match(errors, [{ code: c.code, key: c.key, line: lastLine(fileWith(c.key, c.bad)) }], `${type}: ${c.key} = ${c.bad}`)
    t.ok(errors[0]?.allowed !== '', 'the error says what is allowed')
  }
  // The only bad string is an empty one where empty is not "unset": a secret.
  t.match(errorsOf(load(fileWith('carp.1.pass', ''))), [{ code: 'badValue', key: 'carp.1.pass', value: '********' }])
})

/** A value that no row of the given type accepts ('' where the type has none). */
const GARBAGE: Record<ValueType, string> = {
  string: '',
  name: '-x-',
  ifname: 'a-very-long-interface',
  int: 'many',
  bool: 'perhaps',
  enum: 'something-else',
  duration: 'long',
  seconds: 'long',
  percent: 'lots',
  ipv4: 'host',
  ipv4List: 'host',
  cidrList: 'host',
  endpoint: 'host:port',
  endpointList: 'host:port',
  path: 'relative/path',
  port: 'http',
}

t.test('negative test for every key of the schema', async (t) => {
  for (const row of SCHEMA) {
    const key = instantiate(row.key, 1)
    const value = GARBAGE[row.type]
    // An empty string is "unset" for optional text keys: nothing to reject there.
    if (value === '' && row.default === '') continue
    const errors = errorsOf(load(fileWith(key, value)))
    t.match(errors, [{ code: 'badValue', key, line: lastLine(fileWith(key, value)) }], `${key} = ${JSON.stringify(value)}`)
  }
})

// ---------------------------------------------------------------------------
// Error codes

t.test('syntax errors come from the lexer with file and line', async (t) => {
  const e = onlyError(t, withLines('carp.1.advskew 5'))
  t.match(e, { code: 'syntax', file: FILE, line: 5, message: `${FILE}:5: expected "key = value"` })
})

t.test('unknownKey with the nearest valid key', async (t) => {
  const cases: [string, string][] = [
    ['carp.1.advskw = 5', 'carp.1.advskew'],
    ['crap.1.vip = 192.0.2.2/24', 'carp.1.vip'],
    ['carp.preemt = yes', 'carp.preempt'],
    ['Node = fw-b', 'node'],
    ['wan.rule = nft', 'wan.rules'],
    ['carp.2.intreface = lan0', 'carp.2.interface'],
  ]
  for (const [line, suggestion] of cases) {
    const e = onlyError(t, withLines(line))
    t.match(e, { code: 'unknownKey', line: 5, suggestion, value: '' }, line)
    t.match(e.message, new RegExp(`: unknown key \\(did you mean ${suggestion.replaceAll('.', '\\.')}\\?\\)$`))
  }
  const far = onlyError(t, withLines('frobnicate.level = 3'))
  t.match(far, { code: 'unknownKey', suggestion: '' })
  t.equal(far.message, `${FILE}:5: frobnicate.level: unknown key`)
})

t.test('unknownKey never shows the value (it may be a misspelt secret)', async (t) => {
  const e = onlyError(t, withLines('carp.1.passwd = hunter2'))
  t.match(e, { code: 'unknownKey', suggestion: 'carp.1.pass' })
  t.notMatch(e.message, /hunter2/)
  t.equal(e.value, '')
})

t.test('a misspelt block key does not open a new block', async (t) => {
  const e = onlyError(t, withLines('crap.2.vip = 192.0.2.2/24'))
  t.equal(e.code, 'unknownKey')
})

t.test('outOfRange block numbers', async (t) => {
  const cases: [string, string][] = [
    ['carp.0.advskew = 5', 'carp.N with N (the vhid) 1..255'],
    ['carp.256.advskew = 5', 'carp.N with N (the vhid) 1..255'],
    ['carp.01.advskew = 5', 'carp.N with N (the vhid) 1..255'],
    ['wan.33.weight = 5', 'wan.N with N (the WAN number) 1..32'],
  ]
  for (const [line, allowed] of cases) {
    t.match(onlyError(t, withLines(line)), { code: 'outOfRange', line: 5, allowed, message: /block number out of range/ }, line)
  }
})

t.test('duplicateKey names both lines and keeps the first value', async (t) => {
  const result = load(withLines('carp.1.advskew = 5', 'carp.1.advskew = 6'))
  const errors = errorsOf(result)
  t.match(errors, [{ code: 'duplicateKey', line: 6, key: 'carp.1.advskew', value: '6' }])
  t.equal(errors[0]?.message, `${FILE}:6: carp.1.advskew = 6: set again; first set on line 5`)
  const secret = onlyError(t, withLines('carp.1.pass = hunter2'))
  t.match(secret, { code: 'duplicateKey', line: 5, value: '********' })
  t.notMatch(secret.message, /hunter2/)
  const unknown = errorsOf(load(withLines('nope = 1', 'nope = 2')))
  t.same(unknown.map((e) => e.code), ['unknownKey', 'duplicateKey'])
})

t.test('badValue and outOfRange carry the allowed values in words', async (t) => {
  const bad = onlyError(t, withLines('platform = solaris'))
  t.equal(bad.message, `${FILE}:5: platform = solaris: not one of the allowed words (allowed: linux | freebsd | openbsd)`)
  const range = onlyError(t, withLines('heartbeat.interval = 20ms'))
  t.equal(
    range.message,
    `${FILE}:5: heartbeat.interval = 20ms: out of range (allowed: 50ms..10s (ms or s suffix; a bare number is in s))`,
  )
  t.match(onlyError(t, withLines('carp.1.advskew = -1')), { code: 'outOfRange', allowed: '0..254 (1/256 s)' })
})

t.test('missingKey: global keys on line 0, block keys at the block', async (t) => {
  const node = onlyError(t, 'carp.1.interface = lan0\ncarp.1.vip = 192.0.2.1/24\ncarp.1.pass = x')
  t.match(node, { code: 'missingKey', line: 0, key: 'node' })
  t.equal(node.message, `${FILE}: node: missing required key (allowed: a name of letters, digits, _ . - starting with a letter or digit)`)

  const errors = errorsOf(load(withLines('', '# vhid 9', 'carp.9.advskew = 10', 'wan.4.weight = 2')))
  t.same(
    errors.map((e) => [e.code, e.line, e.key]),
    [
      ['missingKey', 7, 'carp.9.interface'],
      ['missingKey', 7, 'carp.9.vip'],
      ['missingKey', 7, 'carp.9.pass'],
      ['missingKey', 8, 'wan.4.interface'],
      ['missingKey', 8, 'wan.4.gateway'],
      ['missingKey', 8, 'wan.4.probe'],
    ],
  )
  t.match(errors[2]?.message, /carp\.9\.pass: missing: set carp\.9\.pass or carp\.9\.passfile/)
})

t.test('a key with a bad value is not also reported missing', async (t) => {
  const errors = errorsOf(load('node = fw-a\ncarp.1.interface = lan0\ncarp.1.vip = nope\ncarp.1.pass = x'))
  t.same(errors.map((e) => e.code), ['badValue'])
})

t.test('conflict: a secret and its file', async (t) => {
  const e = onlyError(t, withLines('carp.1.passfile = /cf/carp.pass'), { files: { '/cf/carp.pass': 'p' } })
  t.match(e, { code: 'conflict', line: 5, key: 'carp.1.passfile', value: '/cf/carp.pass' })
  t.match(e.message, /conflicts with carp\.1\.pass on line 4; set only one/)
  const sync = errorsOf(load(withLines('sync.key = a', 'sync.keyfile = /k')))
  t.match(sync, [{ code: 'conflict', key: 'sync.keyfile', line: 6 }])
})

t.test('conflict: sub-second mode needs advskew >= 1 (SPEC)', async (t) => {
  const e = onlyError(t, withLines('carp.1.advbase = 0'))
  t.match(e, { code: 'conflict', line: 5, key: 'carp.1.advbase', value: '0' })
  t.match(e.message, /sub-second mode needs carp\.1\.advskew of at least 1/)
  t.ok(load(withLines('carp.1.advbase = 0', 'carp.1.advskew = 1')).ok)
  t.same(errorsOf(load(withLines('carp.1.advbase = 0s', 'carp.1.advskew = bad'))).map((e) => e.code), ['badValue'], 'a bad advskew is not also a conflict')
})

t.test('conflict: heartbeat.timeout must be at least 2 intervals', async (t) => {
  const e = onlyError(t, withLines('heartbeat.interval = 200ms', 'heartbeat.timeout = 300ms'))
  t.match(e, { code: 'conflict', line: 6, key: 'heartbeat.timeout' })
  t.match(e.message, /at least 2 × heartbeat\.interval \(300ms < 2 × 200ms\)/)
  // Only the interval set: the error points at it.
  t.match(onlyError(t, withLines('heartbeat.interval = 600ms')), { code: 'conflict', line: 5, key: 'heartbeat.interval' })
  t.ok(load(withLines('heartbeat.interval = 500ms')).ok, 'exactly 2 intervals is enough')
})

t.test('conflict: control.port and carp.port must differ', async (t) => {
  const e = onlyError(t, withLines('control.port = 9000', 'carp.port = 9000'))
  t.match(e, { code: 'conflict', line: 5, key: 'control.port' })
  t.match(e.message, /control\.port and carp\.port must differ/)
  t.match(onlyError(t, withLines('carp.port = 8239')), { code: 'conflict', key: 'carp.port', line: 5 }, 'against the default control port')
  t.ok(load(withLines('control.port = 9000', 'carp.port = 9001')).ok)
})

t.test('conflict: WAN probe up thresholds must be below the down thresholds', async (t) => {
  t.match(onlyError(t, withLines('wan.probe.loss.up = 20%')), { code: 'conflict', key: 'wan.probe.loss.up', line: 5 })
  t.match(onlyError(t, withLines('wan.probe.latency.down = 300ms')), { code: 'conflict', key: 'wan.probe.latency.down', line: 5 })
})

t.test('conflict: backends must fit the platform', async (t) => {
  const sync = withLines('platform = freebsd', 'sync.interface = sync0', 'sync.peer = 198.51.100.2', 'sync.key = k')
  const e = onlyError(t, sync)
  t.match(e, { code: 'conflict', key: 'sync.backend', line: 6, value: 'conntrack', allowed: 'pf' })
  t.match(e.message, /conntrack does not run on platform freebsd/)
  t.ok(load(`${sync}\nsync.backend = pf`).ok)
  t.match(onlyError(t, `${sync}\nsync.backend = conntrack`), { key: 'sync.backend', line: 9 })

  const wan = withLines('platform = openbsd', 'wan.1.interface = em1', 'wan.1.gateway = 203.0.113.1', 'wan.1.probe = 9.9.9.9')
  t.match(onlyError(t, wan), { code: 'conflict', key: 'wan.rules', line: 6, allowed: 'pf' })
  t.ok(load(`${wan}\nwan.rules = pf`).ok)
  t.match(onlyError(t, withLines('wan.rules = pf', 'wan.1.interface = em1', 'wan.1.gateway = 203.0.113.1', 'wan.1.probe = 9.9.9.9')), {
    key: 'wan.rules',
    line: 5,
    allowed: 'iptables | nft',
  })
  t.ok(load(withLines('platform = freebsd', 'wan.rules = iptables')).ok, 'no WAN blocks: wan.rules is not used')
})

t.test('missingKey: sync needs a peer and a key', async (t) => {
  const errors = errorsOf(load(withLines('sync.interface = sync0')))
  t.same(errors.map((e) => [e.code, e.line, e.key]), [
    ['missingKey', 5, 'sync.peer'],
    ['missingKey', 5, 'sync.key'],
  ])
  t.match(errors[1]?.message, /sync\.key: missing: needed when sync\.interface is set; set sync\.key or sync\.keyfile/)
  t.ok(load(withLines('sync.interface = sync0', 'sync.backend = none')).ok, 'backend none needs neither')
  t.same(errorsOf(load(withLines('sync.interface = sync0', 'sync.peer = nope', 'sync.key = k'))).map((e) => e.code), ['badValue'])
  t.same(errorsOf(load(withLines('sync.interface = sync0', 'sync.peer =', 'sync.key = k'))).map((e) => e.key), ['sync.peer'])
  t.ok(load(withLines('sync.interface =', 'sync.peer = 198.51.100.2')).ok, 'an empty sync.interface is no sync')
})

t.test('missingKey: the witness, and a board using one, need the key', async (t) => {
  t.match(onlyError(t, withLines('witness = 192.0.2.50:8241')), { code: 'missingKey', key: 'witness.key', line: 5 })
  t.match(onlyError(t, withLines('witness.listen = 192.0.2.50:8241')), { code: 'missingKey', key: 'witness.key', line: 5 })
  t.ok(load(withLines('witness =')).ok, 'an empty witness is two-node mode')
  t.ok(load(withLines('witness = 192.0.2.50', 'witness.keyfile = /w'), { files: { '/w': 'wk\n' } }).ok)
})

t.test('unknownBoard lists the known boards and suggests the nearest', async (t) => {
  const e = onlyError(t, withLines('board = apu3'))
  t.match(e, { code: 'unknownBoard', line: 5, key: 'board', value: 'apu3', suggestion: 'apu2' })
  t.equal(e.allowed, 'alix2d3, apu2, armv7, thinclient, wrap')
  t.match(e.message, /no such board profile \(allowed: alix2d3, .*\) \(did you mean apu2\?\)$/)
  t.match(onlyError(t, withLines('board = bad name')), { code: 'badValue', key: 'board' })
  t.ok(load(withLines('board =')).ok, 'an empty board is none')
})

t.test('hardening: names of Object.prototype are words like any other', async (t) => {
  for (const word of ['constructor', 'hasOwnProperty', 'valueOf', 'toString']) {
    t.match(onlyError(t, withLines(`board = ${word}`)), { code: 'unknownBoard', key: 'board' }, `board = ${word} is no board`)
    t.match(onlyError(t, withLines(`carp.preempt = ${word}`)), { code: 'badValue', key: 'carp.preempt' }, `carp.preempt = ${word} is no yes`)
    t.match(onlyError(t, withLines(`sync.backend = ${word}`)), { code: 'badValue', key: 'sync.backend' })
  }
  t.match(onlyError(t, withLines('carp.preempt = __proto__')), { code: 'badValue', key: 'carp.preempt' })
  t.match(onlyError(t, withLines('carp.2.interface = __proto__', 'carp.2.vip = 192.0.2.9/24', 'carp.2.pass = x')), { code: 'badValue', key: 'carp.2.interface' })
  t.match(onlyError(t, withLines('constructor.1.x = 1')), { code: 'unknownKey' })
  t.match(onlyError(t, withLines('carp.2.interface = eth0.1234567890123', 'carp.2.vip = 192.0.2.9/24', 'carp.2.pass = x')), { code: 'badValue', key: 'carp.2.interface' }, '16 characters: more than the kernel takes')
})

t.test('secretFile: read, trimmed; unreadable or empty is an error', async (t) => {
  const text = 'node = fw-a\ncarp.1.interface = lan0\ncarp.1.vip = 192.0.2.1/24\ncarp.1.passfile = /cf/carp.pass'
  const ok = load(text, { files: { '/cf/carp.pass': 'from file\r\n' } })
  t.ok(ok.ok)
  if (ok.ok) t.equal(ok.config.carp.vhids[0]?.pass, 'from file')

  const missing = onlyError(t, text)
  t.match(missing, { code: 'secretFile', line: 4, key: 'carp.1.passfile', value: '/cf/carp.pass' })
  t.equal(missing.message, `${FILE}:4: carp.1.passfile = /cf/carp.pass: cannot read the secret file (ENOENT)`)

  const empty = onlyError(t, text, { files: { '/cf/carp.pass': '\n' } })
  t.match(empty, { code: 'secretFile', message: /the secret file is empty/ })

  // A reader that throws something without a code: no reason is invented.
  const odd = loadConfig(text, FILE, {
    readFile: () => {
      throw 'not an Error'
    },
    boards: {},
  })
  t.match(errorsOf(odd), [{ code: 'secretFile', message: /cannot read the secret file$/ }])
})

t.test('io errors come from the caller (loadConfig is given text, not a file)', async (t) => {
  t.match(ioError(FILE, 'EACCES'), { code: 'io', message: `${FILE}: cannot read the configuration file: EACCES` })
})

t.test('all errors are collected and sorted by line', async (t) => {
  const text = ['carp.1.interface = lan0', 'carp.1.vip = 192.0.2.1', 'bogus', 'carp.1.advskew = 999', 'platfrom = linux', 'carp.1.pass = x'].join('\n')
  const errors = errorsOf(load(text))
  t.same(errors.map((e) => [e.line, e.code]), [
    [0, 'missingKey'],
    [2, 'badValue'],
    [3, 'syntax'],
    [4, 'outOfRange'],
    [5, 'unknownKey'],
  ])
})

// ---------------------------------------------------------------------------
// Board profiles

const TEST_BOARDS = {
  tiny: 'serial.device = /dev/ttyS1\nserial.baud = 9600\nheartbeat.interval = 500ms\nheartbeat.timeout = 2s\n',
  old: 'board.supported = no\nboard.note = too old for Node.js\n',
  mute: 'board.supported = no\n',
  bad: 'node = x\ncarp.1.advskew = 3\nsync.key = k\nboard = tiny\nserial.baud = fast\nnope = 1\nnot a line\n',
}

t.test('board defaults apply and the file overrides them', async (t) => {
  const result = load(withLines('serial.baud = 38400', 'board = tiny'), { boards: TEST_BOARDS })
  t.ok(result.ok)
  if (!result.ok) return
  t.equal(result.config.board, 'tiny')
  t.same(result.config.serial, { device: '/dev/ttyS1', baud: 38400 })
  t.same(result.config.heartbeat, { intervalMs: 500, timeoutMs: 2000 })
  const source = (key: string) => result.effective.find((e) => e.key === key)?.source
  t.same(source('serial.device'), { kind: 'board', board: 'tiny', line: 1 })
  t.same(source('serial.baud'), { kind: 'file', file: FILE, line: 5 })
  t.same(source('board'), { kind: 'file', file: FILE, line: 6 })
})

t.test('board files may set only global hardware keys; their errors are listed first', async (t) => {
  const errors = errorsOf(load(withLines('board = bad', 'carp.1.advskw = 1'), { boards: TEST_BOARDS }))
  t.same(
    errors.map((e) => [e.file, e.line, e.code, e.key]),
    [
      ['boards/bad.conf', 1, 'conflict', 'node'],
      ['boards/bad.conf', 2, 'conflict', 'carp.1.advskew'],
      ['boards/bad.conf', 3, 'conflict', 'sync.key'],
      ['boards/bad.conf', 4, 'conflict', 'board'],
      ['boards/bad.conf', 5, 'badValue', 'serial.baud'],
      ['boards/bad.conf', 6, 'unknownKey', 'nope'],
      ['boards/bad.conf', 7, 'syntax', ''],
      [FILE, 6, 'unknownKey', 'carp.1.advskw'],
    ],
  )
  t.match(errors[0]?.message, /^boards\/bad\.conf:1: node = x: a board profile may set only global hardware keys/)
  t.notMatch(errors[2]?.message, /= k:/, 'a secret in a board file is masked too')
})

t.test('an unsupported board is a warning with its note', async (t) => {
  const result = load(withLines('board = old'), { boards: TEST_BOARDS })
  t.ok(result.ok)
  t.same(result.warnings, ['boards/old.conf:1: board old is not supported: too old for Node.js'])
  t.same(load(withLines('board = mute'), { boards: TEST_BOARDS }).warnings, ['boards/mute.conf:1: board mute is not supported'])
  const own = load(withLines('board.supported = no', 'carp.1.advskew = x'))
  t.notOk(own.ok)
  t.same(own.warnings, [`${FILE}:5: this board is not supported`], 'warnings come with errors too')
})

// ---------------------------------------------------------------------------
// Effective configuration

t.test('effective: schema order, block by block, defaults and sources', async (t) => {
  const text = ['node = fw-a', 'carp.2.interface = lan1', 'carp.2.vip = 192.0.2.9/24', 'carp.2.passfile = /p', 'carp.1.interface = lan0', 'carp.1.vip = 192.0.2.1/24', 'carp.1.pass = s3cret', 'carp.upscript =', 'witness.listen ='].join('\n')
  const result = load(text, { files: { '/p': 'two' } })
  t.ok(result.ok)
  if (!result.ok) return
  const keys = result.effective.map((e) => e.key)
  t.same(keys.slice(0, 15), [
    'node',
    'board.supported',
    'platform',
    'control.port',
    'log.format',
    'log.syslog.facility',
    'carp.port',
    'carp.preempt',
    'carp.preempt.holddown',
    'carp.upscript',
    'carp.1.interface',
    'carp.1.vip',
    'carp.1.advbase',
    'carp.1.advskew',
    'carp.1.pass',
  ])
  t.same(keys.slice(15, 24), ['carp.1.vmac', 'carp.2.interface', 'carp.2.vip', 'carp.2.advbase', 'carp.2.advskew', 'carp.2.pass', 'carp.2.passfile', 'carp.2.vmac', 'sync.port'])
  t.notOk(keys.includes('board'), "'' defaults are left out unless set")
  t.notOk(keys.includes('carp.downscript'))
  t.ok(keys.includes('witness.listen'), 'an explicit empty value is listed')
  const byKey = new Map(result.effective.map((e) => [e.key, e]))
  t.same(byKey.get('carp.upscript'), { key: 'carp.upscript', value: '', secret: false, source: { kind: 'file', file: FILE, line: 8 } })
  t.same(byKey.get('carp.1.pass'), { key: 'carp.1.pass', value: 's3cret', secret: true, source: { kind: 'file', file: FILE, line: 7 } })
  t.same(byKey.get('carp.2.pass'), {
    key: 'carp.2.pass',
    value: 'two',
    secret: true,
    source: { kind: 'secretFile', file: FILE, line: 4, path: '/p' },
  })
  t.same(byKey.get('heartbeat.interval'), { key: 'heartbeat.interval', value: '250ms', secret: false, source: { kind: 'default' } })
  t.same(byKey.get('carp.preempt.holddown')?.value, '0s')
  t.same(byKey.get('wan.probe.loss.down')?.value, '5%')
  t.notOk(keys.some((k) => k.startsWith('wan.1.')))
})

// ---------------------------------------------------------------------------
// Secrets are never shown

t.test('no message and no rendered line shows a secret', async (t) => {
  const SECRET = 'hunter2'
  const files = { '/cf/s': SECRET }
  const texts = [
    withLines(`carp.1.pass = ${SECRET}`),
    `node = fw-a\ncarp.1.interface = lan0\ncarp.1.vip = x\ncarp.1.pass = ${SECRET}\ncarp.1.passfile = /cf/s`,
    `node = fw-a\nsync.key = ${SECRET}\nsync.key = ${SECRET}\nsync.keyfile = /cf/s`,
    `node = fw-a\nwitness.key = ${SECRET}\nwitness.keyfile = /cf/s\nwitness.kye = ${SECRET}`,
    `node = fw-a\ncarp.300.pass = ${SECRET}\n${SECRET}\ncarp.1.pass = ${SECRET}`,
    `board = bad\n`,
  ]
  for (const text of texts) {
    const result = load(text, { files, boards: { bad: `sync.key = ${SECRET}\n` } })
    const messages = errorsOf(result).map((e) => `${e.message} ${e.value}`).join('\n')
    t.notMatch(messages, SECRET, text)
  }
  const ok = load(withLines('sync.keyfile = /cf/s', 'witness.key = w-secret'), { files })
  t.ok(ok.ok)
  if (!ok.ok) return
  const rendered = renderEffective(ok.effective)
  t.notMatch(rendered, SECRET)
  t.notMatch(rendered, 's3cret')
  t.notMatch(rendered, 'w-secret')
  t.match(rendered, /sync\.key +\= \*{8} \(from \/cf\/s\)/)
})

t.test('conflict: the node name travels in every heartbeat, so it is at most 32 characters', async (t) => {
  const long = 'n'.repeat(33)
  const text = withLines().replace(/^node = .*$/m, `node = ${long}`)
  const e = onlyError(t, text)
  t.match(e, { code: 'conflict', key: 'node' })
  t.match(e.message, /node is 33 characters long/)
  t.match(e.message, /at most 32 characters/)
  t.ok(load(withLines().replace(/^node = .*$/m, `node = ${'n'.repeat(32)}`)).ok, '32 is fine')
})

t.test('heartbeat timing left unset follows the fastest vhid\'s master-down; a value in the file wins', async (t) => {
  const sub = withLines('carp.1.advbase = 0', 'carp.1.advskew = 29', 'sync.interface = sync0', 'sync.peer = 198.51.100.2', 'sync.key = k')
  const r = load(sub)
  t.ok(r.ok)
  if (!r.ok) return
  t.same(r.config.heartbeat, { intervalMs: 100, timeoutMs: 339 }, 'master-down 339.8 ms: timeout 339 ms; 100 ms heartbeats, the same on both boards')
  t.same(r.warnings, [], 'no warning: it follows the CARP timing')
  t.match(renderEffective(r.effective), /heartbeat\.interval += 100ms +# derived: sub-second CARP/)
  t.match(renderEffective(r.effective), /heartbeat\.timeout += 339ms +# derived: the fastest master-down \(340 ms\)/)
  // The fastest of several vhids; advbase 1 ones never make it longer than the old 1 s default.
  const two = load(`${sub}\ncarp.2.interface = lan0\ncarp.2.vip = 192.0.2.2/24\ncarp.2.pass = p\ncarp.2.advbase = 0\ncarp.2.advskew = 12`)
  t.same(two.ok && two.config.heartbeat, { intervalMs: 100, timeoutMs: 300 })
  const slow = load(withLines('sync.interface = sync0', 'sync.peer = 198.51.100.2', 'sync.key = k'))
  t.same(slow.ok && slow.config.heartbeat, { intervalMs: 250, timeoutMs: 1000 }, 'advbase 1: the defaults')
  // Floors: 3 intervals, and a serial line at most a quarter busy.
  const fast = load(withLines('carp.1.advbase = 0', 'carp.1.advskew = 3', 'sync.interface = sync0', 'sync.peer = 198.51.100.2', 'sync.key = k'))
  t.same(fast.ok && fast.config.heartbeat, { intervalMs: 100, timeoutMs: 300 }, 'master-down 35 ms: the floor')
  t.match(fast.warnings, [/heartbeat\.timeout \(300 ms\) is longer than carp\.1's master-down interval \(35 ms\).*derived at its floor/])
  const serial = load(withLines('carp.1.advbase = 0', 'carp.1.advskew = 12', 'serial.device = /dev/ttyS1'))
  t.same(serial.ok && serial.config.heartbeat, { intervalMs: 134, timeoutMs: 402 }, '19200 bit/s: 256 bytes take 134 ms')
  const serialFast = load(withLines('carp.1.advbase = 0', 'carp.1.advskew = 29', 'serial.device = /dev/ttyS1', 'serial.baud = 115200'))
  t.same(serialFast.ok && serialFast.config.heartbeat, { intervalMs: 100, timeoutMs: 339 })
  // An interval in the file stays; the timeout still follows, at least 3 of them.
  const interval = load(`${sub}\nheartbeat.interval = 200ms`)
  t.same(interval.ok && interval.config.heartbeat, { intervalMs: 200, timeoutMs: 600 })
})

t.test('warning: a heartbeat timeout set longer than master-down slows failover in two-node mode', async (t) => {
  const sub = withLines('carp.1.advbase = 0', 'carp.1.advskew = 29', 'sync.interface = sync0', 'sync.peer = 198.51.100.2', 'sync.key = k')
  const r = load(`${sub}\nheartbeat.timeout = 1s`)
  t.ok(r.ok)
  t.match(r.warnings, [/heartbeat\.timeout \(1000 ms\) is longer than carp\.1's master-down interval \(340 ms\).*leave it unset to follow the CARP timing/])
  t.same(load(`${sub}\nheartbeat.interval = 100ms\nheartbeat.timeout = 300ms`).warnings, [], 'fast enough')
  t.same(load(`${sub}\nwitness = 203.0.113.50\nwitness.key = w`).warnings, [], 'with a witness the votes decide')
  t.same(load(withLines('carp.1.advbase = 0', 'carp.1.advskew = 29')).warnings, [], 'no peer path: plain CARP')
})

t.test('conflict: a WAN cannot need more probe answers than it has targets', async (t) => {
  const wan = ['wan.1.interface = wan0', 'wan.1.gateway = 203.0.113.1', 'wan.1.probe = 203.0.113.53,203.0.113.54']
  const e = onlyError(t, withLines(...wan, 'wan.1.probe.need = 3'))
  t.match(e, { code: 'conflict', key: 'wan.1.probe.need' })
  t.match(e.message, /wan\.1\.probe\.need is 3 but wan\.1\.probe lists 2 targets/)
  const ok = load(withLines(...wan, 'wan.1.probe.need = 2'))
  t.ok(ok.ok)
  if (ok.ok) {
    t.equal(ok.config.wans[0]!.probeNeed, 2)
    t.match(ok.config.wanProbe, { intervalMs: 250, downRounds: 6, upRounds: 8, failbackHoldMs: 10_000 })
  }
})

t.test('IPv6: a vhid with only IPv6 VIPs advertises over IPv6, so its peers must be IPv6; one with an IPv4 VIP, IPv4', async (t) => {
  const v6 = ['node = fw-a', 'carp.1.interface = lan0', 'carp.1.vip = 2001:db8::1/64', 'carp.1.pass = s3cret']
  const ok = configOf(t, [...v6, 'carp.1.peer = [2001:db8::12]:8240'].join('\n'))
  t.same(ok.carp.vhids[0]!.vips, [{ address: '2001:db8::1', prefix: 64 }])
  t.same(ok.carp.vhids[0]!.peers, [{ address: '2001:db8::12', port: 8240 }])
  const e = onlyError(t, [...v6, 'carp.1.peer = 192.0.2.12'].join('\n'))
  t.match(e, { code: 'conflict', key: 'carp.1.peer', line: 5 })
  t.match(e.message, /vhid 1 has only IPv6 VIPs, so it advertises over IPv6: its peers must be IPv6 addresses \(192\.0\.2\.12 is not\)/)
  const mixed = onlyError(t, ['node = fw-a', 'carp.1.interface = lan0', 'carp.1.vip = 192.0.2.1/24, 2001:db8::1/64', 'carp.1.pass = s3cret', 'carp.1.peer = 2001:db8::12'].join('\n'))
  t.match(mixed.message, /vhid 1 has an IPv4 VIP, so it advertises over IPv4: its peers must be IPv4 addresses \(2001:db8::12 is not\)/)
})

t.test('log.*: the console format, a syslog server (port 514 when not given) and its facility', async (t) => {
  const r = load(withLines('log.format = short', 'log.syslog = 192.0.2.9', 'log.syslog.facility = local3'))
  t.ok(r.ok)
  if (r.ok) t.same(r.config.log, { format: 'short', syslog: { address: '192.0.2.9', port: 0 }, facility: 'local3' })
  const port = load(withLines('log.syslog = 192.0.2.9:5514'))
  if (port.ok) t.same(port.config.log.syslog, { address: '192.0.2.9', port: 5514 })
  t.match(errorsOf(load(withLines('log.format = terse'))), [{ key: 'log.format', line: 5 }])
  t.match(errorsOf(load(withLines('log.syslog.facility = kern'))), [{ key: 'log.syslog.facility' }])
})
