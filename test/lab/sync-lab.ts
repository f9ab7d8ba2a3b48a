// The state sync lab, shared by test/lab/sync.test.ts and the bench: client — LAN
// switch — two routers — WAN switch — server, a stateful firewall and source NAT to
// the WAN VIP on the routers, a crossover sync link between them, 100 TCP streams
// (test/lab/streams.mjs) through the master, then the master powered off.
import { readFileSync } from 'node:fs'
import { spawn } from 'node:child_process'
import { resolve } from 'node:path'
import { NetLab, sleep, until, type Carpd } from './netlab.js'
import { conntrackBackend } from '../../src/platform/conntrack.js'
import { FAMILY_IPV4, PROTO_TCP, type Flow } from '../../src/wire/flow.js'

export const LAN_VIP = '192.0.2.1'
const WAN_VIP = '203.0.113.1'
export const SERVER = '203.0.113.100'

/**
 * The lab's addressing per family: IPv4 with source NAT to the WAN VIP, or IPv6
 * routed (no NAT: the server routes the client's prefix to the WAN VIP). The sync
 * cable stays IPv4 either way.
 */
export type Family = 4 | 6
const NETS = {
  4: { lanVip: LAN_VIP, wanVip: WAN_VIP, server: SERVER, client: '192.0.2.10', prefix: 24, lan: { r1: '192.0.2.2', r2: '192.0.2.3' }, wan: { r1: '203.0.113.2', r2: '203.0.113.3' } },
  6: { lanVip: '2001:db8:1::1', wanVip: '2001:db8:2::1', server: '2001:db8:2::100', client: '2001:db8:1::10', prefix: 64, lan: { r1: '2001:db8:1::2', r2: '2001:db8:1::3' }, wan: { r1: '2001:db8:2::2', r2: '2001:db8:2::3' } },
} as const
const PORT = 9000
export const STREAMS = 100
/** The stream tool beside this file (the bench, bundled elsewhere, passes its path). */
const STREAMS_SCRIPT = resolve(import.meta.dirname, 'streams.mjs')

/**
 * Sub-second CARP: r1 advertises every 26/256 s (~0.1 s), r2 declares it dead after
 * 3 x 29/256 s = 0.34 s, the same as keepalived's backup at advert_int 0.1 and
 * priority 156 (3 x 0.1 + 100/256 x 0.1), so the two pairs are compared fairly.
 */
const ROUTERS = {
  r1: { lan: '192.0.2.2', wan: '203.0.113.2', sync: '198.51.100.1', peer: '198.51.100.2', advskew: 26 },
  r2: { lan: '192.0.2.3', wan: '203.0.113.3', sync: '198.51.100.2', peer: '198.51.100.1', advskew: 29 },
} as const
type Router = keyof typeof ROUTERS

/**
 * The stateful firewall state sync needs (src/sync/README.md): only established flows
 * and new connections from the LAN (its interface or the virtual MAC's carp1) to the
 * WAN interfaces pass; anything conntrack does not know (a mid-stream packet without
 * state, with nf_conntrack_tcp_loose=0) is INVALID and dropped, also when addressed
 * to the router itself (else the kernel would answer it with a reset).
 */
export function statefulFilter(wanInterfaces: readonly string[]): string {
  return `
table inet fw {
  chain forward {
    type filter hook forward priority 0; policy drop;
    ct state established,related accept
    ct state invalid drop
    iifname { "lan0", "carp1" } oifname { ${wanInterfaces.map((i) => `"${i}"`).join(', ')} } tcp flags & (fin|syn|rst|ack) == syn ct state new accept
    iifname { "lan0", "carp1" } oifname { ${wanInterfaces.map((i) => `"${i}"`).join(', ')} } meta l4proto udp ct state new accept
  }
  chain input {
    type filter hook input priority 0; policy accept;
    ct state invalid drop
  }
}
`
}

const FIREWALL = `${statefulFilter(['wan0'])}
table ip nat {
  chain postrouting {
    type nat hook postrouting priority 100;
    oifname "wan0" ip saddr 192.0.2.0/24 snat to ${WAN_VIP}
  }
}
`

/**
 * CARP timing of a lab run: sub-second (above), or the operator's everyday advbase 1
 * with advskew 0 / 100 (master-down 3.4 s) and the default heartbeats.
 */
export type Timing = 'subsecond' | 'advbase1'

