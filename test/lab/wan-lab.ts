// The multi-WAN lab: a client network, the router running carpd (no CARP: a single
// multi-WAN router), two ISP namespaces each with its own gateway and its own DNS
// resolver (wan-tools.mjs dns), and a server behind both ISPs:
//
//   client ── [lan] ── router ── wan1 ══ isp1 ──┐
//                             └─ wan2 ══ isp2 ──┴── [inet] ── server (whoami)
//
// The server tells every connection the address it came from: 203.0.113.2 is WAN 1,
// 203.0.113.18 is WAN 2 (the router NATs to its WAN address). An ISP "stops
// answering" by dropping everything it is sent (silently: the link stays up).

import { resolve } from 'node:path'
import { type Carpd, NetLab, sleep, until } from './netlab.js'

export const WAN_TOOLS = resolve(import.meta.dirname ?? __dirname, 'wan-tools.mjs')
export const SERVER = '198.18.0.10'
export const SERVER_PORT = 8080
export const WAN_ADDRESS: Record<number, string> = { 1: '203.0.113.2', 2: '203.0.113.18' }

export interface WanLabOptions {
  flavour: 'iptables' | 'nft'
  weights?: [number, number]
  failbackHold?: string
  carpdPath?: string
  toolsPath?: string // wan-tools.mjs (the bench passes it: bundled, this file is elsewhere)
}

export class WanLab {
  readonly lab: NetLab
  router: Carpd | null = null
  private readonly tools: string

  constructor(readonly opts: WanLabOptions) {
    const l = (this.lab = opts.carpdPath ? new NetLab(opts.carpdPath) : new NetLab())
    this.tools = opts.toolsPath ?? WAN_TOOLS
    l.addSwitch('lan')
    l.addSwitch('inet')
    for (const h of ['client', 'router', 'isp1', 'isp2', 'server']) l.addNamespace(h)
    l.connect('client', 'eth0', 'lan', '192.0.2.100/24')
    l.connect('router', 'lan0', 'lan', '192.0.2.1/24')
    l.cable('router', 'wan1', '203.0.113.2/28', 'isp1', 'cust0', '203.0.113.1/28')
    l.cable('router', 'wan2', '203.0.113.18/28', 'isp2', 'cust0', '203.0.113.17/28')
    l.connect('isp1', 'up0', 'inet', '198.18.0.1/24')
    l.connect('isp2', 'up0', 'inet', '198.18.0.2/24')
    l.connect('server', 'eth0', 'inet', `${SERVER}/24`)
    l.ip('-n', l.ns('client'), 'route', 'add', 'default', 'via', '192.0.2.1')
    l.ip('-n', l.ns('server'), 'route', 'add', '203.0.113.0/28', 'via', '198.18.0.1')
    l.ip('-n', l.ns('server'), 'route', 'add', '203.0.113.16/28', 'via', '198.18.0.2')
    for (const [isp, resolver] of [['isp1', '198.18.1.53'], ['isp2', '198.18.2.53']] as const) {
      l.exec(isp, ['sysctl', '-qw', 'net.ipv4.ip_forward=1'])
      l.ip('-n', l.ns(isp), 'addr', 'add', `${resolver}/32`, 'dev', 'lo')
    }
    l.exec('router', ['sysctl', '-qw', 'net.ipv4.ip_forward=1'])
  }

  config(): string {
    const [w1, w2] = this.opts.weights ?? [3, 1]
    return [
      'node = router',
      `wan.rules = ${this.opts.flavour}`,
      `wan.failback.hold = ${this.opts.failbackHold ?? '2s'}`,
      'wan.1.interface = wan1',
      'wan.1.gateway = 203.0.113.1',
      `wan.1.weight = ${w1}`,
      'wan.1.probe = 198.18.1.53',
      'wan.2.interface = wan2',
      'wan.2.gateway = 203.0.113.17',
      `wan.2.weight = ${w2}`,
      'wan.2.probe = 198.18.2.53',
      '',
    ].join('\n')
  }

