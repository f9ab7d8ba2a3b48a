// The board lab (issue 16): two board images booted under QEMU as a pair, wired as on
// a desk. Run as root:   npm run board-lab [-- --image FILE] [--keep] [--head-start S]
// (--head-start: board B is powered on S seconds before A, so that B's carpd is up
// first and the power-on race is run every time, not only when B happens to boot faster)
//
//   namespace HUB: bridges br-lan, br-wan, br-sync and the boards' tap devices; both
//     QEMUs run here (TCG: /dev/kvm does not work on this machine)
//   board A (preferred, advskew 0) and board B (advskew 100), each: eth0 LAN
//     192.0.2.2/.3, eth1 WAN 198.51.100.2/.3, eth2 sync 198.18.0.1/.2; VIPs 192.0.2.1
//     (vhid 1) and 198.51.100.1 (vhid 2); ttyS0 the console (captured to a file),
//     ttyS1 the null-modem heartbeat cable (a QEMU socket between the two);
//     preempt off; the only configuration is the card's carpd.conf and interfaces
//   CLIENT on the LAN (192.0.2.100, default route via the LAN VIP), SERVER on the WAN
//     (198.51.100.100, default route via the WAN VIP), WITNESS on the LAN (192.0.2.250)
//
// It checks, from the wire (CARP adverts captured on br-lan) and the consoles:
//   1. both boards power on at the same moment: no two advertise at once, and 15 s
//      after both carpd are up the preferred board A is the one advertising (the
//      first one up may take the vhid until A is up: quorum/README.md "Power-on");
//   2. the master is powered off (its QEMU killed): the other takes over, and a TCP
//      connection from the client to the server keeps going;
//   3. the old master powers on again: it comes back as backup and the VIP stays.
// Every figure is printed; nothing is sent outside the lab's namespaces.
import { spawn, spawnSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { copyFileSync, existsSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'

const ROOT = new URL('..', import.meta.url).pathname
const CARPD = join(ROOT, 'build', 'carpd.js')
const { values } = parseArgs({ options: { image: { type: 'string' }, keep: { type: 'boolean' }, 'head-start': { type: 'string' } } })
const HEAD_START_S = Number(values['head-start'] ?? 0)
if (!Number.isFinite(HEAD_START_S) || HEAD_START_S < 0 || HEAD_START_S > 120) {
  console.error(`board lab: --head-start ${values['head-start']}: seconds from 0 to 120`)
  process.exit(2)
}
const PREFIX = `carpdbl-${process.pid}-${randomBytes(2).toString('hex')}`
const ns = (name) => `${PREFIX}-${name}`
const dir = mkdtempSync(join(tmpdir(), `${PREFIX}-`))
const namespaces = []
const children = new Set()
const ADVBASE_S = 1

function ip(...args) {
  const r = spawnSync('ip', args, { encoding: 'utf8' })
  if (r.status !== 0) throw new Error(`ip ${args.join(' ')}: ${r.stderr.trim()}`)
  return r.stdout
}

function addNs(name) {
  ip('netns', 'add', ns(name))
  namespaces.push(ns(name))
  ip('-n', ns(name), 'link', 'set', 'lo', 'up')
}

/** A host namespace cabled to a hub bridge by a veth, with an address and a default route. */
function host(name, bridge, cidr, via) {
  addNs(name)
  const port = `v-${name}`.slice(0, 15)
  ip('-n', ns('hub'), 'link', 'add', port, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns(name))
  ip('-n', ns('hub'), 'link', 'set', port, 'master', bridge, 'up')
  ip('-n', ns(name), 'addr', 'add', cidr, 'dev', 'eth0')
  ip('-n', ns(name), 'link', 'set', 'eth0', 'up')
  if (via) ip('-n', ns(name), 'route', 'add', 'default', 'via', via)
}

function start(name, argv, log) {
  const child = spawn('ip', ['netns', 'exec', ns(name), ...argv], { stdio: ['ignore', 'pipe', 'pipe'] })
  children.add(child)
  child.on('exit', () => children.delete(child))
  if (log) {
    child.stdout.on('data', (d) => log.push(...d.toString().split('\n').filter(Boolean)))
    child.stderr.on('data', (d) => log.push(...d.toString().split('\n').filter(Boolean)))
  }
  return child
}

function cleanup() {
  for (const c of children) c.kill('SIGKILL')
  for (const n of namespaces.splice(0)) {
    for (const pid of spawnSync('ip', ['netns', 'pids', n], { encoding: 'utf8' }).stdout.split(/\s+/).filter(Boolean)) {
      try {
        process.kill(Number(pid), 'SIGKILL')
      } catch {
        // gone
      }
    }
    spawnSync('ip', ['netns', 'del', n])
  }
  if (!values.keep) rmSync(dir, { recursive: true, force: true })
}
process.on('exit', cleanup)
for (const s of ['SIGINT', 'SIGTERM']) process.once(s, () => process.exit(130))

const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
/** Every figure and verdict, printed as one JSON line at the end (the test reads it). */
const result = { passed: false }
/** The simulator's invariant (e): the preferred board holds the VIP this long after the later start. */
const BOOT_SETTLE_MS = 15_000

async function until(check, timeoutMs, stepMs = 100) {
  const t0 = Date.now()
  while (Date.now() - t0 < timeoutMs) {
    if (check()) return Date.now() - t0
    await sleep(stepMs)
  }
  return -1
}

/** A board's card: carpd.conf and interfaces written into a copy of the image's FAT partition. */
function board(name, n, skew) {
  const img = join(dir, `${name}.img`)
  spawnSync('cp', ['--sparse=always', values.image, img])
  const conf = [
    'board = apu2',
    `node = ${name}`,
    'log.format = short',
    'serial.device = /dev/ttyS1',
    'carp.preempt = no',
    'carp.1.interface = eth0',
    'carp.1.vip = 192.0.2.1/24',
    'carp.1.pass = board lab one',
    `carp.1.advbase = ${ADVBASE_S}`,
    `carp.1.advskew = ${skew}`,
    'carp.2.interface = eth1',
    'carp.2.vip = 198.51.100.1/24',
    'carp.2.pass = board lab two',
    `carp.2.advbase = ${ADVBASE_S}`,
    `carp.2.advskew = ${skew}`,
    'sync.interface = eth2',
    `sync.peer = 198.18.0.${3 - n}`,
    'sync.key = board lab sync key',
    'witness = 192.0.2.250',
    'witness.key = board lab witness key',
    '',
  ].join('\n')
  const interfaces = [
    'auto lo',
    'iface lo inet loopback',
    ...[['eth0', `192.0.2.${n + 1}/24`], ['eth1', `198.51.100.${n + 1}/24`], ['eth2', `198.18.0.${n}/24`]].flatMap(([i, a]) => [`auto ${i}`, `iface ${i} inet static`, `    address ${a}`]),
    '',
  ].join('\n')
  writeFileSync(join(dir, `${name}.conf`), conf)
  writeFileSync(join(dir, `${name}.interfaces`), interfaces)
  for (const [local, remote] of [[`${name}.conf`, 'carpd.conf'], [`${name}.interfaces`, 'interfaces']]) {
    const r = spawnSync('mcopy', ['-o', '-i', `${img}@@1M`, join(dir, local), `::/${remote}`], { encoding: 'utf8' })
    if (r.status !== 0) throw new Error(`mcopy: ${r.stderr}`)
  }
  for (const [i, bridge] of [[0, 'br-lan'], [1, 'br-wan'], [2, 'br-sync']]) {
    ip('-n', ns('hub'), 'tuntap', 'add', 'dev', `tap${name}${i}`, 'mode', 'tap')
    ip('-n', ns('hub'), 'link', 'set', `tap${name}${i}`, 'master', bridge, 'up')
  }
  return { name, img, console: join(dir, `${name}.console`), macs: [0, 1, 2].map((i) => `52:54:00:0${n}:00:0${i}`) }
}

function powerOn(b, serialArgs = b.serialArgs) {
  b.serialArgs = serialArgs
  const argv = [
    'qemu-system-x86_64', '-accel', 'tcg', '-m', '512', '-smp', '1', '-no-reboot',
    '-drive', `file=${b.img},format=raw,if=virtio`,
    ...[0, 1, 2].flatMap((i) => ['-netdev', `tap,id=n${i},ifname=tap${b.name}${i},script=no,downscript=no`, '-device', `virtio-net-pci,netdev=n${i},mac=${b.macs[i]}`]),
    '-display', 'none', '-monitor', 'none',
    '-serial', `file:${b.console}`,
    ...serialArgs,
  ]
  b.qemu = start('hub', argv)
  b.poweredAt = Date.now()
}

function consoleLines(b) {
  return existsSync(b.console) ? readFileSync(b.console, 'latin1').split(/\r?\n/) : []
}

async function main() {
  if (process.getuid?.() !== 0) throw new Error('needs root (network namespaces, tap devices)')
  if (!values.image) {
    values.image = join(dir, 'carpd-apu2.img')
    const r = spawnSync(process.execPath, [join(ROOT, 'scripts/image.mjs'), '--board', 'apu2', '--out', values.image], { stdio: 'inherit' })
    if (r.status !== 0) throw new Error('the image did not build')
  }
  addNs('hub')
  for (const br of ['br-lan', 'br-wan', 'br-sync']) {
    ip('-n', ns('hub'), 'link', 'add', br, 'type', 'bridge')
    ip('-n', ns('hub'), 'link', 'set', br, 'up')
  }
  host('client', 'br-lan', '192.0.2.100/24', '192.0.2.1')
  host('server', 'br-wan', '198.51.100.100/24', '198.51.100.1')
  host('witness', 'br-lan', '192.0.2.250/24')
  writeFileSync(join(dir, 'witness.conf'), ['node = witness', 'witness.listen = 192.0.2.250:8241', 'witness.key = board lab witness key', `witness.state = ${join(dir, 'witness.state')}`, ''].join('\n'), { mode: 0o600 })
  const witnessLog = []
  start('witness', [process.execPath, CARPD, 'witness', '-c', join(dir, 'witness.conf')], witnessLog)
  // Adverts on the LAN, who sent them and when. Both boards send from the VIP's
  // virtual MAC (and the VIP once master), so the sender is told by the advert's own
  // advskew: A's is 0, B's 100 (byte 2 of the CARP header, after 20 bytes of IP and 8
  // of UDP).
  const adverts = []
  const capture = start('hub', ['tcpdump', '-l', '-n', '-tt', '-x', '-i', 'br-lan', 'udp dst port 8240'])
  let packet = null
  const flush = () => {
    if (packet === null) return
    const bytes = packet.hex.match(/../g) ?? []
    const skew = parseInt(bytes[30] ?? 'ff', 16)
    adverts.push({ at: packet.at, from: skew === 0 ? 'A' : skew === 100 ? 'B' : `skew ${skew}` })
    packet = null
  }
  let pending = ''
  capture.stdout.on('data', (d) => {
    const lines = (pending + d.toString()).split('\n')
    pending = lines.pop()
    for (const line of lines) {
      const head = /^(\d+\.\d+) IP /.exec(line)
      if (head) {
        flush()
        packet = { at: Number(head[1]) * 1000, hex: '' }
      } else if (packet && /^\s+0x[0-9a-f]+:/.test(line)) packet.hex += line.replace(/^\s+0x[0-9a-f]+:\s+/, '').replace(/\s+/g, '')
    }
    // A packet's hex lines come right after its head: the last one is complete once
    // the next head or a quiet moment comes; 36 + 28 bytes is all it has.
    if (packet && packet.hex.length >= 128) flush()
  })
  const a = board('A', 1, 0)
  const b = board('B', 2, 100)
  const cable = join(dir, 'null-modem.sock')

  // 1. Both on at the same moment.
  // The first one on holds the null-modem cable's socket; the other connects to it.
  const [firstOn, secondOn] = HEAD_START_S > 0 ? [b, a] : [a, b]
  const t0 = Date.now()
  powerOn(firstOn, ['-chardev', `socket,id=hb,path=${cable},server=on,wait=off`, '-serial', 'chardev:hb'])
  await until(() => existsSync(cable), 5000, 20)
  await sleep(HEAD_START_S * 1000)
  powerOn(secondOn, ['-chardev', `socket,id=hb,path=${cable},reconnect=1`, '-serial', 'chardev:hb'])
  const first = await until(() => adverts.length > 0, 180_000)
  if (first < 0) throw new Error('no advert within 180 s of power-on')
  // The boards' carpd start seconds apart; the first one up takes the vhid and the
  // preferred one, once up, takes it over (quorum/README.md "Power-on"). Judged once
  // both are up and the later one has had BOOT_SETTLE_MS to do it.
  if ((await until(() => [a, b].every((x) => consoleLines(x).some((l) => /INIT->BACKUP/.test(l))), 180_000)) < 0) throw new Error('a board did not start carpd within 180 s of power-on')
  const bothUp = Date.now() - t0
  await sleep(BOOT_SETTLE_MS)
  const boot = adverts.filter((x) => x.at >= t0)
  const senders = [...new Set(boot.map((x) => x.from))]
  const firstOf = (who) => boot.find((x) => x.from === who)?.at ?? Infinity
  const lastOf = (who) => boot.findLast((x) => x.from === who)?.at ?? -Infinity
  Object.assign(result, { headStartS: HEAD_START_S, firstAdvertMs: Math.round(boot[0].at - t0), bothUpMs: bothUp, senders })
  console.log(`power-on to first advert: ${((boot[0].at - t0) / 1000).toFixed(1)} s (from ${boot[0].from}); both carpd up after ${(bothUp / 1000).toFixed(1)} s; advert senders, in order: ${senders.join(', ')}`)
  // Dual holding: both advertising at once, that is adverts of each after the other's first.
  const dual = senders.length > 1 && lastOf('A') > firstOf('B') && lastOf('B') > firstOf('A')
  result.dual = dual
  if (dual) throw new Error(`dual holding at power-on: adverts from A (${((firstOf('A') - t0) / 1000).toFixed(1)}..${((lastOf('A') - t0) / 1000).toFixed(1)} s) and B (${((firstOf('B') - t0) / 1000).toFixed(1)}..${((lastOf('B') - t0) / 1000).toFixed(1)} s)`)
  const master = boot.at(-1).from
  if (senders.length > 1) console.log(`power-on race: ${senders[0]} took the vhid first, ${master} took it over ${((firstOf(master) - lastOf(senders[0])) / 1000).toFixed(2)} s after ${senders[0]}'s last advert`)
  const m = master === 'A' ? a : b
  result.master = master
  console.log(`master after power-on: ${master} (${master === 'A' ? 'the preferred board' : 'NOT the preferred board'})`)

  // 2. A TCP stream client -> server through the pair, then the master's power goes.
  const serverLog = []
  start('server', ['socat', 'TCP-LISTEN:9000,reuseaddr', 'SYSTEM:cat'], serverLog)
  await sleep(500)
  const echoes = []
  const stream = start('client', [process.execPath, '-e', `
    const s = require('net').connect(9000, '198.51.100.100'); let n = 0; s.setNoDelay(true)
    s.on('data', (d) => { for (const l of d.toString().split('\\n').filter(Boolean)) console.log(Date.now() + ' ' + l) })
    s.on('error', (e) => { console.log('error ' + e.code); process.exit(1) }); s.on('close', () => { console.log('closed'); process.exit(0) })
    setInterval(() => s.write(String(n++) + '\\n'), 100)`], echoes)
  const flowing = await until(() => echoes.length >= 20, 20_000)
  if (flowing < 0) throw new Error(`no TCP echo through the pair: ${echoes.slice(-3).join(' | ')}`)
  const killedAt = Date.now()
  m.qemu.kill('SIGKILL')
  const other = master === 'A' ? 'B' : 'A'
  const takeover = await until(() => adverts.some((x) => x.from === other && x.at > killedAt), 30_000)
  const resumed = await until(() => echoes.some((l) => Number(l.split(' ')[0]) > killedAt + takeover), 30_000)
  const gap = (() => {
    const times = echoes.map((l) => Number(l.split(' ')[0])).filter((x) => x > 0)
    let max = 0
    for (let i = 1; i < times.length; i++) max = Math.max(max, times[i] - times[i - 1])
    return max
  })()
  Object.assign(result, { takeoverMs: takeover, tcpResumed: resumed >= 0, longestEchoGapMs: gap })
  console.log(`master ${master} powered off: ${other} advertises after ${(takeover / 1000).toFixed(2)} s; TCP ${resumed >= 0 ? 'goes on' : 'STOPPED'} (longest gap between echoes ${(gap / 1000).toFixed(2)} s; ${echoes.filter((l) => /error|closed/.test(l)).join(', ') || 'no reset'})`)

  // 3. The old master comes back.
  const backAt = Date.now()
  // Its console from the first power-on stays beside the new one (consoles.before in the result).
  renameSync(m.console, `${m.console}.before`)
  if (m === firstOn) rmSync(cable, { force: true })
  powerOn(m)
  const backUp = await until(() => consoleLines(m).some((l) => /INIT->BACKUP/.test(l)), 180_000)
  await sleep(15_000)
  const after = adverts.filter((x) => x.at > backAt)
  const afterSenders = [...new Set(after.map((x) => x.from))]
  Object.assign(result, { returnUpMs: backUp, sendersAfterReturn: afterSenders })
  console.log(`${master} powered on again: its carpd up after ${(backUp / 1000).toFixed(1)} s; advert senders since: ${afterSenders.join(', ')} (${afterSenders.length === 1 && afterSenders[0] === other ? 'no flap' : 'FLAP'})`)
  // carpd's lines reach the console through journald: `[  uptime] carpd[PID]: HH:MM:SS ...`.
  const carpdLines = (lines) => lines.filter((l) => /carpd\[\d+\]: /.test(l)).map((l) => l.replace(/^.*carpd\[\d+\]: /, ''))
  result.consoles = Object.fromEntries([a, b].map((x) => [x.name, carpdLines(consoleLines(x))]))
  result.consoleBefore = { [m.name]: carpdLines(readFileSync(`${m.console}.before`, 'latin1').split(/\r?\n/)) }
  for (const x of [a, b]) console.log(`console ${x.name} (since its last power-on):\n  ${result.consoles[x.name].join('\n  ')}`)
  // The namespace lab's failover at advbase 1 is 2.86 s (README, Figures): twice that.
  const takeoverBound = 2 * 2858
  const reset = echoes.some((l) => /error|closed/.test(l))
  Object.assign(result, { tcpReset: reset, takeoverBoundMs: takeoverBound })
  console.log(`takeover ${takeover} ms against ${takeoverBound} ms (twice the namespace lab's)`)
  const ok = master === 'A' && takeover >= 0 && takeover <= takeoverBound && resumed >= 0 && !reset && afterSenders.length === 1 && afterSenders[0] === other
  result.passed = ok
  console.log(ok ? 'board lab: passed' : 'board lab: FAILED')
  return ok ? 0 : 1
}

main().then(
  (code) => {
    console.log(`board lab result: ${JSON.stringify(result)}`)
    process.exit(code)
  },
  (err) => {
    console.error(`board lab: ${err.message}`)
    console.log(`board lab result: ${JSON.stringify({ ...result, error: err.message })}`)
    process.exit(2)
  },
)