export function configText(name: Router, backend: 'conntrack' | 'none', timing: Timing = 'subsecond', family: Family = 4): string {
  const r = ROUTERS[name]
  const net = NETS[family]
  const lines = [`node = ${name}`, 'carp.preempt = yes']
  for (const [vhid, iface, vip] of [[1, 'lan0', net.lanVip], [2, 'wan0', net.wanVip]] as const) {
    lines.push(
      `carp.${vhid}.interface = ${iface}`,
      `carp.${vhid}.vip = ${vip}/${net.prefix}`,
      `carp.${vhid}.advbase = ${timing === 'subsecond' ? 0 : 1}`,
      `carp.${vhid}.advskew = ${timing === 'subsecond' ? r.advskew : name === 'r1' ? 0 : 100}`,
      `carp.${vhid}.pass = lab secret ${vhid}`,
    )
  }
  lines.push('sync.interface = sync0', `sync.peer = ${r.peer}`, 'sync.key = lab sync key', `sync.backend = ${backend}`)
  // The sync link is a peer path too: without a witness the backup takes over only
  // when the peer is silent there as well, so its timeout stays under master-down.
  if (timing === 'subsecond') lines.push('heartbeat.interval = 100ms', 'heartbeat.timeout = 300ms')
  return lines.join('\n') + '\n'
}

export function buildLab(lab: NetLab, family: Family = 4): NetLab {
  const net = NETS[family]
  // IPv6 addresses usable at once: no duplicate address detection on the lab's new links.
  const noDad = (name: string): void => {
    if (family === 6) for (const scope of ['all', 'default']) lab.exec(name, ['sysctl', '-qw', `net.ipv6.conf.${scope}.accept_dad=0`])
  }
  lab.addSwitch('lan')
  lab.addSwitch('wan')
  lab.addNamespace('client')
  noDad('client')
  lab.connect('client', 'eth0', 'lan', `${net.client}/${net.prefix}`)
  lab.ip('-n', lab.ns('client'), 'route', 'add', 'default', 'via', net.lanVip)
  lab.addNamespace('server')
  noDad('server')
  lab.connect('server', 'eth0', 'wan', `${net.server}/${net.prefix}`)
  if (family === 6) lab.ip('-n', lab.ns('server'), 'route', 'add', `${NETS[6].client}/64`, 'via', net.wanVip)
  for (const name of Object.keys(ROUTERS) as Router[]) {
    lab.addNamespace(name)
    noDad(name)
    lab.connect(name, 'lan0', 'lan', `${net.lan[name]}/${net.prefix}`)
    lab.connect(name, 'wan0', 'wan', `${net.wan[name]}/${net.prefix}`)
    lab.exec(name, ['sysctl', '-qw', family === 6 ? 'net.ipv6.conf.all.forwarding=1' : 'net.ipv4.ip_forward=1'])
    lab.exec(name, ['nft', '-f', lab.writeFile(`${name}.nft`, family === 6 ? statefulFilter(['wan0']) : FIREWALL)])
    // Mid-stream packets without state must not create one (no loose pickup).
    lab.exec(name, ['sysctl', '-qw', 'net.netfilter.nf_conntrack_tcp_loose=0'])
  }
  lab.cable('r1', 'sync0', `${ROUTERS.r1.sync}/30`, 'r2', 'sync0', `${ROUTERS.r2.sync}/30`)
  return lab
}

export interface Report {
  t: number
  connected: number
  closed: number
  bad: number
  bytes: number[]
  last: number[]
  errors: string[]
  errorCount: number
}

function lastReport(client: Carpd): Report | null {
  for (let i = client.lines.length - 1; i >= 0; i--) {
    const line = client.lines[i]!
    if (line.startsWith('{')) return JSON.parse(line) as Report
  }
  return null
}

function status(lab: NetLab, name: Router): { vhids: { vhid: number; state: string }[]; sync: { states: { peer: number } } | null } {
  return JSON.parse(lab.carpdOnce(name, ['status', '--json', '-c', `${lab.dir}/${name}.conf`]))
}

const masterOf = (lab: NetLab, name: Router): boolean => {
  try {
    return status(lab, name).vhids.every((v) => v.state === 'MASTER')
  } catch {
    return false
  }
}

export interface Outcome {
  /** ms until all streams flowed through r1 (-1: they never did). */
  flowingMs: number
  /** States the backup held before the cut (sync only). */
  syncedStates: number
  /** r2's transitions to MASTER before the cut (must be none: r1 serves the streams). */
  r2MasterBeforeCut: number
  /** ms from the cut until r2 was MASTER of both vhids (-1: never). */
  takeoverMs: number
  /** Streams that delivered new bytes after the failover. */
  progressed: number
  /** The longest time any stream went without a byte after the cut. */
  worstStallMs: number
  report: Report
  r1: Carpd
  r2: Carpd
  server: Carpd
  client: Carpd
}

