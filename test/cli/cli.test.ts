// The bundle as an operator uses it: build/carpd.js run as a child process.
import t from 'tap'
import { CARPD, bundleRunner } from '../helpers/bundle.js'
import { execFileSync, spawn } from 'node:child_process'
import { chmodSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { type Watched, watchLines } from '../helpers/lines.js'
import { freeUdpPort } from '../helpers/ports.js'

const { dir, carpd, file } = bundleRunner(t, 'carpd-cli-')

t.test('the bundle: #! line, plain minified CommonJS, node: built-ins only, at most 250 KB', async (t) => {
  const code = readFileSync(CARPD, 'utf8')
  t.match(code.split('\n')[0], /^#!\/usr\/bin\/env node$/)
  t.ok(code.length <= 250 * 1024, `the file to copy is ${code.length} bytes (goal: 250 KB)`)
  t.notMatch(code, /module\._compile|brotliDecompressSync/, 'no loader: the code itself, readable in a stack trace')
  t.match(code, /starting version=/, 'its own strings are there to read')
  const required = [...code.matchAll(/require\("([^"]+)"\)/g)].map((m) => m[1])
  t.ok(required.length > 0)
  t.same(required.filter((m) => !m!.startsWith('node:')), [], 'every require is node:')
  t.notMatch(code, /\bimport\s*\(\s*"(?!node:)/, 'no dynamic import of other modules')
})

t.test('--help on every command, version, usage errors', async (t) => {
  for (const cmd of ['run', 'check', 'status', 'ctl', 'rules', 'witness', 'fence', 'version', 'help']) {
    const r = carpd(cmd, '--help')
    t.equal(r.code, 0, `${cmd} --help`)
    t.match(r.out, new RegExp(`^usage: carpd ${cmd === 'run' ? '\\[run\\]' : cmd}`), `${cmd} usage`)
  }
  t.match(carpd('--help').out, /commands:/)
  t.match(carpd('version').out, /^carpd \d+\.\d+\.\d+\n$/)
  const bad = carpd('frobnicate')
  t.equal(bad.code, 1)
  t.match(bad.err, /unknown command frobnicate/)
  for (const word of ['constructor', 'toString', '__proto__']) {
    const r = carpd(word, '--help')
    t.equal(r.code, 1, `carpd ${word} --help is an unknown command`)
    t.match(r.err, new RegExp(`unknown command ${word}`))
  }
  t.equal(carpd('check', '--bogus').code, 1)
  t.equal(carpd('check', '-c').code, 1)
  const empty = carpd('check', '-c', '')
  t.equal(empty.code, 1)
  t.match(empty.err, /^-c "": cannot read the configuration file: no file named$/m)
  const fifo = join(dir, 'fifo.conf')
  execFileSync('mkfifo', [fifo])
  const started = Date.now()
  const fromFifo = carpd('check', '-c', fifo)
  t.equal(fromFifo.code, 1)
  t.match(fromFifo.err, /fifo\.conf: cannot read the configuration file: not a regular file \(a FIFO\)/)
  t.ok(Date.now() - started < 5000, 'check does not wait for a writer')
  t.match(carpd('help', 'config').out, /\| `carp\.N\.advskew` \|/)
})

t.test('check: effective config with secrets masked; errors name file:line and the nearest key', async (t) => {
  const pass = file('carp.pass', 'hunter2\n')
  const good = file('good.conf', `node = fw-a\nboard = apu2\ncarp.1.interface = lan0\ncarp.1.vip = 192.0.2.1/24\ncarp.1.passfile = ${pass}\n`)
  const ok = carpd('check', '-c', good)
  t.equal(ok.code, 0, ok.err)
  t.match(ok.out, /carp\.1\.pass\s+= \*{8}/)
  t.match(ok.out, /serial\.device\s+= \/dev\/ttyUSB0\s+# board apu2/)
  t.notMatch(ok.out + ok.err, /hunter2/, 'the secret is never printed')
  // Secrets other users may read are named with the command that fixes them.
  chmodSync(pass, 0o644)
  const exposed = carpd('check', '-c', good)
  t.equal(exposed.code, 0)
  t.match(exposed.err, `warning: ${pass} holds carp.1.pass and other users may read it (mode 0644): chmod 600 ${pass}`)
  chmodSync(pass, 0o600)
  const inline = file('inline.conf', 'node = fw-a\ncarp.1.interface = lan0\ncarp.1.vip = 192.0.2.1/24\ncarp.1.pass = hunter2\n')
  chmodSync(inline, 0o640)
  t.match(carpd('check', '-c', inline).err, `warning: ${inline} holds carp.1.pass and other users may read it (mode 0640): chmod 600 ${inline}`)
  chmodSync(inline, 0o600)
  t.notMatch(carpd('check', '-c', inline).err, /warning/, 'mode 600: no warning')

  const bad = file('bad.conf', 'node = fw-a\ncarp.1.interface = lan0\ncarp.1.vip = 192.0.2.1/24\ncarp.1.pass = x\ncarp.1.advskw = 10\ncarp.1.advbase = 300\n')
  const r = carpd('check', '-c', bad)
  t.equal(r.code, 1)
  t.match(r.err, `${bad}:5: carp.1.advskw`)
  t.match(r.err, /did you mean carp\.1\.advskew\?/)
  t.match(r.err, `${bad}:6: carp.1.advbase = 300`)
  t.match(r.err, /2 error\(s\)/)

  const missing = carpd('check', '-c', join(dir, 'nope.conf'))
  t.equal(missing.code, 1)
  t.match(missing.err, /nope\.conf.*ENOENT/)

  const warned = carpd('check', '-c', file('alix.conf', 'node = fw-a\nboard = alix2d3\n'))
  t.equal(warned.code, 0)
  t.match(warned.err, /warning: .*SSE2/)
})

t.test('run refuses what it cannot do, with exit codes 1 and 2', async (t) => {
  const empty = file('empty.conf', 'node = fw-a\n')
  const r1 = carpd('run', '-c', empty, '--dry-run')
  t.equal(r1.code, 1)
  t.match(r1.err, /no carp\.N block/)
  const conf = file('real.conf', 'node = fw-a\ncarp.1.interface = lo\ncarp.1.vip = 192.0.2.1/24\ncarp.1.pass = x\n')
  const bsd = file('bsd.conf', 'node = fw-a\nplatform = openbsd\nsync.backend = pf\nwan.rules = pf\ncarp.1.interface = lo\ncarp.1.vip = 192.0.2.1/24\ncarp.1.pass = x\n')
  const r2 = carpd('run', '-c', bsd)
  t.equal(r2.code, 2)
  t.match(r2.err, /platform openbsd: only linux \(or --dry-run\) is in this version/)
  const noif = file('noif.conf', 'node = fw-a\ncarp.1.interface = nosuch0\ncarp.1.vip = 192.0.2.1/24\ncarp.1.pass = x\n')
  const r3 = carpd('run', '-c', noif, '--dry-run')
  t.equal(r3.code, 2)
  t.match(r3.err, /carp\.1\.interface = nosuch0: no such interface/)
  const r4 = carpd('ctl', 'demote', '300', '-c', conf)
  t.equal(r4.code, 1)
  t.match(r4.err, /out of range/)
  t.equal(carpd('ctl', 'dance', '-c', conf).code, 1)
})

t.test('status with no agent running says so and exits 2', async (t) => {
  const port = await freeUdpPort()
  const conf = file('idle.conf', `node = fw-a\ncontrol.port = ${port}\n`)
  const r = carpd('status', '-c', conf)
  t.equal(r.code, 2)
  t.match(r.err, /no answer from carpd on 127\.0\.0\.1:\d+/)
})

function start(conf: string): Watched {
  const child = spawn(process.execPath, [CARPD, 'run', '-c', conf, '--dry-run'], { stdio: ['ignore', 'pipe', 'pipe'] })
  return watchLines(child, conf, 5000)
}

t.test('run with wan.N blocks runs multi-WAN and says nothing false about it at start', async (t) => {
  const [carp, ctl] = [await freeUdpPort(), await freeUdpPort()]
  const conf = file(
    'wan.conf',
    `node = fw-a\ncontrol.port = ${ctl}\ncarp.port = ${carp}\ncarp.1.interface = lo\ncarp.1.vip = 192.0.2.1/24\ncarp.1.pass = x\n` +
      `carp.1.peer = 127.0.0.1:${carp}\nwan.1.interface = lo\nwan.1.gateway = 127.0.0.2\nwan.1.probe = 127.0.0.53\nwan.rules = iptables\n`,
  )
  const a = start(conf)
  t.teardown(() => void a.child.kill('SIGKILL'))
  await a.waitFor(/fw-a wan new connections/)
  t.notOk(a.lines.some((l) => /not part of this version/.test(l)), 'no "multi-WAN ... not part of this version yet, ignored" (it was false)')
})

t.test('a running pair: status, ctl, SIGUSR1, SIGHUP (bad and good), SIGTERM bow-out', async (t) => {
  const [carpA, carpB, ctlA, ctlB] = [await freeUdpPort(), await freeUdpPort(), await freeUdpPort(), await freeUdpPort()]
  const conf = (node: string, ctl: number, port: number, peer: number, skew: number) =>
    `node = ${node}\ncontrol.port = ${ctl}\ncarp.port = ${port}\ncarp.1.interface = lo\ncarp.1.vip = 192.0.2.1/24\n` +
    `carp.1.advbase = 0\ncarp.1.advskew = ${skew}\ncarp.1.pass = s3cret\ncarp.1.peer = 127.0.0.1:${peer}\n`
  const confA = file('a.conf', conf('fw-a', ctlA, carpA, carpB, 10))
  const confB = file('b.conf', conf('fw-b', ctlB, carpB, carpA, 40))
  const a = start(confA)
  const b = start(confB)
  t.teardown(() => {
    a.child.kill('SIGKILL')
    b.child.kill('SIGKILL')
  })
  await a.waitFor(/fw-a carp vhid=1 BACKUP->MASTER/)
  await new Promise((r) => setTimeout(r, 300))
  t.notOk(b.lines.some((l) => /BACKUP->MASTER/.test(l)), 'b stays backup')
  t.match(a.lines.join('\n'), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z fw-a carp vhid=1 INIT->BACKUP reason="started"$/m, 'console line format')

  const st = carpd('status', '-c', confB, '--json')
  t.equal(st.code, 0, st.err)
  const json = JSON.parse(st.out)
  t.equal(json.node, 'fw-b')
  t.equal(json.vhids[0].state, 'BACKUP')
  t.match(json.vhids[0].master.from, /^127\.0\.0\.1:\d+$/)
  t.match(carpd('status', '-c', confA).out, /vhid 1 MASTER for/)

  const maint = carpd('ctl', 'maint', 'on', '-c', confA)
  t.equal(maint.code, 0, maint.err)
  t.match(maint.out, /maint on/)
  await b.waitFor(/fw-b carp vhid=1 BACKUP->MASTER reason="master 127\.0\.0\.1:\d+ is demoted/)
  await a.waitFor(/fw-a carp vhid=1 MASTER->BACKUP/)
  t.equal(carpd('ctl', 'maint', 'off', '-c', confA).code, 0)
  await a.waitFor(/fw-a carp vhid=1 BACKUP->MASTER reason="preempt/)
  t.equal(carpd('ctl', 'demote', '0', '-c', confA).code, 0)

  b.child.kill('SIGUSR1')
  await b.waitFor(/fw-b status vhid 1 BACKUP/)

  writeFileSync(confB, conf('fw-b', ctlB, carpB, carpA, 40) + 'carp.1.advskw = 3\n')
  b.child.kill('SIGHUP')
  await b.waitFor(/reload rejected, keeping the running configuration: 1 error/)
  await b.waitFor(/b\.conf:10: carp\.1\.advskw/)
  writeFileSync(confB, conf('fw-b', ctlB, carpB, carpA, 60))
  b.child.kill('SIGHUP')
  await b.waitFor(/config reloaded/)
  const after = JSON.parse(carpd('status', '-c', confB, '--json').out)
  t.equal(after.vhids[0].advskew, 60, 'new advskew in effect')

  // A reload that meets a FIFO in place of the file says so at once and the agent
  // keeps answering (it blocked until someone wrote to the FIFO).
  const statusB = file('b-status.conf', conf('fw-b', ctlB, carpB, carpA, 60))
  rmSync(confB)
  execFileSync('mkfifo', [confB])
  b.child.kill('SIGHUP')
  await b.waitFor(/b\.conf: cannot read the configuration file: not a regular file \(a FIFO\)/)
  t.equal(carpd('status', '-c', statusB).code, 0, 'the agent answers after a reload met a FIFO')
  rmSync(confB)
  symlinkSync('/dev/zero', confB)
  b.child.kill('SIGHUP')
  await b.waitFor(/b\.conf: cannot read the configuration file: not a regular file \(a character device\)/)
  t.equal(carpd('status', '-c', statusB).code, 0, 'and after one met /dev/zero')
  rmSync(confB)
  // A vhid on an interface that does not exist: refused, as at start.
  writeFileSync(confB, conf('fw-b', ctlB, carpB, carpA, 60) + 'carp.2.interface = nosuch0\ncarp.2.vip = 192.0.2.9/24\ncarp.2.pass = x\n')
  b.child.kill('SIGHUP')
  await b.waitFor(/config carp\.2\.interface = nosuch0: no such interface with an IPv4 address/)
  t.same(JSON.parse(carpd('status', '-c', statusB, '--json').out).vhids.map((v: { vhid: number }) => v.vhid), [1], 'vhid 2 was not added')
  writeFileSync(confB, conf('fw-b', ctlB, carpB, carpA, 60))

  a.child.kill('SIGTERM')
  t.equal(await a.exited, 0)
  t.match(a.lines.join('\n'), /MASTER->INIT reason="shutting down \(bow-out sent\)"/)
  await b.waitFor(/fw-b carp vhid=1 BACKUP->MASTER reason="master 127\.0\.0\.1:\d+ bowed out"/)
  b.child.kill('SIGTERM')
  t.equal(await b.exited, 0)
})

t.test('rules without WAN blocks is a usage error; stray words are usage errors', async (t) => {
  const conf = file('plain.conf', 'node = fw-a\n')
  const rules = carpd('rules', '-c', conf, '--wan-state', 'up,down', '--routes')
  t.equal(rules.code, 1)
  t.match(rules.err, /no wan\.N block/)
  t.equal(carpd('rules', '--wan-state').code, 1, '--wan-state needs a value')
  const extra = carpd('status', 'extra', 'junk')
  t.equal(extra.code, 1)
  t.match(extra.err, /carpd status: unexpected extra junk/)
  t.equal(carpd('version', 'now').code, 1)
})

t.test('status reads no secret files: a missing passfile does not stop it', async (t) => {
  const port = await freeUdpPort()
  const conf = file('status.conf', `node = fw-a\ncontrol.port = ${port}\ncarp.1.interface = lo\ncarp.1.vip = 192.0.2.1/24\ncarp.1.passfile = ${join(dir, 'absent.pass')}\n`)
  const r = carpd('status', '-c', conf)
  t.equal(r.code, 2, 'no agent: runtime failure, not a config error')
  t.match(r.err, /no answer from carpd/)
  const c = carpd('ctl', 'maint', 'on', '-c', conf)
  t.equal(c.code, 1, 'ctl needs the secret to sign its request')
  t.match(c.err, /absent\.pass/)
})

t.test('a dry-run pair with state sync on loopback: hello, bulk transfers, status, ctl resync', async (t) => {
  const [carpA, carpB, ctlA, ctlB, syncA, syncB] = await Promise.all(Array.from({ length: 6 }, () => freeUdpPort()))
  const conf = (node: string, ctl: number, port: number, peer: number, skew: number, sync: number, syncPeer: number) =>
    `node = ${node}\ncontrol.port = ${ctl}\ncarp.port = ${port}\ncarp.1.interface = lo\ncarp.1.vip = 192.0.2.1/24\n` +
    `carp.1.advbase = 0\ncarp.1.advskew = ${skew}\ncarp.1.pass = s3cret\ncarp.1.peer = 127.0.0.1:${peer}\n` +
    `sync.interface = lo\nsync.port = ${sync}\nsync.peer = 127.0.0.1:${syncPeer}\nsync.key = sync s3cret\n`
  const confA = file('sa.conf', conf('fw-a', ctlA, carpA, carpB, 10, syncA, syncB))
  const confB = file('sb.conf', conf('fw-b', ctlB, carpB, carpA, 40, syncB, syncA))
  const a = start(confA)
  t.teardown(() => a.child.kill('SIGKILL'))
  await a.waitFor(/fw-a carp vhid=1 demote 0->32 reason="sync: waiting for the bulk transfer from the peer"|fw-a sync starting/)
  const b = start(confB)
  t.teardown(() => b.child.kill('SIGKILL'))
  await a.waitFor(/fw-a sync peer heard on the sync link/)
  await b.waitFor(/fw-b sync bulk transfer \d+ from the peer done: 0 states/)
  await b.waitFor(/fw-b carp vhid=1 demote 32->0 reason="sync: bulk transfer done"/)

  const st = carpd('status', '-c', confB)
  t.equal(st.code, 0, st.err)
  t.match(st.out, new RegExp(`sync peer 127\\.0\\.0\\.1:${syncA} up \\(heard [\\d.]+s ago\\)  states: own 0, peer's 0`))
  t.match(st.out, /  sync drops: none/)

  const resync = carpd('ctl', 'resync', '-c', confB)
  t.equal(resync.code, 0, resync.err)
  t.match(resync.out, /resync: asked the peer for its whole table and sending ours\n(.*\n)*resync: done, 0 states from the peer in \d+ ms/)
  await b.waitFor(/fw-b sync operator asked for a full resync/)
  t.equal(JSON.parse(carpd('status', '-c', confB, '--json').out).demote.total, 0, 'resync does not demote')
})

t.test('a fault that escapes every handler exits 2 (a runtime failure, restarted by the service), not Node\'s 1 (a bad file)', async (t) => {
  const port = await freeUdpPort()
  const conf = file('fatal-witness.conf', `node = w\nwitness.listen = 127.0.0.1:${port}\nwitness.key = k\nwitness.state = ${join(dir, 'fatal.state')}\n`)
  // The bundle installs its handlers when it loads; a timer of this script's throws later.
  const script = `process.argv = [process.argv[0], ${JSON.stringify(CARPD)}, 'witness', '-c', ${JSON.stringify(conf)}]; require(${JSON.stringify(CARPD)}); setTimeout(() => { throw new Error('boom in a timer') }, 300); setTimeout(() => Promise.reject(new Error('never reached')), 5000)`
  const r = await new Promise<{ code: number | null; err: string }>((resolve) => {
    const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'ignore', 'pipe'] })
    let err = ''
    child.stderr.on('data', (d: Buffer) => (err += d.toString()))
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000)
    child.on('exit', (code) => {
      clearTimeout(timer)
      resolve({ code, err })
    })
  })
  t.equal(r.code, 2)
  t.match(r.err, /^carpd: fatal: Error: boom in a timer/)
})
