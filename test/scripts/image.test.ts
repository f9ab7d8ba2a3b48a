// scripts/image.mjs's command line: what it says before it builds anything. The build
// itself (root, mmdebstrap, a minute to three) and the boot are the board lab's.
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'

const SCRIPT = fileURLToPath(new URL('../../scripts/image.mjs', import.meta.url))
const image = (...args: string[]): { code: number | null; out: string; err: string } => {
  const r = spawnSync(process.execPath, [SCRIPT, ...args], { encoding: 'utf8', timeout: 30_000 })
  return { code: r.status, out: r.stdout, err: r.stderr }
}

t.test('--help says what it builds and what it needs', async (t) => {
  const r = image('--help')
  t.equal(r.code, 0)
  t.match(r.out, /^usage: npm run image -- --board NAME --out FILE/)
  t.match(r.out, /mmdebstrap, e2fsprogs, dosfstools, mtools, syslinux, fdisk/)
})

t.test('a board without Node.js, or no --out, is refused before anything is built', async (t) => {
  const wrap = image('--board', 'wrap', '--out', '/nonexistent/x.img')
  t.equal(wrap.code, 1)
  t.match(wrap.err, /^image: --board wrap: images are built for apu2 \(an x86-64 board that runs Node\.js/)
  const thin = image('--board', 'thinclient', '--out', '/nonexistent/x.img')
  t.match(thin.err, /with a serial console apart from its heartbeat port/, 'a thin client\'s COM port is its heartbeat: no image for it yet')
  const noOut = image('--board', 'apu2')
  t.equal(noOut.code, 1)
  t.match(noOut.err, /--board and --out are required/)
  const unknown = image('--bogus')
  t.equal(unknown.code, 1, 'an unknown option is a usage error')
  t.match(unknown.err, /^image: Unknown option '--bogus'/)
  t.notMatch(unknown.err, /    at /, 'no stack trace')
})