/** How a pair of routers is run: carpd, or keepalived + conntrackd for comparison. */
export type PairKind = 'carpd' | 'carpd-nosync' | 'keepalived'

interface Pair {
  start(name: Router): Carpd
  /** Resolves when r1 serves both VIPs and r2 is a synced backup. */
  ready(r1: Carpd, r2: Carpd): Promise<void>
  /** States r2 holds for the peer. */
  synced(): number
  /** r2 serves both VIPs. */
  r2Master(): boolean
}

const holdsVips = (lab: NetLab, name: Router, family: Family = 4): boolean => lab.hasAddress(name, 'lan0', NETS[family].lanVip) && lab.hasAddress(name, 'wan0', NETS[family].wanVip)

function carpdPair(lab: NetLab, backend: 'conntrack' | 'none', timing: Timing = 'subsecond', family: Family = 4): Pair {
  return {
    start: (name) => lab.startCarpd(name, configText(name, backend, timing, family)),
    async ready(r1, r2) {
      await r1.waitFor(/vhid=2 .*BACKUP->MASTER/, 10_000)
      await r2.waitFor(/vhid=2 .*->BACKUP/, 10_000)
      if (backend === 'conntrack') await r2.waitFor(/bulk transfer \d+ from the peer done/, 10_000)
    },
    synced: () => status(lab, 'r2').sync?.states.peer ?? 0,
    r2Master: () => masterOf(lab, 'r2'),
  }
}

/**
 * keepalived (VRRPv3, advert_int 0.1 s, priorities 200/156, both VIPs in one sync
 * group) with conntrackd in FTFW mode over the sync cable, driven by the
 * primary/backup steps of conntrackd's own primary-backup.sh.
 */
function keepalivedPair(lab: NetLab): Pair {
  const conntrackdConf = (name: Router): string => {
    const r = ROUTERS[name]
    return `Sync {
  Mode FTFW {
    DisableExternalCache Off
  }
  UDP {
    IPv4_address ${r.sync}
    IPv4_Destination_Address ${r.peer}
    Port 3780
    Interface sync0
    Checksum on
  }
}
General {
  HashSize 32768
  HashLimit 131072
  LogFile ${lab.dir}/${name}.conntrackd.log
  Syslog off
  LockFile ${lab.dir}/${name}.conntrackd.lock
  UNIX {
    Path ${lab.dir}/${name}.conntrackd.ctl
  }
  NetlinkBufferSize 2097152
  NetlinkBufferSizeMaxGrowth 8388608
  Filter From Userspace {
    Address Ignore {
      IPv4_address 127.0.0.1
      IPv4_address ${r.lan}
      IPv4_address ${r.wan}
      IPv4_address ${r.sync}
    }
  }
}
`
  }
  const keepalivedConf = (name: Router, script: string): string => {
    const instance = (id: number, iface: string, vip: string) => `vrrp_instance VI_${id} {
  state BACKUP
  interface ${iface}
  virtual_router_id ${id}
  priority ${name === 'r1' ? 200 : 156}
  advert_int 0.1
  virtual_ipaddress {
    ${vip}/24
  }
}
`
    return `global_defs {
  router_id ${name}
  vrrp_version 3
  script_user root
  enable_script_security
}
vrrp_sync_group G1 {
  group {
    VI_1
    VI_2
  }
  notify_master "${script} primary"
  notify_backup "${script} backup"
  notify_fault "${script} fault"
}
${instance(1, 'lan0', LAN_VIP)}${instance(2, 'wan0', WAN_VIP)}`
  }
  const ctl = (name: Router, flag: string): string => lab.exec(name, ['conntrackd', '-C', `${lab.dir}/${name}.conntrackd.conf`, flag])
  return {
    start(name) {
      const conf = lab.writeFile(`${name}.conntrackd.conf`, conntrackdConf(name))
      lab.spawnLines(name, ['conntrackd', '-C', conf])
      const c = `conntrackd -C ${conf}`
      // conntrackd's primary-backup.sh, these three cases.
      const script = lab.writeFile(
        `${name}.notify.sh`,
        `#!/bin/sh\ncase "$1" in\nprimary) ${c} -c; ${c} -f; ${c} -R; ${c} -B ;;\nbackup) ${c} -n ;;\nfault) ${c} -t ;;\nesac\nexit 0\n`,
      )
      lab.exec(name, ['chmod', '700', script])
      const kconf = lab.writeFile(`${name}.keepalived.conf`, keepalivedConf(name, script))
      return lab.spawnLines(name, [
        'keepalived', '--dont-fork', '--log-console', '--vrrp', `--use-file=${kconf}`,
        `--pid=${lab.dir}/${name}.k.pid`, `--vrrp_pid=${lab.dir}/${name}.kv.pid`,
      ])
    },
    async ready() {
      if ((await until(() => holdsVips(lab, 'r1'), 10_000, 50)) < 0) throw new Error('keepalived: r1 never held both VIPs')
      await sleep(1000)
    },
    synced: () => {
      try {
        return ctl('r2', '-e').split('\n').filter((l) => l.includes(`dport=${PORT}`)).length
      } catch {
        return 0
      }
    },
    r2Master: () => holdsVips(lab, 'r2'),
  }
}

