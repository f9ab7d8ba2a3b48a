// The network-namespace lab: switches (a bridge in a namespace of its own), routers
// and clients, each a namespace with veth links to the switches, and carpd started in
// the router namespaces. Names carry a per-run prefix; teardown() removes everything,
// and an exit hook removes it too if a test dies first. Nothing touches the host's
// own network namespace: every link is created inside a lab namespace.
//
// Used by test/lab/*.test.ts and, bundled by esbuild, by scripts/bench.mjs.

import { type ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { type Watched, watchLines } from '../helpers/lines.js'

/** Why the lab cannot run here, or null when it can (root, ip, netns support). */
export function labUnavailable(): string | null {
  if (process.getuid?.() !== 0) return 'needs root (network namespaces)'
  const ip = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' })
  if (ip.status !== 0) return `ip netns does not work here: ${ip.stderr || ip.error?.message}`
  return null
}

/** CARPD_LAB=required (set by .ci/run) turns "cannot run the lab" into a failure. */
export const LAB_REQUIRED = process.env.CARPD_LAB === 'required'

/** A process running in a lab namespace, its output watched line by line. */
export interface Carpd extends Watched {
  ns: string
}

const labs = new Set<NetLab>()
const PREFIX = 'carpdlab'
process.on('exit', () => {
  for (const lab of labs) lab.teardownSync()
})
// Ctrl-C or a killed test run must not leave namespaces behind either.
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.once(signal, () => {
    for (const lab of labs) lab.teardownSync()
    process.exit(128 + (signal === 'SIGINT' ? 2 : signal === 'SIGTERM' ? 15 : 1))
  })
}

/**
 * Deletes lab namespaces left by runs that died without cleaning up (SIGKILL): their
 * names carry the pid of the process that made them, and that process is gone.
 */
