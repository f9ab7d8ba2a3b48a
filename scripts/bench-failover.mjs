// The failover section of npm run bench (needs root: network namespaces).
//
// A client pings the VIP every 10 ms while the master is cut off (its LAN link set
// down); the outage is the longest run of unanswered pings. iputils' ping sends at
// 16-20 ms then (seen with tcpdump), more than the 5 ms the goal allows over theory:
// CARPD_BENCH_PING_MS=2 resolves the takeover finer, for both daemons alike. Median of RUNS runs per
// setting, for carpd and, in the same lab and the same run, keepalived (VRRPv3) and
// ucarp when they are installed. For carpd the client also records the master's last
// advert, so the outage can be set against carp(4)'s theoretical master-down time.
// Planned switchover: pings lost around `carpd ctl maint on`.
// Low-power stand-in (CARPD_BENCH_QUOTA=0 skips it): the sub-second settings again,
// carpd and keepalived alike each confined to QUOTA_PCT % of one core by a cgroup v1
// CPU quota (cpu.cfs_quota_us of cpu.cfs_period_us), a rough model of a 1 GHz board.
import { spawnSync } from 'node:child_process'
import { accessSync, constants, existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs'
import { importTs, median } from './bench-lib.mjs'
import { join } from 'node:path'

const root = new URL('..', import.meta.url).pathname
const VIP = '192.0.2.1'
const ADDR = { r1: '192.0.2.2', r2: '192.0.2.3', client: '192.0.2.10' }
const PING_INTERVAL_MS = Number(process.env.CARPD_BENCH_PING_MS ?? 10)
/**
 * VRRPv3 backup skew is (256 - priority)/256 of an interval: 156 gives the same
 * 100/256 as carpd's advskew 100, so at advert_int 1 both wait 3.39 s.
 */
const KEEPALIVED_BACKUP_PRIORITY = 156
const RUNS = Number(process.env.CARPD_BENCH_RUNS ?? 5)

/** carpd's settings: the master r1 at the first skew, the backup r2 at the second. */
const CARPD_SETTINGS = {
  'advbase 1, advskew 0/100': { advbase: 1, skews: [0, 100], masterDownMs: 3000 + (100 * 1000) / 256, settleMs: 1500 },
  'sub-second, advskew 26/29 (≈0.11 s)': { advbase: 0, skews: [26, 29], masterDownMs: (3 * 29 * 1000) / 256, settleMs: 500 },
  'sub-second, advskew 12/13 (≈0.05 s)': { advbase: 0, skews: [12, 13], masterDownMs: (3 * 13 * 1000) / 256, settleMs: 500 },
  'sub-second, advskew 3/4 (≈0.016 s)': { advbase: 0, skews: [3, 4], masterDownMs: (3 * 4 * 1000) / 256, settleMs: 500 },
}
/** keepalived's advert_int next to each carpd setting. */
const KEEPALIVED_PAIRS = {
  'advbase 1, advskew 0/100': ['advert_int 1', 1],
  'sub-second, advskew 26/29 (≈0.11 s)': ['advert_int 0.11', 0.11],
  'sub-second, advskew 12/13 (≈0.05 s)': ['advert_int 0.05', 0.05],
  'sub-second, advskew 3/4 (≈0.016 s)': ['advert_int 0.01', 0.01],
}
const key = (label, vmac) => `${label}, ${vmac ? 'virtual MAC' : 'ARP only'}`
/** The CPU share of one core each daemon gets in the quota series, and the cgroup v1 controller it uses. */
const QUOTA_PCT = 25
const CPU_CGROUP = '/sys/fs/cgroup/cpu'
const QUOTA_SETTINGS = ['sub-second, advskew 26/29 (≈0.11 s)', 'sub-second, advskew 12/13 (≈0.05 s)', 'sub-second, advskew 3/4 (≈0.016 s)']
/** Groups made for this run, removed after each lab (their processes are gone by then). */
const groups = new Set()

/** A cgroup for one router's daemon with `pct` % of one core; its path. */
function quotaGroup(name, pct) {
  const dir = `${CPU_CGROUP}/carpdbench-${process.pid}-${name}`
  mkdirSync(dir, { recursive: true })
  writeFileSync(`${dir}/cpu.cfs_period_us`, '100000')
  writeFileSync(`${dir}/cpu.cfs_quota_us`, String(pct * 1000))
  groups.add(dir)
  return dir
}

/** nr_throttled of a router's quota group (cgroup v1 cpu.stat); 0 when unreadable. */
function throttledPeriods(name) {
  try {
    const stat = readFileSync(`${CPU_CGROUP}/carpdbench-${process.pid}-${name}/cpu.stat`, 'utf8')
    return Number(/nr_throttled (\d+)/.exec(stat)?.[1] ?? 0)
  } catch {
    return 0
  }
}

function removeGroups() {
  for (const dir of groups) {
    try {
      rmdirSync(dir)
      groups.delete(dir)
    } catch {
      // a process still in it: tried again after the next lab
    }
  }
}

/**
 * Starts a daemon in a router's namespace, inside its quota group when the setting has
 * one. The host side moves it (`ip netns exec` mounts a sysfs of its own, without the
 * cgroup tree) as soon as it is spawned: `ip netns exec` execs the daemon in the same
 * process, before it has started any child of its own, and children follow.
 */
function spawnDaemon(lab, name, argv, s) {
  const d = lab.spawnLines(name, argv)
  if (s.quotaPct) writeFileSync(`${quotaGroup(name, s.quotaPct)}/cgroup.procs`, String(d.child.pid))
  return d
}


const loadLab = () => importTs('test/lab/netlab.ts', 'netlab.mjs')

function installed(program) {
  return (process.env.PATH ?? '').split(':').some((dir) => {
    try {
      accessSync(join(dir, program), constants.X_OK)
      return true
    } catch {
      return false
    }
  })
}

/** Pings from the client every 10 ms; stop() returns the replies as [seq, unix ms]. */
export function startPing(lab) {
  const ping = lab.spawnLines('client', ['ping', '-D', '-n', '-i', String(PING_INTERVAL_MS / 1000), VIP])
  return {
    async stop() {
      ping.child.kill('SIGINT')
      await ping.exited
      const replies = []
      for (const line of ping.lines) {
        // Only echo replies: "From ... Destination Host Unreachable" lines carry a seq too.
        const m = /^\[(\d+\.\d+)\] \d+ bytes from .*icmp_seq=(\d+)/.exec(line)
        if (m) replies.push([Number(m[2]), Number(m[1]) * 1000])
      }
      return replies
    },
  }
}

/**
 * The outage the client saw: the longest time between two echo replies, less one ping
 * interval. Measured on arrival times, not on sequence gaps: while the ARP entry is
 * unresolved the kernel queues the pings and sends them to the new master once its
 * gratuitous ARP arrives, so late replies would hide part of the gap. `lost` counts
 * pings never answered.
 */
export function outageOf(replies) {
  let worst = { gapMs: 0, backAtMs: NaN }
  const byArrival = [...replies].sort((a, b) => a[1] - b[1])
  for (let i = 1; i < byArrival.length; i++) {
    const gapMs = byArrival[i][1] - byArrival[i - 1][1]
    if (gapMs > worst.gapMs) worst = { gapMs, backAtMs: byArrival[i][1] }
  }
  const seqs = new Set(replies.map(([seq]) => seq))
  const sent = replies.length ? Math.max(...seqs) - Math.min(...seqs) + 1 : 0
  return { outageMs: Math.max(0, Math.round(worst.gapMs - PING_INTERVAL_MS)), lost: sent - seqs.size, backAtMs: worst.backAtMs }
}

/**
 * Records when r1's adverts reach the client, in unix ms: CARP (UDP 8240) and VRRP
 * (IP protocol 112) alike, so both implementations are timed the same way.
 */
function startAdvertLog(lab) {
  // carpd's multicast adverts from a virtual MAC carry the VIP as their source: before
  // the cut only r1 sends them.
  const proc = lab.spawnLines('client', ['tcpdump', '-tt', '-l', '-n', '-i', 'eth0', `(src host ${ADDR.r1} or src host ${VIP}) and (udp port 8240 or ip proto 112)`])
  return {
    ready: () => proc.waitFor(/listening on/),
    lastBefore: (ms) =>
      Math.max(-Infinity, ...proc.lines.map((l) => /^(\d+\.\d+) IP /.exec(l)).filter(Boolean).map((m) => Number(m[1]) * 1000).filter((t) => t <= ms)),
    stop: () => proc.child.kill('SIGINT'),
  }
}

function lanLab(NetLab) {
  const lab = new NetLab(join(root, 'build/carpd.js'))
  lab.addSwitch('lan')
  for (const host of ['r1', 'r2', 'client']) {
    lab.addNamespace(host)
    lab.connect(host, 'eth0', 'lan', `${ADDR[host]}/24`)
  }
  return lab
}

// --- the three implementations, each: start(lab, name, setting) → process

const carpdConfig = (name, s) =>
  [
    `node = ${name}`,
    'carp.1.interface = eth0',
    `carp.1.vip = ${VIP}/24`,
    `carp.1.advbase = ${s.advbase}`,
    `carp.1.advskew = ${name === 'r1' ? s.skews[0] : s.skews[1]}`,
    'carp.1.pass = bench secret',
    `carp.1.vmac = ${s.vmac ? 'yes' : 'no'}`,
    '',
  ].join('\n')

const keepalivedConfig = (name, s) => `global_defs {
  router_id ${name}
  vrrp_version 3
  script_user root
  enable_script_security
}
vrrp_instance VI_1 {
  state BACKUP
  interface eth0
  virtual_router_id 1
  priority ${name === 'r1' ? 200 : KEEPALIVED_BACKUP_PRIORITY}
  advert_int ${s.advertInt}${s.vmac ? '\n  use_vmac' : ''}
  virtual_ipaddress {
    ${VIP}/24
  }
}
`

const IMPLEMENTATIONS = {
  carpd: (lab, name, s) => {
    const conf = lab.writeFile(`${name}.conf`, carpdConfig(name, s))
    return spawnDaemon(lab, name, [process.execPath, lab.carpdPath, 'run', '-c', conf], s)
  },
  keepalived: (lab, name, s) => {
    const conf = lab.writeFile(`${name}.keepalived.conf`, keepalivedConfig(name, s))
    return spawnDaemon(lab, name, [
      'keepalived', '--dont-fork', '--log-console', '--vrrp', `--use-file=${conf}`,
      `--pid=${lab.dir}/${name}.pid`, `--vrrp_pid=${lab.dir}/${name}.vrrp.pid`,
    ], s)
  },
  ucarp: (lab, name, s) => {
    const up = lab.writeFile(`${name}.up.sh`, '#!/bin/sh\nexec ip addr add "$2"/24 dev "$1"\n')
    const down = lab.writeFile(`${name}.down.sh`, '#!/bin/sh\nexec ip addr del "$2"/24 dev "$1"\n')
    spawnSync('chmod', ['700', up, down])
    const skew = name === 'r1' ? s.skews[0] : s.skews[1]
    return lab.spawnLines(name, [
      'ucarp', '-i', 'eth0', '-s', ADDR[name], '-v', '1', '-p', 'bench', '-a', VIP,
      '-b', String(s.advbase), '-k', String(skew), '-P', '-u', up, '-d', down, '-z',
    ])
  },
}

/**
 * One run: pair up, r1 master, ping, cut r1 off, wait for r2, measure. Besides the
 * outage, `theoryMs` is what the protocol alone allows for this run (the backup's
 * master-down time after the last advert, less the time from that advert to the
 * cut) and `overMs` how much later than that the client was served again.
 */
async function outageRun(labMod, impl, setting) {
  const { NetLab, until, sleep } = labMod
  const lab = lanLab(NetLab)
  try {
    const adverts = startAdvertLog(lab)
    await adverts.ready()
    IMPLEMENTATIONS[impl](lab, 'r1', setting)
    await sleep(500)
    IMPLEMENTATIONS[impl](lab, 'r2', setting)
    if ((await until(() => lab.hasAddress('r1', 'eth0', VIP), 15_000)) < 0) throw new Error(`${impl}: r1 never became master`)
    await sleep(setting.settleMs)
    const ping = startPing(lab)
    await sleep(1000)
    lab.linkSet('r1', 'eth0', 'down')
    // After the command: an advert sent while ip ran may still have gone out.
    const cutAt = Date.now()
    if ((await until(() => lab.hasAddress('r2', 'eth0', VIP), 15_000, 5)) < 0) throw new Error(`${impl}: r2 never took over`)
    await sleep(1500)
    const { outageMs, backAtMs, lost } = outageOf(await ping.stop())
    adverts.stop()
    const last = adverts.lastBefore(cutAt)
    // Evidence that the quota bit: periods in which a daemon's group was throttled.
    const throttled = setting.quotaPct ? ['r1', 'r2'].reduce((n, r) => n + throttledPeriods(r), 0) : undefined
    return { outageMs, lost, theoryMs: last + setting.masterDownMs - cutAt, overMs: backAtMs - (last + setting.masterDownMs), throttled }
  } finally {
    await lab.teardown()
    removeGroups()
  }
}

/** Planned switchover: carpd ctl maint on at the master while the client pings. */
async function switchoverRun(labMod, setting) {
  const { NetLab, until, sleep } = labMod
  const lab = lanLab(NetLab)
  try {
    IMPLEMENTATIONS.carpd(lab, 'r1', setting)
    IMPLEMENTATIONS.carpd(lab, 'r2', setting)
    if ((await until(() => lab.hasAddress('r1', 'eth0', VIP), 15_000)) < 0) throw new Error('r1 never became master')
    await sleep(1500)
    const ping = startPing(lab)
    await sleep(1000)
    lab.carpdOnce('r1', ['ctl', 'maint', 'on', '-c', `${lab.dir}/r1.conf`])
    if ((await until(() => lab.hasAddress('r2', 'eth0', VIP), 5000, 5)) < 0) throw new Error('r2 never took over')
    await sleep(1500)
    const { lost, outageMs } = outageOf(await ping.stop())
    return { lost, outageMs }
  } finally {
    await lab.teardown()
  }
}

/** CARPD_BENCH_ONLY=REGEX runs only the series whose name matches (a developer's quick look). */
const ONLY = process.env.CARPD_BENCH_ONLY ? new RegExp(process.env.CARPD_BENCH_ONLY) : null

async function series(name, fn) {
  const runs = []
  for (let i = 0; i < (ONLY && !ONLY.test(name) ? 0 : RUNS); i++) {
    try {
      runs.push(await fn())
    } catch (err) {
      runs.push({ error: err.message })
    }
  }
  const pick = (k) => median(runs.map((r) => r[k]))
  const worstLost = Math.max(...runs.map((r) => r.lost ?? Infinity))
  process.stderr.write(`  ${name}: ${runs.map((r) => r.error ?? `${r.outageMs} ms${Number.isFinite(r.overMs) ? ` (+${r.overMs.toFixed(0)})` : ''}`).join(', ')}\n`)
  return { name, runs, outageMs: pick('outageMs'), lost: pick('lost'), worstLost, theoryMs: pick('theoryMs'), overMs: pick('overMs'), throttled: pick('throttled') }
}

export async function failoverBench() {
  const labMod = await loadLab()
  const why = labMod.labUnavailable()
  if (why) return { skipped: why }
  process.stderr.write(`failover bench: ${RUNS} runs per setting\n`)
  const result = { runs: RUNS, carpd: {}, keepalived: {}, ucarp: {}, missing: [] }
  // carpd with its virtual MAC (the default) and with ARP only; keepalived with and
  // without use_vmac, at the advert interval nearest to carpd's (VRRPv3 counts in
  // centiseconds: 0.01 s, faster than carpd's 4/256 s, for the fastest pair).
  for (const vmac of [true, false]) {
    for (const [label, s] of Object.entries(CARPD_SETTINGS)) {
      result.carpd[key(label, vmac)] = await series(`carpd ${key(label, vmac)}`, () => outageRun(labMod, 'carpd', { ...s, vmac }))
    }
  }
  result.switchover = await series('carpd planned switchover (ctl maint on)', () => switchoverRun(labMod, { ...CARPD_SETTINGS['advbase 1, advskew 0/100'], vmac: true }))
  if (installed('keepalived')) {
    for (const vmac of [true, false]) {
      for (const [label, advertInt] of Object.values(KEEPALIVED_PAIRS)) {
        // VRRPv3: master down after 3 x advert_int + (256 - priority)/256 x advert_int.
        const masterDownMs = (3 + (256 - KEEPALIVED_BACKUP_PRIORITY) / 256) * advertInt * 1000
        result.keepalived[key(label, vmac)] = await series(`keepalived ${key(label, vmac)}`, () => outageRun(labMod, 'keepalived', { advertInt, masterDownMs, settleMs: 1500, vmac }))
      }
    }
  } else result.missing.push('keepalived')
  if (installed('ucarp')) {
    result.ucarp['advbase 1, advskew 0/100'] = await series('ucarp advbase 1, advskew 0/100', () =>
      outageRun(labMod, 'ucarp', { advbase: 1, skews: [0, 100], masterDownMs: 3000 + (100 * 1000) / 256, settleMs: 1500 }),
    )
  } else result.missing.push('ucarp')
  if (process.env.CARPD_BENCH_QUOTA === '0') result.quota = { skipped: 'CARPD_BENCH_QUOTA=0' }
  else if (!existsSync(`${CPU_CGROUP}/cpu.cfs_quota_us`)) result.quota = { skipped: `no cgroup v1 CPU controller at ${CPU_CGROUP}` }
  else {
    result.quota = { pct: QUOTA_PCT, carpd: {}, keepalived: {} }
    for (const label of QUOTA_SETTINGS) {
      const s = { ...CARPD_SETTINGS[label], vmac: true, quotaPct: QUOTA_PCT }
      result.quota.carpd[label] = await series(`carpd ${key(label, true)}, ${QUOTA_PCT} % CPU`, () => outageRun(labMod, 'carpd', s))
      if (!installed('keepalived')) continue
      const advertInt = KEEPALIVED_PAIRS[label][1]
      const masterDownMs = (3 + (256 - KEEPALIVED_BACKUP_PRIORITY) / 256) * advertInt * 1000
      result.quota.keepalived[label] = await series(`keepalived ${KEEPALIVED_PAIRS[label][0]}, use_vmac, ${QUOTA_PCT} % CPU`, () =>
        outageRun(labMod, 'keepalived', { advertInt, masterDownMs, settleMs: 1500, vmac: true, quotaPct: QUOTA_PCT }),
      )
    }
  }
  return result
}

/** Table rows: [measure, result, goal, met]. */
export function failoverRows(r) {
  if (r.skipped) return [['failover', `skipped: ${r.skipped}`, '', null]]
  const rows = []
  const ms = (x) => (Number.isFinite(x) ? `${x.toFixed(0)} ms` : 'n/a')
  for (const vmac of [true, false]) {
    for (const [label, [kaLabel]] of Object.entries(KEEPALIVED_PAIRS)) {
      const c = r.carpd[key(label, vmac)]
      const k = r.keepalived[key(kaLabel, vmac)]
      if (!c) continue
      const ratio = k && Number.isFinite(k.outageMs) && k.outageMs > 0 ? c.outageMs / k.outageMs : NaN
      // With the virtual MAC: carp(4)'s master-down + 5 ms, and at 3/4 at most 60 ms.
      const overGoal = vmac ? 5 : 50
      const cap = vmac && label.includes('3/4') ? 60 : Infinity
      rows.push([
        `failover outage, carpd ${key(label, vmac)}`,
        `${ms(c.outageMs)} (theory ${ms(c.theoryMs)}, over it by ${ms(c.overMs)})` +
          (k ? `; keepalived ${key(kaLabel, vmac)}: ${ms(k.outageMs)} (theory ${ms(k.theoryMs)}, over by ${ms(k.overMs)}); carpd/keepalived ${ratio.toFixed(2)}` : ''),
        `≤ keepalived; ≤ theory + ${overGoal} ms${Number.isFinite(cap) ? `; ≤ ${cap} ms` : ''}`,
        Number.isFinite(c.overMs) && c.overMs <= overGoal && c.outageMs <= cap && (!k || c.outageMs <= k.outageMs),
      ])
    }
  }
  const u = r.ucarp['advbase 1, advskew 0/100']
  if (u) rows.push(['failover outage, ucarp advbase 1, advskew 0/100', `${ms(u.outageMs)} (theory ${ms(u.theoryMs)}, over by ${ms(u.overMs)})`, '(reference)', null])
  rows.push([
    'planned switchover (ctl maint on), pings lost',
    `at most ${r.switchover.worstLost} of the 10 ms pings in ${r.switchover.runs.length} runs`,
    '≤ 1',
    r.switchover.worstLost <= 1,
  ])
  if (r.missing.length) rows.push(['not measured (not installed)', r.missing.join(', '), 'apt-get install ' + r.missing.join(' '), null])
  rows.push(...quotaRows(r, ms))
  return rows
}

/** The quota series against the same settings unconfined: within 10 % (carpd), keepalived beside it. */
function quotaRows(r, ms) {
  const q = r.quota
  if (!q) return []
  if (q.skipped) return [['failover under a CPU quota', `skipped: ${q.skipped}`, '', null]]
  const rows = []
  for (const [label, c] of Object.entries(q.carpd)) {
    const free = r.carpd[key(label, true)]
    const k = q.keepalived[label]
    const kFree = r.keepalived[key(KEEPALIVED_PAIRS[label][0], true)]
    const pct = (a, b) => (Number.isFinite(a) && Number.isFinite(b) && b > 0 ? `${a >= b ? '+' : ''}${(((a - b) / b) * 100).toFixed(0)} %` : 'n/a')
    rows.push([
      `failover outage at ${q.pct} % of a core, carpd ${key(label, true)}`,
      `${ms(c.outageMs)} (unconfined ${ms(free?.outageMs)}, ${pct(c.outageMs, free?.outageMs)}; throttled in ${c.throttled ?? 'n/a'} periods of 100 ms)` +
        (k ? `; keepalived ${KEEPALIVED_PAIRS[label][0]} use_vmac: ${ms(k.outageMs)} (unconfined ${ms(kFree?.outageMs)}, ${pct(k.outageMs, kFree?.outageMs)}; throttled in ${k.throttled ?? 'n/a'})` : ''),
      'within 10 % of unconfined',
      Number.isFinite(c.outageMs) && free !== undefined && c.outageMs <= free.outageMs * 1.1,
    ])
  }
  return rows
}