/**
 * The pair up (r1 serving, r2 a synced backup) and STREAMS streams from the client to
 * the server through r1; with `synced`, until r2 holds every stream's state.
 */
async function startStreams(lab: NetLab, pair: Pair, synced: boolean, streamsScript: string, family: Family = 4) {
  const r1 = pair.start('r1')
  // r2 only once r1 serves: with a fixed head start, a slow start of r1 (a loaded CI
  // machine) let both claim at once and r2 serve for a moment.
  if ((await until(() => holdsVips(lab, 'r1', family), 10_000, 20)) < 0) throw new Error('r1 never held both VIPs')
  const r2 = pair.start('r2')
  await pair.ready(r1, r2)

  const server = lab.spawnLines('server', [process.execPath, streamsScript, 'server', NETS[family].server, String(PORT)])
  await server.waitFor(/listening/)
  const client = lab.spawnLines('client', [process.execPath, streamsScript, 'client', NETS[family].server, String(PORT), String(STREAMS)])
  const flowingMs = await until(() => {
    const r = lastReport(client)
    return r !== null && r.connected === STREAMS && r.bytes.every((b) => b >= 20 * 1024)
  }, 15_000, 100)
  let syncedStates = 0
  // The backup must hold every stream's state before the master dies.
  if (synced) await until(() => (syncedStates = pair.synced()) >= STREAMS, 5000, 100)
  return { r1, r2, server, client, flowingMs, syncedStates }
}

const reportsOf = (client: Carpd): Report[] => client.lines.filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Report)

/** Streams with more than 4 KiB delivered after `fromMs` (by the client's own report times), up to the last report. */
function progressedSince(client: Carpd, fromMs: number): number {
  const reports = reportsOf(client)
  const base = reports.find((r) => r.t >= fromMs) ?? reports[reports.length - 1]!
  const last = reports[reports.length - 1]!
  return last.bytes.filter((b, i) => b > base.bytes[i]! + 4 * 1024).length
}

export interface FailbackOutcome {
  flowingMs: number
  syncedStates: number
  /** ms from the cut until r2 was MASTER of both vhids (-1: never). */
  takeoverMs: number
  /** Streams that went on through r2 while r1's cables were out. */
  progressedOnR2: number
  /** ms from the cables' return until r1 was MASTER of both vhids again (-1: never). */
  failbackMs: number
  /** ms from r1's last bulk transfer in (or the cables' return, when none was needed) until it was MASTER again. */
  failbackAfterBulkMs: number
  /** Streams that went on through r1 after the failback. */
  progressedOnR1: number
  /** r1's console lines from the cables' return on. */
  r1AfterReturn: string[]
  /** The longest time any stream went without a byte after the cut. */
  worstStallMs: number
  report: Report
  r1: Carpd
  r2: Carpd
}

/**
 * Issue 11's scenario in a fresh `lab`: streams through r1, r1's cables in `cut`
 * pulled for `outageMs` while carpd and its kernel keep running (a switch reboot),
 * then put back; r1, preferred and with preempt on, takes its VIPs back. The
 * streams are watched across both moves.
 */
