import t from 'tap'
import { execFileSync } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { CONFIG_MAX_BYTES, FileReadError, readBoundedFile } from '../../src/io/files.js'

const dir = mkdtempSync(join(tmpdir(), 'carpd-files-'))
t.teardown(() => rmSync(dir, { recursive: true, force: true }))

t.test('a regular file within the limit is read whole', async (t) => {
  const path = join(dir, 'ok.conf')
  writeFileSync(path, 'node = fw-a\n')
  t.equal(readBoundedFile(path, 100), 'node = fw-a\n')
  writeFileSync(join(dir, 'exact'), 'x'.repeat(100))
  t.equal(readBoundedFile(join(dir, 'exact'), 100).length, 100)
})

t.test('hardening: a FIFO is refused at once instead of blocking (issue 17, item 2)', async (t) => {
  const fifo = join(dir, 'fifo')
  execFileSync('mkfifo', [fifo])
  const started = performance.now()
  t.throws(() => readBoundedFile(fifo, 100), { code: 'not a regular file', message: 'not a regular file (a FIFO)' })
  t.ok(performance.now() - started < 1000, 'without waiting for a writer')
})

t.test('hardening: devices, directories and files over the limit are refused, nothing read past the limit', async (t) => {
  t.throws(() => readBoundedFile('/dev/zero', CONFIG_MAX_BYTES), { message: 'not a regular file (a character device)' })
  t.throws(() => readBoundedFile('/dev/urandom', CONFIG_MAX_BYTES), { message: /character device/ })
  t.throws(() => readBoundedFile(dir, 100), { message: 'not a regular file (a directory)' })
  const big = join(dir, 'big')
  writeFileSync(big, 'x'.repeat(101))
  t.throws(() => readBoundedFile(big, 100), { code: 'too large', message: '101 bytes, more than the 100 allowed' })
  t.throws(() => readBoundedFile(join(dir, 'missing'), 100), { code: 'ENOENT' })
  t.ok(new FileReadError('x', 'y') instanceof Error)
})