  /** Resolvers, the server, then carpd; resolves when both WANs are online. */
  async start(): Promise<void> {
    const l = this.lab
    for (const [isp, resolver] of [['isp1', '198.18.1.53'], ['isp2', '198.18.2.53']] as const) {
      await l.spawnLines(isp, [process.execPath, this.tools, 'dns', resolver]).waitFor(/dns listening/)
    }
    await l.spawnLines('server', [process.execPath, this.tools, 'whoami', SERVER, String(SERVER_PORT)]).waitFor(/whoami listening/)
    this.router = l.startCarpd('router', this.config())
    await this.router.waitFor(/wan2 wan2 offline->online/, 15_000)
    await this.router.waitFor(/wan1 wan1 offline->online/, 15_000)
    await this.router.waitFor(/new connections: tier 1: wan1 x\d+, wan2 x\d+/, 15_000)
  }

  /** `count` new connections from the client, one after another; the WAN each took. */
  async connect(count: number): Promise<(number | null)[]> {
    const c = this.lab.spawnLines('client', [process.execPath, this.tools, 'connect', SERVER, String(SERVER_PORT), String(count)])
    await c.waitFor(/^connected$/, 120_000)
    return c.lines.filter((x) => x.startsWith('{')).map((x) => wanOf((JSON.parse(x) as { from: string | null }).from))
  }

  /** `count` long-lived connections, kept open; returns the process to read reports from. */
  async hold(count: number): Promise<Carpd> {
    const c = this.lab.spawnLines('client', [process.execPath, this.tools, 'connect', SERVER, String(SERVER_PORT), String(count), 'hold'])
    await c.waitFor(/^connected$/, 60_000)
    return c
  }

  /** The ISP drops everything from now on (or again forwards it): a silent outage. */
  ispDown(isp: 'isp1' | 'isp2', down: boolean): void {
    const op = down ? '-I' : '-D'
    for (const chain of ['INPUT', 'FORWARD']) this.lab.exec(isp, ['iptables', op, chain, '-j', 'DROP'])
  }

  /**
   * The ISP drops each packet it forwards, and each one to or from its resolver, with
   * this probability (iptables' statistic match: this kernel has no netem): a line
   * that still carries traffic, with about twice that loss on a round trip.
   */
  ispLossy(isp: 'isp1' | 'isp2', probability: number): void {
    for (const chain of ['INPUT', 'OUTPUT', 'FORWARD']) {
      this.lab.exec(isp, ['iptables', '-I', chain, '-m', 'statistic', '--mode', 'random', '--probability', String(probability), '-j', 'DROP'])
    }
  }

  async teardown(): Promise<void> {
    await this.lab.teardown()
  }
}

export function wanOf(from: string | null): number | null {
  if (from === null) return null
  const found = Object.entries(WAN_ADDRESS).find(([, a]) => from.endsWith(a))
  return found ? Number(found[0]) : null
}

/** The last report of a `hold` client: per connection its WAN, bytes so far, error. */
export function lastHoldReport(c: Carpd): { wan: number | null; bytes: number; error: string | null; closed: boolean }[] {
  const line = [...c.lines].reverse().find((x) => x.startsWith('{"t"'))
  if (!line) return []
  return (JSON.parse(line) as { conns: { from: string | null; bytes: number; error: string | null; closed: boolean }[] }).conns.map((s) => ({ wan: wanOf(s.from), bytes: s.bytes, error: s.error, closed: s.closed }))
}

/**
 * How far a measured share of n random picks may stray from the planned share p:
 * four standard deviations of the binomial (sqrt(p(1-p)/n)), which a correct rule
 * set exceeds about once in 16,000 runs. A fixed 5 % over 600 picks at p = 0.6 is
 * 2.5 deviations: it failed about one run in 80 with nothing wrong.
 */
export function shareBound(p: number, n: number): number {
  return 4 * Math.sqrt((p * (1 - p)) / n)
}

export { sleep, until }