export async function failback(
  lab: NetLab,
  cut: readonly ('lan0' | 'wan0' | 'sync0')[],
  timing: Timing,
  outageMs: number,
  watchMs: number,
  streamsScript = STREAMS_SCRIPT,
): Promise<FailbackOutcome> {
  buildLab(lab)
  const pair = carpdPair(lab, 'conntrack', timing)
  const { r1, r2, client, flowingMs, syncedStates } = await startStreams(lab, pair, true, streamsScript)
  const cutAt = Date.now()
  for (const iface of cut) lab.plug('r1', iface, false)
  const takeoverMs = await until(() => masterOf(lab, 'r2'), 10_000, 50)
  const takeoverAt = Date.now()
  await sleep(Math.max(0, cutAt + outageMs - Date.now()))
  const progressedOnR2 = progressedSince(client, takeoverAt + 500)
  const r1LinesAtReturn = r1.lines.length
  const backAt = Date.now()
  for (const iface of cut) lab.plug('r1', iface, true)
  const failbackMs = await until(() => masterOf(lab, 'r1') && !masterOf(lab, 'r2'), 60_000, 50)
  const failbackAt = Date.now()
  await sleep(watchMs)
  // r1's own lines say when its bulk transfer ended (if it needed one) and when it
  // took each vhid back: their times, not the polling above (each poll runs carpd
  // status twice, 100 ms or more on a loaded machine, and blocks this process, so
  // the lines are read only now).
  const timesOf = (re: RegExp): number[] =>
    r1.lines
      .slice(r1LinesAtReturn)
      .map((l) => re.exec(l)?.[1])
      .filter((at): at is string => at !== undefined)
      .map((at) => Date.parse(at))
  const STAMP = String.raw`(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z) r1 `
  const bulkAt = timesOf(new RegExp(`${STAMP}sync bulk transfer \\d+ from the peer done`))[0] ?? backAt
  const masterAt = Math.max(...timesOf(new RegExp(`${STAMP}carp vhid=\\d+ \\w+->MASTER `)))
  const reports = reportsOf(client)
  const report = reports[reports.length - 1]!
  let worstStallMs = 0
  for (const r of reports) {
    if (r.t < cutAt) continue
    for (const last of r.last) worstStallMs = Math.max(worstStallMs, r.t - Math.max(last, cutAt))
  }
  return {
    flowingMs,
    syncedStates,
    takeoverMs,
    progressedOnR2,
    failbackMs,
    failbackAfterBulkMs: failbackMs < 0 || !Number.isFinite(masterAt) ? -1 : masterAt - bulkAt,
    progressedOnR1: progressedSince(client, failbackAt + 500),
    r1AfterReturn: r1.lines.slice(r1LinesAtReturn),
    worstStallMs,
    report,
    r1,
    r2,
  }
}

/**
 * Runs the scenario in a fresh `lab`: streams through r1, r1 powered off (everything
 * in it killed without a goodbye, every cable dead), the streams watched for `watchMs`.
 */
export async function failover(lab: NetLab, kind: PairKind, watchMs: number, streamsScript = STREAMS_SCRIPT, family: Family = 4): Promise<Outcome> {
  if (kind === 'keepalived' && family === 6) throw new Error('the keepalived pair is IPv4 only')
  buildLab(lab, family)
  const pair = kind === 'keepalived' ? keepalivedPair(lab) : carpdPair(lab, kind === 'carpd' ? 'conntrack' : 'none', 'subsecond', family)
  const { r1, r2, server, client, flowingMs, syncedStates } = await startStreams(lab, pair, kind !== 'carpd-nosync', streamsScript, family)

  const r2MasterBeforeCut = r2.lines.filter((l) => /->MASTER|Entering MASTER/.test(l)).length
  const cutAt = Date.now()
  lab.killAll('r1')
  for (const iface of ['lan0', 'wan0', 'sync0']) lab.linkSet('r1', iface, 'down')
  const takeoverMs = await until(() => pair.r2Master(), 5000, 50)
  const takeoverAt = Date.now()
  await sleep(watchMs)
  // The client's reports carry their own time: the polling above runs commands
  // synchronously, so the last report read then may be from before the cut, and
  // bytes r1 delivered before it died would count as progress.
  const reports = reportsOf(client)
  const report = reports[reports.length - 1]!
  // A stream that went on has bytes beyond what it had when r2 took over.
  const progressed = progressedSince(client, takeoverAt)
  let worstStallMs = 0
  for (const r of reports) {
    if (r.t < cutAt) continue
    for (const last of r.last) worstStallMs = Math.max(worstStallMs, r.t - Math.max(last, cutAt))
  }
  return { flowingMs, syncedStates, r2MasterBeforeCut, takeoverMs, progressed, worstStallMs, report, r1, r2, server, client }
}

/**
 * The client's churn: a new UDP flow every 1000/RATE ms (one datagram from one socket
 * to the next of 40,000 server ports), for SECONDS; the kernel keeps each unreplied
 * flow 30 s, so about 30 x RATE are live.
 */
