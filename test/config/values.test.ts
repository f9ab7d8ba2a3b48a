import t, { type Test } from 'tap'
import { rowByKey, type KeyRow } from '../../src/config/schema.js'
import { cidrFromText, emptyValue, endpointText, parseIpv4, parseValue } from '../../src/config/values.js'

function row(key: string): KeyRow {
  const found = rowByKey(key)
  if (found === undefined) throw new Error(`no row ${key}`)
  return found
}

/** [input, value, normalised text] that must parse. */
function good(t: Test, key: string, cases: [string, unknown, string][]): void {
  for (const [input, value, text] of cases) t.same(parseValue(row(key), input), { ok: true, value, text }, `${key} = ${input}`)
}

/** [input, code] that must fail. */
function bad(t: Test, key: string, cases: [string, 'badValue' | 'outOfRange'][]): void {
  for (const [input, code] of cases) t.match(parseValue(row(key), input), { ok: false, code }, `${key} = ${input}`)
}

t.test('string (secrets): any text, but not empty', async (t) => {
  good(t, 'carp.N.pass', [['a b#c', 'a b#c', 'a b#c']])
  bad(t, 'carp.N.pass', [['', 'badValue']])
})

t.test('name', async (t) => {
  good(t, 'node', [['fw-a', 'fw-a', 'fw-a'], ['eth0.10', 'eth0.10', 'eth0.10'], ['0_x', '0_x', '0_x']])
  bad(t, 'node', [['-a', 'badValue'], ['a b', 'badValue'], ['fw/a', 'badValue'], ['', 'badValue']])
})

t.test('int', async (t) => {
  good(t, 'carp.N.advskew', [['0', 0, '0'], ['254', 254, '254'], ['+7', 7, '7'], ['007', 7, '7']])
  bad(t, 'carp.N.advskew', [['255', 'outOfRange'], ['-1', 'outOfRange'], ['1.5', 'badValue'], ['ten', 'badValue'], ['0x10', 'badValue']])
})

t.test('port', async (t) => {
  good(t, 'control.port', [['1', 1, '1'], ['65535', 65535, '65535']])
  bad(t, 'control.port', [['0', 'outOfRange'], ['65536', 'outOfRange'], ['http', 'badValue']])
})

t.test('seconds (advbase): bare or with s, whole, 0..255', async (t) => {
  good(t, 'carp.N.advbase', [['1', 1, '1'], ['1s', 1, '1'], ['0', 0, '0'], ['255s', 255, '255']])
  bad(t, 'carp.N.advbase', [['256', 'outOfRange'], ['1.5s', 'badValue'], ['500ms', 'badValue'], ['-1', 'badValue']])
})

t.test('bool: six spellings each way, any case', async (t) => {
  for (const word of ['yes', 'true', 'on', '1', 'YES', 'On']) good(t, 'carp.preempt', [[word, true, 'yes']])
  for (const word of ['no', 'false', 'off', '0', 'No']) good(t, 'carp.preempt', [[word, false, 'no']])
  bad(t, 'carp.preempt', [['maybe', 'badValue'], ['2', 'badValue']])
})

t.test('enum', async (t) => {
  good(t, 'platform', [['openbsd', 'openbsd', 'openbsd']])
  good(t, 'serial.baud', [['115200', '115200', '115200']])
  bad(t, 'platform', [['windows', 'badValue'], ['Linux', 'badValue']])
  bad(t, 'serial.baud', [['14400', 'badValue']])
})

t.test('duration: ms/s suffixes, fractions, a bare number in the row unit, stored in ms', async (t) => {
  good(t, 'heartbeat.interval', [
    ['250ms', 250, '250ms'],
    ['1.5s', 1500, '1.5s'],
    ['1.1s', 1100, '1.1s'],
    ['0.05s', 50, '50ms'],
    ['1.250s', 1250, '1.25s'],
    ['2', 2000, '2s'],
    ['10s', 10000, '10s'],
    ['50ms', 50, '50ms'],
  ])
  bad(t, 'heartbeat.interval', [
    ['49ms', 'outOfRange'],
    ['11s', 'outOfRange'],
    ['250', 'outOfRange'], // a bare number is seconds here
    ['1.0001s', 'badValue'],
    ['1.5ms', 'badValue'],
    ['1m', 'badValue'],
    ['fast', 'badValue'],
    ['1..5s', 'badValue'],
    ['.5s', 'badValue'],
    ['-1s', 'badValue'],
  ])
  good(t, 'carp.preempt.holddown', [['0', 0, '0s'], ['3600s', 3600000, '3600s'], ['1.0000s', 1000, '1s']])
  bad(t, 'carp.preempt.holddown', [['3601s', 'outOfRange']])
})

