// npm run demo: a CARP pair on loopback, no root needed. Two carpd processes with
// unicast peers and --dry-run (they print the ip/arping/conntrack commands instead
// of running them), and state sync between them (a dry-run state table is empty, so
// the bulk transfers carry 0 states). fw-a becomes master; `carpd ctl resync` shows
// a resync; then fw-a is stopped with SIGTERM, bows out, and fw-b takes over at once.
// Ends by itself.
import { spawn, execFileSync } from 'node:child_process'
import { freePort } from './udp-ports.mjs'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

const root = new URL('..', import.meta.url).pathname
const CARPD = join(root, 'build/carpd.js')
const STEP_TIMEOUT_MS = 10_000

const say = (text) => process.stdout.write(`\n=== ${text}\n`)

function configText(node, ports, advskew) {
  return [
    `# demo board ${node}: CARP on loopback with a unicast peer`,
    `node = ${node}`,
    `control.port = ${ports.control}`,
    `carp.port = ${ports.carp}`,
    `carp.1.interface = lo`,
    `carp.1.vip = 192.0.2.1/24`,
    `carp.1.advbase = 1`,
    `carp.1.advskew = ${advskew}`,
    `carp.1.passfile = ${ports.passfile}`,
    `carp.1.peer = 127.0.0.1:${ports.peer}`,
    'sync.interface = lo',
    `sync.port = ${ports.sync}`,
    `sync.peer = 127.0.0.1:${ports.syncPeer}`,
    `sync.keyfile = ${ports.syncKeyfile}`,
    '',
  ].join('\n')
}

function start(name, conf) {
  const child = spawn(process.execPath, [CARPD, 'run', '-c', conf, '--dry-run'], { stdio: ['ignore', 'pipe', 'pipe'] })
  const waiters = []
  let buffer = ''
  const onData = (chunk) => {
    buffer += chunk
    let nl
    while ((nl = buffer.indexOf('\n')) >= 0) {
      const line = buffer.slice(0, nl)
      buffer = buffer.slice(nl + 1)
      process.stdout.write(`  [${name}] ${line}\n`)
      for (const w of [...waiters]) {
        if (w.re.test(line)) {
          waiters.splice(waiters.indexOf(w), 1)
          w.resolve(line)
        }
      }
    }
  }
  child.stdout.setEncoding('utf8').on('data', onData)
  child.stderr.setEncoding('utf8').on('data', onData)
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })))
  const waitFor = (re, what) =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${name}: no "${what}" within ${STEP_TIMEOUT_MS} ms`)), STEP_TIMEOUT_MS)
      waiters.push({ re, resolve: (line) => (clearTimeout(timer), resolve(line)) })
    })
  return { child, waitFor, exited }
}

function carpd(args) {
  return execFileSync(process.execPath, [CARPD, ...args], { encoding: 'utf8' })
}

const dir = mkdtempSync(join(tmpdir(), 'carpd-demo-'))
const procs = []
try {
  const [carpA, carpB, ctlA, ctlB, syncA, syncB] = await Promise.all(Array.from({ length: 6 }, freePort))
  const passfile = join(dir, 'carp.pass')
  writeFileSync(passfile, 'demo secret\n', { mode: 0o600 })
  const syncKeyfile = join(dir, 'sync.key')
  writeFileSync(syncKeyfile, 'demo sync secret\n', { mode: 0o600 })
  const confA = join(dir, 'fw-a.conf')
  const confB = join(dir, 'fw-b.conf')
  writeFileSync(confA, configText('fw-a', { control: ctlA, carp: carpA, peer: carpB, passfile, sync: syncA, syncPeer: syncB, syncKeyfile }, 0))
  writeFileSync(confB, configText('fw-b', { control: ctlB, carp: carpB, peer: carpA, passfile, sync: syncB, syncPeer: syncA, syncKeyfile }, 100))

  say(`carpd check -c ${confA}`)
  process.stdout.write(carpd(['check', '-c', confA]))

  say('starting fw-a (advskew 0) and fw-b (advskew 100); both come up BACKUP and listen 3 s')
  const a = start('fw-a', confA)
  const b = start('fw-b', confB)
  procs.push(a, b)
  await a.waitFor(/BACKUP->MASTER/, 'fw-a becomes master')
  await new Promise((r) => setTimeout(r, 1500))

  say(`carpd status -c ${confB}   (the backup)`)
  process.stdout.write(carpd(['status', '-c', confB]))

  say(`carpd ctl resync -c ${confB}   (the whole state table again, both ways)`)
  process.stdout.write(carpd(['ctl', 'resync', '-c', confB]))

  say('stopping the master fw-a with SIGTERM: it bows out and fw-b takes over at once')
  const killedAt = performance.now()
  const tookOver = b.waitFor(/BACKUP->MASTER/, 'fw-b takes over')
  a.child.kill('SIGTERM')
  await tookOver
  const ms = performance.now() - killedAt
  await a.exited
  say(`fw-b took over ${ms.toFixed(0)} ms after SIGTERM (without bow-out it would wait ${(3 + 100 / 256).toFixed(2)} s)`)
  await new Promise((r) => setTimeout(r, 1200))

  say(`carpd status -c ${confB}   (the new master)`)
  process.stdout.write(carpd(['status', '-c', confB]))

  b.child.kill('SIGTERM')
  await b.exited
  say('demo finished')
} catch (err) {
  process.stderr.write(`demo failed: ${err.message}\n`)
  process.exitCode = 1
} finally {
  for (const p of procs) if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL')
  rmSync(dir, { recursive: true, force: true })
}