const UDP_CHURN = `
import { createSocket } from 'node:dgram'
const [host, rate, seconds] = process.argv.slice(2)
const s = createSocket(host.includes(':') ? 'udp6' : 'udp4')
const end = Date.now() + Number(seconds) * 1000
const per = Math.max(1, Math.round(Number(rate) / 100))
let sent = 0
const timer = setInterval(() => {
  if (Date.now() > end) { clearInterval(timer); console.log(JSON.stringify({ sent })); s.close(); return }
  for (let i = 0; i < per; i++) s.send('x', 20000 + (sent++ % 40000), host)
}, 10)
`

/** CPU ticks (utime + stime, and of waited-for children) and RSS of every process in a namespace. */
function namespaceUsage(lab: NetLab, name: string): { ticks: Map<number, number>; comm: Map<number, string>; rssMb: number; anonMb: number } {
  const pids = lab.ip('netns', 'pids', lab.ns(name)).split(/\s+/).filter(Boolean).map(Number)
  const ticks = new Map<number, number>()
  const comm = new Map<number, string>()
  let rssKb = 0
  let anonKb = 0
  for (const pid of pids) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
      ticks.set(pid, Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]))
      comm.set(pid, stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')')))
      const st = readFileSync(`/proc/${pid}/status`, 'utf8')
      rssKb += Number(/VmRSS:\s+(\d+)/.exec(st)?.[1] ?? 0)
      anonKb += Number(/RssAnon:\s+(\d+)/.exec(st)?.[1] ?? 0)
    } catch {
      // gone meanwhile
    }
  }
  return { ticks, comm, rssMb: rssKb / 1024, anonMb: anonKb / 1024 }
}

/** `perf record -g` of every process of a router for `seconds` (the whole process: V8, OpenSSL, the kernel). */
function recordPerf(lab: NetLab, name: string, file: string, seconds: number): Promise<unknown> {
  const pids = lab.ip('netns', 'pids', lab.ns(name)).split(/\s+/).filter(Boolean).join(',')
  const child = spawn('perf', ['record', '-q', '-F', '997', '-g', '-p', pids, '-o', file, '--', 'sleep', String(seconds)], { stdio: 'ignore' })
  return new Promise((resolve) => child.once('exit', resolve))
}

export interface ChurnOutcome {
  /** Flows the client opened during the window, per second. */
  flowsPerS: number
  /** Peer states the backup held at the end (carpd), or conntrackd's external cache lines. */
  backupStates: number
  /** carpd: times the master read its whole kernel table (1 at start, +1 after each loss of `conntrack -E` events). */
  masterRereads: number
  /** CPU ticks (USER_HZ) of every process of each router over the window, and RSS at its end. */
  /** RSS: resident memory of every process; anonMb: the part that is not file pages (the node binary's code). */
  r1: { ticks: number; rssMb: number; anonMb: number; byCommand: Record<string, number> }
  r2: { ticks: number; rssMb: number; anonMb: number; byCommand: Record<string, number> }
  windowS: number
}

/**
 * Issue 14's churn: the pair up (carpd, or keepalived + conntrackd), the client opens
 * `rate` new UDP flows per second through r1; after `warmupS`, every process of each
 * router is measured over `windowS` (a process that started and ended inside the
 * window is missed; carpd's commands are counted in its children's time).
 */