t.test('duration with a millisecond base unit', async (t) => {
  const msRow: KeyRow = { ...row('heartbeat.interval'), unit: 'ms' }
  t.same(parseValue(msRow, '250'), { ok: true, value: 250, text: '250ms' })
  t.same(parseValue(msRow, '1.5s'), { ok: true, value: 1500, text: '1.5s' })
})

t.test('percent: 5% or a fraction, stored as a fraction', async (t) => {
  good(t, 'wan.probe.loss.down', [
    ['5%', 0.05, '5%'],
    ['2.5%', 0.025, '2.5%'],
    ['100%', 1, '100%'],
    ['0.07', 0.07, '7%'],
    ['0', 0, '0%'],
    ['1', 1, '100%'],
  ])
  bad(t, 'wan.probe.loss.down', [['101%', 'outOfRange'], ['5', 'outOfRange'], ['-5%', 'badValue'], ['five', 'badValue'], ['5%%', 'badValue'], ['1.2.3', 'badValue']])
})

t.test('ipv4', async (t) => {
  good(t, 'wan.N.gateway', [['203.0.113.1', '203.0.113.1', '203.0.113.1'], ['0.0.0.0', '0.0.0.0', '0.0.0.0']])
  bad(t, 'wan.N.gateway', [
    ['203.0.113', 'badValue'],
    ['203.0.113.256', 'badValue'],
    ['203.0.113.01', 'badValue'],
    ['203.0.113.1.5', 'badValue'],
    ['gw.example', 'badValue'],
    ['::1', 'badValue'],
  ])
  t.equal(parseIpv4('1.2.3.4'), '1.2.3.4')
  t.equal(parseIpv4('1.2.3.a'), null)
})

t.test('ipv4 list', async (t) => {
  good(t, 'wan.N.probe', [
    ['9.9.9.9', ['9.9.9.9'], '9.9.9.9'],
    ['9.9.9.9,1.1.1.1', ['9.9.9.9', '1.1.1.1'], '9.9.9.9, 1.1.1.1'],
  ])
  bad(t, 'wan.N.probe', [['9.9.9.9,', 'badValue'], ['9.9.9.9, dns', 'badValue']])
})

t.test('cidr list: the prefix is required, 0..32', async (t) => {
  good(t, 'carp.N.vip', [
    ['192.0.2.1/24', [{ address: '192.0.2.1', prefix: 24 }], '192.0.2.1/24'],
    [' 192.0.2.1/24 ,198.51.100.1/32', [{ address: '192.0.2.1', prefix: 24 }, { address: '198.51.100.1', prefix: 32 }], '192.0.2.1/24, 198.51.100.1/32'],
    ['0.0.0.0/0', [{ address: '0.0.0.0', prefix: 0 }], '0.0.0.0/0'],
  ])
  bad(t, 'carp.N.vip', [
    ['192.0.2.1', 'badValue'],
    ['192.0.2.1/33', 'outOfRange'],
    ['192.0.2.1/', 'badValue'],
    ['192.0.2/24', 'badValue'],
    ['192.0.2.1/24,,192.0.2.2/24', 'badValue'],
  ])
})

t.test('cidr list: IPv6 VIPs, canonical as ip(8) prints them, prefix 0..128, mixed with IPv4', async (t) => {
  good(t, 'carp.N.vip', [
    ['2001:DB8:0:0::1/64', [{ address: '2001:db8::1', prefix: 64 }], '2001:db8::1/64'],
    ['192.0.2.1/24, 2001:db8::1/128', [{ address: '192.0.2.1', prefix: 24 }, { address: '2001:db8::1', prefix: 128 }], '192.0.2.1/24, 2001:db8::1/128'],
    ['fe80::1/64', [{ address: 'fe80::1', prefix: 64 }], 'fe80::1/64'],
  ])
  bad(t, 'carp.N.vip', [
    ['2001:db8::1', 'badValue'],
    ['2001:db8::1/129', 'outOfRange'],
    ['2001:db8::g/64', 'badValue'],
    ['fe80::1%eth0/64', 'badValue'],
  ])
  for (const [text, why] of [['::/0', /:: cannot be a VIP/], ['::1/128', /::1 cannot be a VIP/], ['ff02::12/64', /multicast/], ['::ffff:192.0.2.1/128', /IPv4-mapped/], ['::c000:201/128', /IPv4-compatible/], ['::192.0.2.1/128', /IPv4-compatible/]] as const) {
    t.match(parseValue(row('carp.N.vip'), text), { ok: false, code: 'badValue', why }, text)
  }
  t.same(cidrFromText('2001:db8::1/64'), { address: '2001:db8::1', prefix: 64 }, 'fence lines carry IPv6 VIPs')
  t.equal(cidrFromText('2001:db8::1/129'), null)
  t.equal(cidrFromText('ff02::1/64'), null)
  t.same(cidrFromText('192.0.2.1/24'), { address: '192.0.2.1', prefix: 24 })
  t.equal(cidrFromText('192.0.2.1/33'), null)
})