export function sweepStaleLabs(): string[] {
  const swept: string[] = []
  const list = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout
  for (const ns of list.split('\n').map((l) => l.split(' ')[0]!).filter((n) => n.startsWith(`${PREFIX}-`))) {
    const pid = Number(ns.split('-')[1])
    if (!Number.isInteger(pid) || pid === process.pid || processAlive(pid)) continue
    spawnSync('ip', ['netns', 'del', ns], { stdio: 'ignore' })
    swept.push(ns)
  }
  return swept
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

export class NetLab {
  readonly prefix: string
  readonly dir: string
  private readonly namespaces: string[] = []
  private readonly procs = new Set<ChildProcess>()
  private ports = 0
  /** `host/iface` → the far end of its cable: [namespace, interface]. */
  private readonly farEnds = new Map<string, [string, string]>()

  constructor(readonly carpdPath = resolve(import.meta.dirname ?? __dirname, '../../build/carpd.js')) {
    sweepStaleLabs()
    // carpdlab-PID-RANDOM: unique per run, and tells sweepStaleLabs whose it is.
    this.prefix = `${PREFIX}-${process.pid}-${randomBytes(2).toString('hex')}`
    this.dir = mkdtempSync(join(tmpdir(), `${this.prefix}-`))
    labs.add(this)
  }

  ns(name: string): string {
    return `${this.prefix}-${name}`
  }

  /** Runs `ip ARGS` on the host side (only netns management and -n NS commands). */
  ip(...args: string[]): string {
    return execFileSync('ip', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
  }

  /** Runs a command inside a lab namespace. */
  exec(name: string, argv: string[], timeoutMs = 10_000): string {
    return execFileSync('ip', ['netns', 'exec', this.ns(name), ...argv], { encoding: 'utf8', timeout: timeoutMs, stdio: ['ignore', 'pipe', 'pipe'] })
  }

  addNamespace(name: string): void {
    const ns = this.ns(name)
    this.ip('netns', 'add', ns)
    this.namespaces.push(ns)
    this.ip('-n', ns, 'link', 'set', 'lo', 'up')
  }

  /** A switch: a namespace holding bridge br0. */
  addSwitch(name: string): void {
    this.addNamespace(name)
    this.ip('-n', this.ns(name), 'link', 'add', 'br0', 'type', 'bridge')
    this.ip('-n', this.ns(name), 'link', 'set', 'br0', 'up')
  }

  /** Cables host `name`'s interface `iface` to switch `sw` (a port named pN), with an address. */
  connect(name: string, iface: string, sw: string, cidr: string): void {
    const port = `p${++this.ports}`
    const swNs = this.ns(sw)
    this.ip('-n', swNs, 'link', 'add', port, 'type', 'veth', 'peer', 'name', iface, 'netns', this.ns(name))
    this.ip('-n', swNs, 'link', 'set', port, 'master', 'br0')
    this.ip('-n', swNs, 'link', 'set', port, 'up')
    this.farEnds.set(`${name}/${iface}`, [swNs, port])
    this.ip('-n', this.ns(name), 'addr', 'add', cidr, 'dev', iface)
    this.ip('-n', this.ns(name), 'link', 'set', iface, 'up')
  }

  /** A crossover cable between two hosts (no switch), with an address at each end. */
  cable(a: string, ifA: string, cidrA: string, b: string, ifB: string, cidrB: string): void {
    this.ip('-n', this.ns(a), 'link', 'add', ifA, 'type', 'veth', 'peer', 'name', ifB, 'netns', this.ns(b))
    this.farEnds.set(`${a}/${ifA}`, [this.ns(b), ifB])
    this.farEnds.set(`${b}/${ifB}`, [this.ns(a), ifA])
    for (const [name, iface, cidr] of [[a, ifA, cidrA], [b, ifB, cidrB]] as const) {
      this.ip('-n', this.ns(name), 'addr', 'add', cidr, 'dev', iface)
      this.ip('-n', this.ns(name), 'link', 'set', iface, 'up')
    }
  }

  /** Power-off: every process in the namespace killed at once, no goodbye. */
  killAll(name: string): void {
    const pids = spawnSync('ip', ['netns', 'pids', this.ns(name)], { encoding: 'utf8' }).stdout.split(/\s+/).filter(Boolean)
    for (const pid of pids) {
      try {
        process.kill(Number(pid), 'SIGKILL')
      } catch {
        // gone already
      }
    }
  }

  linkSet(name: string, iface: string, state: 'up' | 'down'): void {
    this.ip('-n', this.ns(name), 'link', 'set', iface, state)
  }

  /**
   * Pulls (or puts back) the cable of a host's interface: its far end (the switch
   * port, or the other host's end of a crossover) goes down, so the host sees its
   * carrier go while its own interface, addresses and routes stay configured.
   */
  plug(name: string, iface: string, plugged: boolean): void {
    const far = this.farEnds.get(`${name}/${iface}`)
    if (!far) throw new Error(`no cable on ${name}/${iface}`)
    this.ip('-n', far[0], 'link', 'set', far[1], plugged ? 'up' : 'down')
  }

  mac(name: string, iface: string): string {
    return JSON.parse(this.ip('-j', '-n', this.ns(name), 'link', 'show', iface))[0].address as string
  }

  /** The MAC a host's neighbour table has for `ip`, or '' when none. */
  neighMac(name: string, ip: string): string {
    const entries = JSON.parse(this.ip('-j', '-n', this.ns(name), 'neigh', 'show', ip) || '[]') as { lladdr?: string }[]
    return entries[0]?.lladdr ?? ''
  }

  /** Whether `ip` is on `iface` or on a macvlan over it (a vhid's virtual MAC, carpN). */
  hasAddress(name: string, iface: string, ip: string): boolean {
    const links = JSON.parse(this.ip('-j', '-n', this.ns(name), 'addr', 'show')) as { ifname: string; link?: string; addr_info: { local: string }[] }[]
    return links.some((l) => (l.ifname === iface || l.link === iface) && l.addr_info.some((a) => a.local === ip))
  }

  /** Names of the hosts among `names` whose `iface` holds `ip`. */
  holders(names: string[], iface: string, ip: string): string[] {
    return names.filter((n) => this.hasAddress(n, iface, ip))
  }

  /** Pings until one answer comes or `deadlineS` passes; true when answered. */
  ping(name: string, ip: string, deadlineS = 2): boolean {
    const argv = ['netns', 'exec', this.ns(name), 'ping', '-c', '1', '-i', '0.2', '-w', String(deadlineS), ip]
    return spawnSync('ip', argv, { stdio: 'ignore' }).status === 0
  }

  writeFile(fileName: string, text: string): string {
    const path = join(this.dir, fileName)
    writeFileSync(path, text, { mode: 0o600 })
    return path
  }

  /** Starts build/carpd.js in a namespace with this configuration text. */
  /** Node.js options for every carpd this lab starts (a profiler's, e.g. --perf-basic-prof). */
  nodeArgs: string[] = []

  startCarpd(name: string, config: string, extraArgs: string[] = []): Carpd {
    const file = this.writeFile(`${name}.conf`, config)
    return this.spawnLines(name, [process.execPath, ...this.nodeArgs, this.carpdPath, 'run', '-c', file, ...extraArgs])
  }

  /** Starts any long-running command in a namespace and collects its output lines. */
  spawnLines(name: string, argv: string[]): Carpd {
    const ns = this.ns(name)
    const child = spawn('ip', ['netns', 'exec', ns, ...argv], { stdio: ['ignore', 'pipe', 'pipe'] })
    this.procs.add(child)
    child.on('exit', () => this.procs.delete(child))
    return { ns, ...watchLines(child, ns) }
  }

  /** Runs `carpd ARGS` once inside a namespace (status, ctl). */
  carpdOnce(name: string, args: string[]): string {
    return this.exec(name, [process.execPath, this.carpdPath, ...args])
  }

  async teardown(): Promise<void> {
    const waits = [...this.procs].map((p) => new Promise((r) => (p.exitCode !== null ? r(null) : p.once('exit', r))))
    for (const p of this.procs) p.kill('SIGKILL')
    await Promise.all(waits)
    this.teardownSync()
  }

  /** Kills what runs in the namespaces and deletes them; safe to call twice. */
  teardownSync(): void {
    for (const p of this.procs) p.kill('SIGKILL')
    for (const ns of this.namespaces.splice(0)) {
      const pids = spawnSync('ip', ['netns', 'pids', ns], { encoding: 'utf8' }).stdout.split(/\s+/).filter(Boolean)
      for (const pid of pids) {
        try {
          process.kill(Number(pid), 'SIGKILL')
        } catch {
          // already gone
        }
      }
      spawnSync('ip', ['netns', 'del', ns], { stdio: 'ignore' })
    }
    rmSync(this.dir, { recursive: true, force: true })
    labs.delete(this)
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

/** Polls `check` every `stepMs` until it is true; returns the time it took, or -1. */
export async function until(check: () => boolean, timeoutMs: number, stepMs = 20): Promise<number> {
  const start = performance.now()
  while (performance.now() - start < timeoutMs) {
    if (check()) return performance.now() - start
    await sleep(stepMs)
  }
  return -1
}