export async function churn(lab: NetLab, kind: 'carpd' | 'keepalived', rate: number, warmupS: number, windowS: number, perfDir?: string): Promise<ChurnOutcome> {
  buildLab(lab)
  if (perfDir !== undefined) lab.nodeArgs = ['--perf-basic-prof-only-functions']
  const pair = kind === 'keepalived' ? keepalivedPair(lab) : carpdPair(lab, 'conntrack')
  const r1 = pair.start('r1')
  if ((await until(() => holdsVips(lab, 'r1'), 10_000, 20)) < 0) throw new Error('r1 never held both VIPs')
  const r2 = pair.start('r2')
  await pair.ready(r1, r2)
  const client = lab.spawnLines('client', [process.execPath, lab.writeFile('udp-churn.mjs', UDP_CHURN), SERVER, String(rate), String(warmupS + windowS + 5)])
  await sleep(warmupS * 1000)
  const before = { r1: namespaceUsage(lab, 'r1'), r2: namespaceUsage(lab, 'r2') }
  const perf = perfDir === undefined ? [] : (['r1', 'r2'] as const).map((r) => recordPerf(lab, r, `${perfDir}/${kind}-${r}.perf.data`, windowS))
  await sleep(windowS * 1000)
  await Promise.all(perf)
  const after = { r1: namespaceUsage(lab, 'r1'), r2: namespaceUsage(lab, 'r2') }
  const used = (r: 'r1' | 'r2') => {
    let ticks = 0
    const byCommand: Record<string, number> = {}
    for (const [pid, t] of after[r].ticks) {
      const used = t - (before[r].ticks.get(pid) ?? 0)
      ticks += used
      const command = after[r].comm.get(pid)!
      byCommand[command] = (byCommand[command] ?? 0) + used
    }
    return { ticks, rssMb: after[r].rssMb, anonMb: after[r].anonMb, byCommand }
  }
  // The master's table re-reads: one at its start, one more after each loss of kernel events.
  const rereads = kind === 'carpd' ? (JSON.parse(lab.carpdOnce('r1', ['status', '--json', '-c', `${lab.dir}/r1.conf`])) as { sync: { backend: { snapshots: number } } }).sync.backend.snapshots : 0
  const states =
    kind === 'carpd'
      ? (status(lab, 'r2').sync?.states.peer ?? 0)
      : Number(lab.exec('r2', ['sh', '-c', `conntrackd -C ${lab.dir}/r2.conntrackd.conf -e | grep -c udp`]).trim())
  await client.exited.catch(() => undefined)
  const sent = (JSON.parse(client.lines.find((l) => l.startsWith('{')) ?? '{"sent":0}') as { sent: number }).sent
  return { flowsPerS: sent / (warmupS + windowS + 5), backupStates: states, masterRereads: rereads, r1: used('r1'), r2: used('r2'), windowS }
}

/** One window of a master's adverts (issue 14's "advert jitter during a bulk transfer and a commit"). */
export interface AdvertWindow {
  /** How long the window lasted (the bulk transfer, the commit, a quiet stretch). */
  ms: number
  /** Adverts sent in it, and the intervals that touch it: worst, and its deviation from the nominal interval. */
  adverts: number
  worstMs: number
  jitterPct: number
}

export interface ScaleOutcome {
  flows: number
  timing: Timing
  /** The nominal advert intervals of r1 and r2 (advbase + advskew / 256 s). */
  intervalMs: { r1: number; r2: number }
  /** r1 reading its kernel table at start (its own log). */
  readMs: number
  /** The bulk transfer r1 -> r2 (r2's log) and r1's adverts meanwhile. */
  bulk: AdvertWindow & { states: number }
  /** r1's adverts over 3 s before r2 starts (from 1 s after it became master), for comparison. */
  quiet: AdvertWindow
  /** r2's promotion commit after r1 is powered off, and r2's adverts meanwhile. */
  commit: AdvertWindow & { loaded: number }
  /** RSS of each carpd (its node process) holding the flows: r1 after the bulk, r2 after the commit. */
  rssMb: { r1: number; r2: number }
}

/** A flow of the scale test: a client behind the pair to the server, all distinct, established. */
function scaleFlow(i: number): Flow {
  const client = `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`
  return {
    family: FAMILY_IPV4,
    proto: PROTO_TCP,
    orig: { src: client, dst: SERVER, sport: 20000 + (i % 40000), dport: 443 },
    reply: { src: SERVER, dst: client, sport: 443, dport: 20000 + (i % 40000) },
    tcpState: 3,
    timeoutS: 432000,
    mark: 0,
    zone: 0,
    seenReply: true,
    assured: true,
  }
}

/** The carpd node process of a namespace: its RSS in MB. */
function carpdRssMb(lab: NetLab, name: string): number {
  for (const pid of lab.ip('netns', 'pids', lab.ns(name)).split(/\s+/).filter(Boolean)) {
    try {
      if (!readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(lab.carpdPath)) continue
      return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024
    } catch {
      // gone meanwhile
    }
  }
  return NaN
}

/** Send times (ms) of the CARP adverts (UDP to 224.0.0.18) from `src` that a `tcpdump -tt` printed. */
function advertTimes(lines: readonly string[], src: string): number[] {
  const out: number[] = []
  for (const line of lines) {
    const m = /^(\d+\.\d+) IP (\S+) > /.exec(line)
    if (m && m[2]!.startsWith(`${src}.`)) out.push(Number(m[1]) * 1000)
  }
  return out
}

