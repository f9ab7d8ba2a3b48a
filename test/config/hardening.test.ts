// What an adversarial pass over carpd.js found in reading the configuration (issue
// 17, items 2, 6, 8): secrets in error messages, CR line ends, raw bytes and huge
// lines on the console, and a "did you mean" search that froze a reload.
import t from 'tap'
import { SHOWN_MAX_CHARS } from '../../src/config/errors.js'
import { SUGGESTIONS_MAX } from '../../src/config/load.js'
import { CONFIG_MAX_BYTES } from '../../src/io/files.js'
import { errorsOf, load } from '../helpers/config-fixtures.js'

const SECRET = 'hunter2'
/** Everything check or a reload prints of the errors, and the values they carry. */
const messages = (text: string): string => errorsOf(load(text)).map((e) => `${e.message}\n${e.value}`).join('\n')

t.test('a file with CR-only line ends loads line by line; no secret in any message', async (t) => {
  const text = ['node = fw-a', 'carp.1.interface = lan0', 'carp.1.vip = 192.0.2.1/24', `carp.1.pass = ${SECRET}`, 'carp.1.advskew = x'].join('\r')
  const errors = errorsOf(load(text))
  t.same(errors.map((e) => e.key), ['carp.1.advskew'], 'only the bad line is an error')
  t.notMatch(messages(text), SECRET)
  t.ok(load(text.replace('carp.1.advskew = x', 'carp.1.advskew = 5')).ok, 'and a good CR-only file loads')
})

t.test('a missing line break does not show the next line (it may be a secret)', async (t) => {
  const text = ['node = fw-a', 'carp.1.interface = lan0', `carp.1.vip = 192.0.2.1/24carp.1.pass = ${SECRET}`].join('\n')
  const all = messages(text)
  t.notMatch(all, SECRET)
  t.match(all, /carp\.1\.vip = \*+: .*not shown, holds a "=": a line break missing\?/)
})

t.test('a secret typed into its file key is not echoed', async (t) => {
  const text = ['node = fw-a', 'carp.1.interface = lan0', 'carp.1.vip = 192.0.2.1/24', `carp.1.passfile = ${SECRET}`].join('\n')
  const all = messages(text)
  t.notMatch(all, SECRET)
  t.match(all, /carp\.1\.passfile = \*+: not an absolute path/)
})

t.test('control bytes and escape sequences are escaped, long keys and values cut', async (t) => {
  const text = ['node = fw-a', 'carp.1.interface = lan0', 'carp.1.vip = 192.0.2.1/24', 'carp.1.pass = x', 'serial.device = \x1b[2J\x07tty', `${'k'.repeat(5000)} = 1`].join('\n')
  const errors = errorsOf(load(text))
  t.equal(errors.length, 2)
  t.equal(errors[0]!.message, '/cf/carpd.conf:5: serial.device = \\x1b[2J\\x07tty: not an absolute path (allowed: an absolute path)')
  t.ok(errors[1]!.message.length < 200, 'a 5,000-character key is cut in the message')
  t.match(errors[1]!.message, `${'k'.repeat(SHOWN_MAX_CHARS)}… (5000 characters): unknown key`)
})

t.test('an 8,000-character unknown key and a file of unknown keys up to the size limit stay cheap', async (t) => {
  let started = performance.now()
  const long = errorsOf(load(`node = fw-a\n${'carp.1.advskew'.repeat(600)}1 = 1\n`))
  const oneMs = performance.now() - started
  t.match(long, [{ code: 'unknownKey', suggestion: '' }], 'no suggestion for a word no key is near')
  // A file of short unknown keys filling the whole size limit.
  const lines: string[] = ['node = fw-a']
  for (let i = 0, bytes = 0; bytes < CONFIG_MAX_BYTES - 30; i++) {
    lines.push(`carp.${i % 200}.advskw = 1`)
    bytes += lines[lines.length - 1]!.length + 1
  }
  const text = lines.join('\n')
  started = performance.now()
  const errors = errorsOf(load(text))
  const manyMs = performance.now() - started
  const suggested = errors.filter((e) => e.suggestion !== '').length
  t.ok(errors.length > 5000, `${errors.length} unknown keys reported`)
  t.ok(suggested <= SUGGESTIONS_MAX, `${suggested} of them with a suggestion (at most ${SUGGESTIONS_MAX})`)
  t.comment(`8,000-character key: ${oneMs.toFixed(1)} ms; ${text.length} bytes of unknown keys: ${manyMs.toFixed(1)} ms`)
})

t.test('a secret file that is a FIFO or a device is refused, with no content shown', async (t) => {
  const { mkdtempSync, rmSync } = await import('node:fs')
  const { execFileSync } = await import('node:child_process')
  const { join } = await import('node:path')
  const { tmpdir } = await import('node:os')
  const { loadConfig } = await import('../../src/config/load.js')
  const { BOARDS } = await import('../../src/config/boards.gen.js')
  const { SECRET_FILE_MAX_BYTES, readBoundedFile } = await import('../../src/io/files.js')
  const dir = mkdtempSync(join(tmpdir(), 'carpd-secret-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const fifo = join(dir, 'pass')
  execFileSync('mkfifo', [fifo])
  for (const [path, what] of [[fifo, 'not a regular file'], ['/dev/urandom', 'not a regular file']] as const) {
    const text = ['node = fw-a', 'carp.1.interface = lan0', 'carp.1.vip = 192.0.2.1/24', `carp.1.passfile = ${path}`].join('\n')
    const result = loadConfig(text, '/cf/carpd.conf', { readFile: (p) => readBoundedFile(p, SECRET_FILE_MAX_BYTES), boards: BOARDS })
    t.match(errorsOf(result), [{ code: 'secretFile', message: new RegExp(`cannot read the secret file \\(${what}\\)`) }])
  }
})

t.test('review: a line without its "=" or with a typo for it shows no secret in the key', async (t) => {
  const base = ['node = fw-a', 'carp.1.interface = lan0', 'carp.1.vip = 192.0.2.1/24', 'carp.1.pass = x']
  for (const line of [`sync.key ${SECRET}Zm9vYmFy=`, `carp.1.pass:${SECRET}`, `carp.1.pass:${SECRET} = 1`]) {
    const all = messages([...base, line].join('\n'))
    t.notMatch(all, SECRET, line)
  }
  t.match(messages([...base, 'sync.key hunter2='].join('\n')), /key "sync\.key…" contains white space/)
})

t.test('review: a duplicate of an unknown key or a secret file key does not show its value', async (t) => {
  const base = ['node = fw-a', 'carp.1.interface = lan0', 'carp.1.vip = 192.0.2.1/24', 'carp.1.pass = x']
  t.notMatch(messages([...base, `carp.1.passwd = ${SECRET}`, `carp.1.passwd = ${SECRET}`].join('\n')), SECRET)
  t.notMatch(messages([...base, `sync.keyfile = ${SECRET}`, `sync.keyfile = ${SECRET}`].join('\n')), SECRET)
})

t.test('review: a check that quotes a huge value is cut too', async (t) => {
  const long = `192.0.2.1/24,${'9'.repeat(100_000)}`
  const errors = errorsOf(load(['node = fw-a', 'carp.1.interface = lan0', `carp.1.vip = ${long}`, 'carp.1.pass = x'].join('\n')))
  t.equal(errors.length, 1)
  t.ok(errors[0]!.message.length < 600, `${errors[0]!.message.length} characters`)
})
