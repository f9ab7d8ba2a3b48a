import t from 'tap'
import { lex } from '../../src/config/lexer.js'

const F = 'test.conf'

t.test('key = value lines with line numbers, trimmed', async (t) => {
  const { entries, errors } = lex('node = fw-a\n  carp.1.vip=192.0.2.1/24  \n\tplatform\t=\tlinux\t\n', F)
  t.same(errors, [])
  t.same(entries, [
    { key: 'node', value: 'fw-a', line: 1, file: F },
    { key: 'carp.1.vip', value: '192.0.2.1/24', line: 2, file: F },
    { key: 'platform', value: 'linux', line: 3, file: F },
  ])
})

t.test('comments and blank lines are skipped but counted', async (t) => {
  const text = ['# a comment', '', '   ', '  # indented comment', 'node = fw-a # trailing', 'witness = 192.0.2.50:8241\t# tab before #'].join('\n')
  const { entries, errors } = lex(text, F)
  t.same(errors, [])
  t.same(entries.map((e) => [e.line, e.key, e.value]), [
    [5, 'node', 'fw-a'],
    [6, 'witness', '192.0.2.50:8241'],
  ])
})

t.test('a # inside a value is kept unless white space precedes it', async (t) => {
  const { entries } = lex('carp.1.pass = a#b#c\nsync.key =#x\nboard.note = see #8926\n', F)
  t.same(entries.map((e) => e.value), ['a#b#c', '#x', 'see'])
})

t.test('only the first = splits key and value', async (t) => {
  const { entries } = lex('carp.1.pass = a=b = c', F)
  t.same(entries.map((e) => [e.key, e.value]), [['carp.1.pass', 'a=b = c']])
})

t.test('an empty value is an entry (the schema decides if it is allowed)', async (t) => {
  const { entries, errors } = lex('witness =\nwitness.listen = # none', F)
  t.same(errors, [])
  t.same(entries.map((e) => [e.key, e.value]), [['witness', ''], ['witness.listen', '']])
})

t.test('CRLF line ends and a byte-order mark are tolerated', async (t) => {
  const { entries, errors } = lex('\uFEFFnode = fw-a\r\nplatform = linux\r\n', F)
  t.same(errors, [])
  t.same(entries.map((e) => [e.line, e.key, e.value]), [[1, 'node', 'fw-a'], [2, 'platform', 'linux']])
})

t.test('keys are kept as written (case-sensitive)', async (t) => {
  const { entries } = lex('Node = fw-a', F)
  t.equal(entries[0]?.key, 'Node')
})

t.test('syntax errors name file and line and do not stop the lexer', async (t) => {
  const text = ['node = fw-a', 'carp.1.vip 192.0.2.1/24', ' = value', 'carp 1 vip = x', 'platform = linux'].join('\n')
  const { entries, errors } = lex(text, F)
  t.same(entries.map((e) => e.key), ['node', 'platform'])
  t.same(errors.map((e) => [e.code, e.file, e.line]), [
    ['syntax', F, 2],
    ['syntax', F, 3],
    ['syntax', F, 4],
  ])
  t.match(errors[0]?.message, /^test\.conf:2: expected "key = value"$/)
  t.match(errors[1]?.message, /^test\.conf:3: missing key before "="$/)
  // Only up to the first character no key has: a line missing its "=" may put a
  // secret into the key (`sync.key Zm9v...=`).
  t.match(errors[2]?.message, /^test\.conf:4: key "carp…" contains white space$/)
})

t.test('a line without = is not echoed (it may be a pasted secret)', async (t) => {
  const { errors } = lex('hunter2', F)
  t.equal(errors.length, 1)
  t.notMatch(errors[0]?.message, /hunter2/)
  t.equal(errors[0]?.value, '')
})

t.test('empty text gives nothing', async (t) => {
  t.same(lex('', F), { entries: [], errors: [] })
})