/** The intervals between a router's adverts that touch [fromMs, toMs]: the longest, and how far past the nominal it was. */
function advertWindow(times: readonly number[], fromMs: number, toMs: number, nominalMs: number): AdvertWindow {
  let worst = 0
  let adverts = 0
  for (let i = 1; i < times.length; i++) {
    if (times[i]! >= fromMs && times[i]! <= toMs) adverts++
    if (times[i]! < fromMs || times[i - 1]! > toMs) continue
    worst = Math.max(worst, times[i]! - times[i - 1]!)
  }
  // Late is what counts (the backup's master-down timer runs meanwhile); an extra
  // advert (a new master's first ones, a changed demotion said at once) is no harm.
  return { ms: Math.round(toMs - fromMs), adverts, worstMs: Math.round(worst), jitterPct: Math.round((Math.max(0, worst - nominalMs) / nominalMs) * 1000) / 10 }
}

const logMs = (line: string): number => Date.parse(line.slice(0, 24))

/**
 * Issue 14's board scale: `flows` established flows in r1's kernel, r1 starts and
 * reads them, r2 starts and takes them in a bulk transfer, r1 is powered off and r2
 * commits them into its kernel; the adverts of the master on the wire (tcpdump on
 * the LAN side of each router) are timed during both against a quiet stretch.
 */
export async function scale(lab: NetLab, flows: number, timing: Timing, perfDir?: string): Promise<ScaleOutcome> {
  buildLab(lab)
  if (perfDir !== undefined) lab.nodeArgs = ['--perf-basic-prof-only-functions']
  const backend = conntrackBackend({ log: { event: () => {} } as never, prefix: ['ip', 'netns', 'exec', lab.ns('r1')] })
  try {
    const loaded = await backend.load(Array.from({ length: flows }, (_, i) => scaleFlow(i)))
    if (loaded.loaded !== flows) throw new Error(`r1's kernel took ${loaded.loaded} of ${flows} flows`)
  } finally {
    backend.stop()
  }
  const dumps = (['r1', 'r2'] as const).map((r) => lab.spawnLines(r, ['tcpdump', '-i', 'lan0', '-n', '-tt', '-l', 'udp and dst host 224.0.0.18']))
  const interval = (name: Router): number => {
    const skew = timing === 'subsecond' ? ROUTERS[name].advskew : name === 'r1' ? 0 : 100
    return (timing === 'subsecond' ? 0 : 1000) + (skew * 1000) / 256
  }
  const pair = carpdPair(lab, 'conntrack', timing)
  const r1 = pair.start('r1')
  const read = await r1.waitFor(/state table read: \d+ flows in (\d+) ms/, 60_000)
  await r1.waitFor(/vhid=1 .*BACKUP->MASTER/, 30_000)
  await sleep(4000)
  const quietTo = Date.now()
  const r2 = pair.start('r2')
  const coming = await r2.waitFor(/bulk transfer \d+ from the peer: \d+ states coming/, 60_000)
  const done = await r2.waitFor(/bulk transfer \d+ from the peer done: (\d+) states in (\d+) ms/, 120_000)
  await sleep(1000)
  const rssR1 = carpdRssMb(lab, 'r1')
  const perf = perfDir === undefined ? null : recordPerf(lab, 'r2', `${perfDir}/scale-${timing}-r2-commit.perf.data`, 12)
  lab.killAll('r1')
  for (const iface of ['lan0', 'wan0', 'sync0']) lab.linkSet('r1', iface, 'down')
  const master = await r2.waitFor(/vhid=1 .*->MASTER/, 30_000)
  const made = await r2.waitFor(/MASTER: kernel table made current in (\d+) ms: (\d+) peer states loaded/, 180_000)
  await sleep(Math.max(3000, interval('r2') * 3))
  await perf
  const r1Adverts = advertTimes(dumps[0]!.lines, ROUTERS.r1.lan)
  const r2Adverts = advertTimes(dumps[1]!.lines, ROUTERS.r2.lan)
  // The first advert of a new master goes out at once: intervals count from the second.
  const commitFrom = r2Adverts.find((t) => t > logMs(master)) ?? logMs(master)
  return {
    flows,
    timing,
    intervalMs: { r1: Math.round(interval('r1') * 10) / 10, r2: Math.round(interval('r2') * 10) / 10 },
    readMs: Number(/in (\d+) ms/.exec(read)![1]),
    quiet: advertWindow(r1Adverts, quietTo - 3000, quietTo, interval('r1')),
    bulk: { ...advertWindow(r1Adverts, logMs(coming), logMs(done), interval('r1')), states: Number(/done: (\d+) states/.exec(done)![1]) },
    commit: { ...advertWindow(r2Adverts, commitFrom, logMs(made), interval('r2')), loaded: Number(/(\d+) peer states loaded/.exec(made)![1]) },
    rssMb: { r1: Math.round(rssR1 * 10) / 10, r2: Math.round(carpdRssMb(lab, 'r2') * 10) / 10 },
  }
}
