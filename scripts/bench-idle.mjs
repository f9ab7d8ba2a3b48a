// The fast-advert idle section of npm run bench: the CPU of an idle master sending an
// advert every 11.7 ms (carpd advbase 0, advskew 3), next to keepalived at advert_int
// 0.01 in the same run (VRRPv3 in a network namespace: needs root). Both measured the
// same way: every thread's time on CPU (schedstat) over the same window, several
// windows, the median reported.
import { spawn } from 'node:child_process'
import { readFileSync, writeFileSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createSocket } from 'node:dgram'
import { cpuSeconds } from './proc-stats.mjs'
import { ROOT, importTs, median } from './bench-lib.mjs'
import { freePort } from './udp-ports.mjs'

const WINDOW_MS = Number(process.env.CARPD_BENCH_IDLE_MS ?? 10_000)
const WINDOWS = 5
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

/** Percent of a core used by the processes over each window, and what they sent. */
async function measure(pids, sent) {
  const shares = []
  const rates = []
  for (let i = 0; i < WINDOWS; i++) {
    const cpu0 = pids().reduce((s, p) => s + cpuSeconds(p), 0)
    const n0 = sent()
    await sleep(WINDOW_MS)
    shares.push(((pids().reduce((s, p) => s + cpuSeconds(p), 0) - cpu0) / (WINDOW_MS / 1000)) * 100)
    rates.push((sent() - n0) / (WINDOW_MS / 1000))
  }
  return { percent: median(shares), windows: shares.map((x) => Number(x.toFixed(2))), advertsPerS: median(rates) }
}

async function carpdIdle(dir) {
  const sink = createSocket('udp4')
  await new Promise((r) => sink.bind(0, '127.0.0.1', r))
  let adverts = 0
  sink.on('message', () => adverts++)
  const conf = join(dir, 'idle-fast.conf')
  writeFileSync(conf, ['node = idle', `control.port = ${await freePort()}`, `carp.port = ${await freePort()}`, 'carp.1.interface = lo', 'carp.1.vip = 192.0.2.1/24', 'carp.1.advbase = 0', 'carp.1.advskew = 3', 'carp.1.pass = bench', `carp.1.peer = 127.0.0.1:${sink.address().port}`, ''].join('\n'))
  const child = spawn(process.execPath, [join(ROOT, 'build/carpd.js'), 'run', '-c', conf, '--dry-run'], { stdio: 'ignore' })
  try {
    await sleep(3000)
    return await measure(() => [child.pid], () => adverts)
  } finally {
    child.kill('SIGKILL')
    sink.close()
  }
}

async function keepalivedIdle(NetLab) {
  const lab = new NetLab(join(ROOT, 'build/carpd.js'))
  try {
    lab.addSwitch('lan')
    lab.addNamespace('r1')
    lab.connect('r1', 'eth0', 'lan', '192.0.2.2/24')
    const conf = lab.writeFile('r1.keepalived.conf', `global_defs {\n  router_id r1\n  vrrp_version 3\n}\nvrrp_instance VI_1 {\n  state MASTER\n  interface eth0\n  virtual_router_id 1\n  priority 200\n  advert_int 0.01\n  virtual_ipaddress {\n    192.0.2.1/24\n  }\n}\n`)
    const ka = lab.spawnLines('r1', ['keepalived', '--dont-fork', '--log-console', '--vrrp', `--use-file=${conf}`, `--pid=${lab.dir}/r1.pid`, `--vrrp_pid=${lab.dir}/r1.vrrp.pid`])
    await sleep(3000)
    const pids = () => [ka.child.pid, Number(readFileSync(`${lab.dir}/r1.vrrp.pid`, 'utf8'))].filter((p) => Number.isInteger(p) && p > 0)
    // keepalived runs under `ip netns exec`, which execs it: the child's pid is keepalived's.
    const tx = () => Number(lab.exec('r1', ['cat', '/sys/class/net/eth0/statistics/tx_packets']).trim())
    return await measure(pids, tx)
  } finally {
    await lab.teardown()
  }
}

export async function idleBench() {
  const dir = mkdtempSync(join(tmpdir(), 'carpd-idle-'))
  try {
    const carpd = await carpdIdle(dir)
    const labMod = await importTs('test/lab/netlab.ts', 'netlab.mjs')
    const why = labMod.labUnavailable()
    const keepalived = why ? { skipped: why } : await keepalivedIdle(labMod.NetLab).catch((err) => ({ skipped: err.message }))
    return { windowMs: WINDOW_MS, windows: WINDOWS, carpd, keepalived }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

/** Table rows: [measure, result, goal, met]. */
export function idleRows(r) {
  const k = r.keepalived
  const kText = k.skipped ? `keepalived not measured: ${k.skipped}` : `keepalived advert_int 0.01: ${k.percent.toFixed(2)} % (${k.advertsPerS.toFixed(0)} adverts/s)`
  return [[
    'CPU of an idle master, adverts every 11.7 ms (advbase 0, advskew 3)',
    `${r.carpd.percent.toFixed(2)} % of a core (${r.carpd.advertsPerS.toFixed(0)} adverts/s; median of ${r.windows} windows of ${r.windowMs / 1000} s); ${kText}`,
    '≤ keepalived at 10 ms',
    k.skipped ? null : r.carpd.percent <= k.percent,
  ]]
}
