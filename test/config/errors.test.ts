import t from 'tap'
import { configError, ioError } from '../../src/config/errors.js'

t.test('full message: file:line: key = value: what (allowed) (did you mean)', async (t) => {
  const e = configError({
    code: 'badValue',
    file: 'a.conf',
    line: 3,
    key: 'carp.1.advskew',
    value: 'x',
    what: 'not a whole number',
    allowed: '0..254',
    suggestion: 'carp.1.advbase',
  })
  t.same(e, {
    code: 'badValue',
    file: 'a.conf',
    line: 3,
    key: 'carp.1.advskew',
    value: 'x',
    allowed: '0..254',
    suggestion: 'carp.1.advbase',
    message: 'a.conf:3: carp.1.advskew = x: not a whole number (allowed: 0..254) (did you mean carp.1.advbase?)',
  })
})

t.test('line-less, key without a value, empty value, no key', async (t) => {
  t.equal(configError({ code: 'missingKey', file: 'a.conf', key: 'node', what: 'missing required key' }).message, 'a.conf: node: missing required key')
  t.equal(configError({ code: 'badValue', file: 'a.conf', line: 2, key: 'node', value: '', what: 'empty value' }).message, 'a.conf:2: node = "": empty value')
  t.equal(configError({ code: 'syntax', file: 'a.conf', line: 9, what: 'expected "key = value"' }).message, 'a.conf:9: expected "key = value"')
})

t.test('a secret value is masked in message and value field', async (t) => {
  const e = configError({ code: 'duplicateKey', file: 'a.conf', line: 4, key: 'sync.key', value: 'hunter2', secret: true, what: 'set again' })
  t.equal(e.value, '********')
  t.equal(e.message, 'a.conf:4: sync.key = ********: set again')
})

t.test('ioError for a configuration file that cannot be read', async (t) => {
  t.match(ioError('/cf/carpd.conf', 'ENOENT'), {
    code: 'io',
    line: 0,
    key: '',
    message: '/cf/carpd.conf: cannot read the configuration file: ENOENT',
  })
})