t.test('endpoint: IPv4 with an optional port; no port = port 0 (the default)', async (t) => {
  good(t, 'sync.peer', [
    ['198.51.100.2', { address: '198.51.100.2', port: 0 }, '198.51.100.2'],
    ['198.51.100.2:8242', { address: '198.51.100.2', port: 8242 }, '198.51.100.2:8242'],
  ])
  bad(t, 'sync.peer', [
    ['198.51.100.2:0', 'outOfRange'],
    ['198.51.100.2:70000', 'outOfRange'],
    ['198.51.100.2:', 'badValue'],
    ['198.51.100.2:x', 'badValue'],
    ['peer:8242', 'badValue'],
    [':8242', 'badValue'],
  ])
})

t.test('endpoint list', async (t) => {
  good(t, 'carp.N.peer', [
    ['192.0.2.3, 192.0.2.4:9000', [{ address: '192.0.2.3', port: 0 }, { address: '192.0.2.4', port: 9000 }], '192.0.2.3, 192.0.2.4:9000'],
  ])
  bad(t, 'carp.N.peer', [['192.0.2.3,192.0.2.4:0', 'outOfRange'], ['192.0.2.3;192.0.2.4', 'badValue']])
  good(t, 'carp.N.peer', [
    ['2001:DB8::2', [{ address: '2001:db8::2', port: 0 }], '2001:db8::2'],
    ['[2001:db8::2]:9000, fe80::2', [{ address: '2001:db8::2', port: 9000 }, { address: 'fe80::2', port: 0 }], '[2001:db8::2]:9000, fe80::2'],
    ['[2001:db8::2]', [{ address: '2001:db8::2', port: 0 }], '2001:db8::2'],
  ])
  bad(t, 'carp.N.peer', [
    ['[2001:db8::2]:0', 'outOfRange'],
    ['[2001:db8::2]:x', 'badValue'],
    ['[2001:db8::2', 'badValue'],
    ['2001:db8::2:9000:1:2:3:4', 'badValue'],
    ['ff02::12', 'badValue'],
    ['[::]:8240', 'badValue'],
    ['[2001:db8::2]:', 'badValue'],
    ['1.2.3.4::5', 'badValue'],
  ])
  t.equal(endpointText({ address: '2001:db8::2', port: 9000 }), '[2001:db8::2]:9000')
  t.equal(endpointText({ address: '2001:db8::2', port: 0 }), '2001:db8::2')
  t.equal(endpointText({ address: '192.0.2.2', port: 9000 }), '192.0.2.2:9000')
})

t.test('path: absolute, no control characters', async (t) => {
  good(t, 'carp.upscript', [['/cf/up.sh', '/cf/up.sh', '/cf/up.sh'], ['/cf/my hooks/up', '/cf/my hooks/up', '/cf/my hooks/up']])
  bad(t, 'carp.upscript', [['up.sh', 'badValue'], ['./up.sh', 'badValue'], ['/cf/\tup', 'badValue']])
})

t.test('empty values: allowed exactly where the default is empty, as "unset"', async (t) => {
  t.same(parseValue(row('witness'), ''), { ok: true, value: null, text: '' })
  t.same(parseValue(row('carp.N.peer'), ''), { ok: true, value: [], text: '' })
  t.same(parseValue(row('carp.upscript'), ''), { ok: true, value: '', text: '' })
  t.match(parseValue(row('platform'), ''), { ok: false, code: 'badValue', why: 'empty value' })
  t.match(parseValue(row('carp.N.passfile'), ''), { ok: false, code: 'badValue' })
  t.same(emptyValue(row('carp.N.vip')), [])
  t.same(emptyValue(row('wan.N.probe')), [])
  t.same(emptyValue(row('node')), '')
})
