import t from 'tap'
import { renderReference } from '../../src/config/render.js'
import {
  BLOCKS,
  SCHEMA,
  SECRET_PAIRS,
  allowedText,
  blockPrefix,
  formatMs,
  instantiate,
  resolveKey,
  rowByKey,
} from '../../src/config/schema.js'
import { parseValue } from '../../src/config/values.js'

t.test('every default is itself a valid value of its row', async (t) => {
  for (const row of SCHEMA) {
    if (row.default === undefined) continue
    const parsed = parseValue(row, row.default)
    t.ok(parsed.ok, `${row.key} = ${row.default}`)
  }
})

t.test('keys are unique, lowercase, and numbered blocks use a known prefix', async (t) => {
  const keys = SCHEMA.map((r) => r.key)
  t.equal(new Set(keys).size, keys.length)
  for (const key of keys) {
    t.match(key, /^[a-z][a-z0-9]*(\.([a-z0-9]+|N))*$/, key)
    const prefix = blockPrefix(key)
    if (prefix !== undefined) t.ok(BLOCKS[prefix], `${key}: block ${prefix} has a range`)
  }
})

t.test('required keys have no default; every row has one-sentence help and allowed text', async (t) => {
  for (const row of SCHEMA) {
    if (row.required) t.equal(row.default, undefined, `${row.key} is required and has no default`)
    t.match(row.help, /^[A-Z"'].*\.$/, `${row.key} help is a sentence`)
    t.ok(allowedText(row).length > 0, `${row.key} allowed text`)
  }
})

t.test('int, seconds and duration rows have a range; enums have values', async (t) => {
  for (const row of SCHEMA) {
    if (row.type === 'int' || row.type === 'seconds' || row.type === 'duration') {
      t.type(row.min, 'number', `${row.key} min`)
      t.type(row.max, 'number', `${row.key} max`)
    }
    if (row.type === 'enum') t.ok((row.values ?? []).length > 0, `${row.key} values`)
    if (row.type === 'duration') t.ok(row.unit === 's' || row.unit === 'ms', `${row.key} unit of a bare number`)
  }
})

t.test('secret pairs: each secret names a path row, and only secrets do', async (t) => {
  t.same(SECRET_PAIRS, [
    { secret: 'carp.N.pass', file: 'carp.N.passfile' },
    { secret: 'sync.key', file: 'sync.keyfile' },
    { secret: 'witness.key', file: 'witness.keyfile' },
  ])
  for (const pair of SECRET_PAIRS) {
    t.equal(rowByKey(pair.secret)?.secret, true)
    t.equal(rowByKey(pair.file)?.type, 'path')
    t.notOk(rowByKey(pair.file)?.secret, 'a file name is not a secret')
  }
  t.same(SCHEMA.filter((r) => r.secret).map((r) => r.key), ['carp.N.pass', 'sync.key', 'witness.key'])
})

t.test('the SPEC core keys are all in the schema', async (t) => {
  const spec = [
    'node', 'board', 'platform', 'control.port',
    'carp.N.interface', 'carp.N.vip', 'carp.N.advbase', 'carp.N.advskew', 'carp.N.pass', 'carp.N.passfile', 'carp.N.peer',
    'carp.preempt', 'carp.preempt.holddown',
    'sync.interface', 'sync.peer', 'sync.key', 'sync.keyfile', 'sync.backend',
    'serial.device', 'serial.baud', 'heartbeat.interval', 'heartbeat.timeout',
    'witness', 'witness.key', 'witness.lease', 'witness.listen', 'witness.state',
    'wan.N.interface', 'wan.N.gateway', 'wan.N.weight', 'wan.N.tier', 'wan.N.probe', 'wan.rules',
  ]
  for (const key of spec) t.ok(rowByKey(key), key)
})

t.test('every key appears in the reference table', async (t) => {
  const reference = renderReference()
  for (const row of SCHEMA) t.ok(reference.includes(`| \`${row.key}\` |`), row.key)
  t.equal(reference.trimEnd().split('\n').length, SCHEMA.length + 2, 'header, rule and one line per key')
})

t.test('resolveKey: global, block, bad block number, unknown', async (t) => {
  t.match(resolveKey('node'), { kind: 'global', row: { key: 'node' } })
  t.match(resolveKey('carp.12.vip'), { kind: 'block', prefix: 'carp', n: 12, row: { key: 'carp.N.vip' } })
  t.match(resolveKey('wan.32.tier'), { kind: 'block', prefix: 'wan', n: 32 })
  t.match(resolveKey('carp.255.vip'), { kind: 'block', n: 255 })
  t.match(resolveKey('carp.0.vip'), { kind: 'badBlockNumber', prefix: 'carp' })
  t.match(resolveKey('carp.256.vip'), { kind: 'badBlockNumber', range: { min: 1, max: 255 } })
  t.match(resolveKey('carp.01.vip'), { kind: 'badBlockNumber' }, 'no second spelling of vhid 1')
  t.match(resolveKey('wan.33.tier'), { kind: 'badBlockNumber', range: { max: 32 } })
  t.same(resolveKey('carp.N.vip'), { kind: 'unknown' }, 'the pattern itself is not a key')
  t.same(resolveKey('carp.1.nope'), { kind: 'unknown' })
  t.same(resolveKey('sync.1.interface'), { kind: 'unknown' }, 'sync has no numbered blocks')
  t.same(resolveKey('nope'), { kind: 'unknown' })
})

t.test('instantiate and formatMs', async (t) => {
  t.equal(instantiate('carp.N.vip', 7), 'carp.7.vip')
  t.equal(instantiate('node', 7), 'node')
  t.same([0, 1, 250, 999, 1000, 1500, 3600000].map(formatMs), ['0s', '1ms', '250ms', '999ms', '1s', '1.5s', '3600s'])
})
