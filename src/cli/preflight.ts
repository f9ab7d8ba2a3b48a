// `carpd check --system`: the preflight an operator runs on the board before the
// first start. For the configuration in hand: the tools carpd will run and which
// flavour they are, the kernel features it needs, the sysctls that decide whether
// the board routes, every interface and the serial device of the file (and that the
// heartbeat line is not the console), Node.js itself. Each problem comes with the
// command that fixes it. Read-only: it runs `--version` and `--help` of the tools
// and reads /proc and /sys, nothing else.

import { advertsOverIpv6 } from '../carp/agent.js'
import type { Config } from '../config/types.js'
import type { Runner } from '../platform/exec.js'
import { firstIpv4, ipv4AddrArgs } from '../platform/linux.js'
import { reversePathWarning } from '../platform/wan.js'
import { isIpv6 } from '../wire/ip.js'

export type Level = 'ok' | 'warn' | 'fail'

export interface Finding {
  level: Level
  /** What was checked: a tool, a feature, a file key. */
  what: string
  /** What was found. */
  detail: string
  /** The command or change that fixes it (warn and fail only). */
  fix?: string
}

export interface PreflightDeps {
  run: Runner
  /** A file's text, or null when it cannot be read (missing). */
  readText(path: string): string | null
  exists(path: string): boolean
  /** The running kernel's build configuration (/proc/config.gz, /boot/config-RELEASE), or null. */
  kernelConfig(): string | null
  nodeVersion: string
  isRoot: boolean
}

/** Short commands: `--version` of a tool. */
const TOOL_TIMEOUT_MS = 5000
/** Node.js majors: what the suite runs on, and the oldest a dry-run pair ran on. */
const NODE_TESTED_MAJOR = 20
const NODE_OLDEST_MAJOR = 18

/** Every check for `config`, in the order an operator would fix them. */
export async function preflight(config: Config, deps: PreflightDeps): Promise<Finding[]> {
  const out: Finding[] = [node(deps), root(deps)]
  if (config.platform !== 'linux') {
    out.push({ level: 'fail', what: 'platform', detail: `${config.platform}: this version of carpd changes the system on Linux only`, fix: 'platform = linux, on a Linux board' })
    return out
  }
  const router = config.sync.interface !== '' || config.wans.length > 0
  out.push(await tool(deps, 'ip', ['ip', '-V'], 'apt-get install iproute2 (carpd needs its -j and -batch; busybox ip has neither)', (t) => t, /iproute2/))
  if (config.carp.vhids.length > 0) out.push(await arping(deps))
  if (config.carp.vhids.some((v) => !v.vmac && v.vips.some((vip) => isIpv6(vip.address)))) {
    out.push(await tool(deps, 'na6', ['na6', '-h'], 'apt-get install ipv6toolkit (the neighbour advertisement after an IPv6 takeover without a virtual MAC)', () => 'ipv6toolkit', /na6/, true))
  }
  if (config.serial.device !== '') out.push(await tool(deps, 'stty', ['stty', '--version'], 'apt-get install coreutils', (t) => t))
  const conntrackNeeded = (config.sync.interface !== '' && config.sync.backend === 'conntrack') || config.wans.length > 0
  if (conntrackNeeded) {
    out.push(await tool(deps, 'conntrack', ['conntrack', '--version'], 'apt-get install conntrack', (t) => t))
    out.push(await kernelConntrack(deps))
  }
  if (config.wans.length > 0 && config.wanRules === 'iptables') out.push(await tool(deps, 'iptables-restore', ['iptables-restore', '--version'], 'apt-get install iptables', iptablesFlavour))
  if (config.wans.length > 0 && config.wanRules === 'nft') out.push(await tool(deps, 'nft', ['nft', '--version'], 'apt-get install nftables', (t) => t))
  if (config.carp.vhids.some((v) => v.vmac)) out.push(await macvlan(deps))
  out.push(...(await interfaces(config, deps)))
  if (config.serial.device !== '') out.push(...serial(config.serial.device, deps))
  out.push(forwarding(deps, router))
  out.push(...rpFilter(config, deps))
  return out
}

function node(deps: PreflightDeps): Finding {
  const major = Number(deps.nodeVersion.split('.')[0])
  const what = 'Node.js'
  if (major >= NODE_TESTED_MAJOR) return { level: 'ok', what, detail: deps.nodeVersion }
  const fix = `Node.js ${NODE_TESTED_MAJOR} or later (Debian 13: apt-get install nodejs)`
  if (major >= NODE_OLDEST_MAJOR) return { level: 'warn', what, detail: `${deps.nodeVersion}: carpd is tested on ${NODE_TESTED_MAJOR}`, fix }
  return { level: 'fail', what, detail: `${deps.nodeVersion}: too old for carpd`, fix }
}

function root(deps: PreflightDeps): Finding {
  if (deps.isRoot) return { level: 'ok', what: 'user', detail: 'root' }
  return { level: 'warn', what: 'user', detail: 'not root: `carpd run` changes addresses, routes and the firewall', fix: 'run carpd as root (its service does)' }
}

/**
 * A tool that answers `argv` (a version or help option) with exit 0 and, when given,
 * words matching `expect` (busybox's ip prints its usage and exits 1: not iproute2);
 * `anyExit` for a tool whose help exits non-zero. `describe` turns its first line
 * into the detail.
 */
async function tool(deps: PreflightDeps, what: string, argv: string[], fix: string, describe: (text: string) => string, expect?: RegExp, anyExit = false): Promise<Finding> {
  const r = await deps.run(argv, TOOL_TIMEOUT_MS)
  const all = `${r.stdout}\n${r.stderr}`
  const text = all.trim().split('\n')[0]!.trim()
  // -1: it could not start (not installed) or hung.
  if (r.code === -1) return { level: 'fail', what, detail: r.timedOut ? 'did not answer' : 'not found', fix }
  if ((r.code !== 0 && !anyExit) || (expect !== undefined && !expect.test(all))) return { level: 'fail', what, detail: `not the expected program: ${text || `exit ${r.code}`}`, fix }
  return { level: 'ok', what, detail: describe(text) }
}

/** iptables-restore v1.8.9 (nf_tables): which backend its rules go to. */
function iptablesFlavour(text: string): string {
  const backend = /\((nf_tables|legacy)\)/.exec(text)?.[1]
  return backend === undefined ? text : `${text}: rules go to ${backend === 'legacy' ? 'the legacy x_tables' : 'nftables through the iptables-nft layer'}`
}

async function arping(deps: PreflightDeps): Promise<Finding> {
  const r = await deps.run(['arping', '--help'], TOOL_TIMEOUT_MS)
  const text = r.stdout + r.stderr
  if (r.code === -1 || text.trim() === '') return { level: 'fail', what: 'arping', detail: 'not found: no gratuitous ARP after a takeover', fix: 'apt-get install arping (or iputils-arping)' }
  return { level: 'ok', what: 'arping', detail: /Habets/i.test(text) ? "Thomas Habets' arping (-S)" : "iputils' arping (-s)" }
}

async function kernelConntrack(deps: PreflightDeps): Promise<Finding> {
  const what = 'kernel conntrack'
  const max = deps.readText('/proc/sys/net/netfilter/nf_conntrack_max')
  if (max !== null) return { level: 'ok', what, detail: `nf_conntrack_max ${max.trim()}` }
  // Not loaded yet is fine: conntrack's netlink and the rules' conntrack match load it.
  const built = /^CONFIG_NF_CONNTRACK=([ym])$/m.exec(deps.kernelConfig() ?? '')?.[1]
  if (built !== undefined || (await deps.run(['modprobe', '--dry-run', '--quiet', 'nf_conntrack'], TOOL_TIMEOUT_MS)).code === 0) {
    return { level: 'ok', what, detail: 'not loaded yet; loads on demand' }
  }
  return { level: 'fail', what, detail: 'not in this kernel (no nf_conntrack)', fix: 'a kernel with CONFIG_NF_CONNTRACK; or sync.interface = (no sync) and no wan.N blocks' }
}

async function macvlan(deps: PreflightDeps): Promise<Finding> {
  const what = 'kernel macvlan'
  if (deps.exists('/sys/module/macvlan')) return { level: 'ok', what, detail: 'loaded (virtual MACs)' }
  const config = deps.kernelConfig()
  const built = /^CONFIG_MACVLAN=([ym])$/m.exec(config ?? '')?.[1]
  if (built !== undefined) return { level: 'ok', what, detail: built === 'y' ? 'built into the kernel (virtual MACs)' : 'a module, loaded on demand (virtual MACs)' }
  const fail: Finding = { level: 'fail', what, detail: 'not in this kernel: carp.N.vmac needs it', fix: 'carp.N.vmac = no, or a kernel with CONFIG_MACVLAN' }
  if (config !== null) return fail
  const r = await deps.run(['modprobe', '--dry-run', '--quiet', 'macvlan'], TOOL_TIMEOUT_MS)
  if (r.code === 0) return { level: 'ok', what, detail: 'a module, loaded on demand (virtual MACs)' }
  // No kernel configuration to read and no modprobe (a container): no answer either way.
  if (r.code === -1) return { level: 'warn', what, detail: 'could not tell (no kernel configuration, no modprobe)', fix: 'carp.N.vmac = no if `ip link add x link IF type macvlan` fails' }
  return fail
}

/**
 * Every interface the file names, with the key that names it: the vhids' and the sync
 * link's must exist with an IPv4 address (`carpd run` refuses to start otherwise;
 * an IPv6-only vhid needs the interface alone); a WAN's may come later (PPPoE, DHCP:
 * carpd waits for it), so a missing one is a warning.
 */
async function interfaces(config: Config, deps: PreflightDeps): Promise<Finding[]> {
  const named = new Map<string, { key: string; needsIpv4: boolean; later: boolean }>()
  for (const v of config.carp.vhids) if (!named.has(v.interface)) named.set(v.interface, { key: `carp.${v.vhid}.interface`, needsIpv4: !advertsOverIpv6(v), later: false })
  if (config.sync.interface !== '' && !named.has(config.sync.interface)) named.set(config.sync.interface, { key: 'sync.interface', needsIpv4: true, later: false })
  for (const w of config.wans) if (!named.has(w.interface)) named.set(w.interface, { key: `wan.${w.wan}.interface`, needsIpv4: true, later: true })
  const out: Finding[] = []
  const fix = 'ip link show (the names this board has; net.ifnames=0 on the kernel line gives eth0, eth1...)'
  for (const [name, n] of named) {
    if (!deps.exists(`/sys/class/net/${name}`)) {
      out.push(n.later ? { level: 'warn', what: n.key, detail: `no interface ${name} yet (a PPPoE link comes up later; carpd waits for it)`, fix } : { level: 'fail', what: n.key, detail: `no interface ${name}`, fix })
      continue
    }
    const address = n.needsIpv4 ? await ipv4Of(deps, name) : null
    if (!n.needsIpv4 || address !== null) out.push({ level: 'ok', what: n.key, detail: `${name}${address === null ? '' : ` ${address}`}` })
    else out.push({ level: n.later ? 'warn' : 'fail', what: n.key, detail: `${name} has no IPv4 address${n.later ? ' yet' : ': carpd run refuses to start'}`, fix: `ip addr add ADDRESS/PREFIX dev ${name} (and in the interfaces file)` })
  }
  return out
}

/** The interface's first IPv4 address as `ip -j` gives it, or null. */
async function ipv4Of(deps: PreflightDeps, name: string): Promise<string | null> {
  const net = firstIpv4((await deps.run(['ip', ...ipv4AddrArgs(name)], TOOL_TIMEOUT_MS)).stdout)
  return net ? `${net.address}/${net.prefix}` : null
}

/** The heartbeat device exists, and is not a console the kernel and the login write to. */
function serial(device: string, deps: PreflightDeps): Finding[] {
  const what = 'serial.device'
  if (!deps.exists(device)) return [{ level: 'fail', what, detail: `no ${device}`, fix: 'ls /dev/ttyS* /dev/ttyUSB* (a USB serial adapter appears as /dev/ttyUSB0)' }]
  const name = device.replace(/^\/dev\//, '')
  const consoles = (deps.readText('/sys/class/tty/console/active') ?? '').trim().split(/\s+/).filter((c) => c !== '')
  if (consoles.includes(name)) {
    return [{ level: 'fail', what, detail: `${device} is the console: the kernel's messages and the login would share the heartbeat line`, fix: `a second port for the heartbeat (a USB serial adapter: serial.device = /dev/ttyUSB0), or console= on another port` }]
  }
  return [{ level: 'ok', what, detail: `${device}, not the console (${consoles.join(' ') || 'none'})` }]
}

function forwarding(deps: PreflightDeps, router: boolean): Finding {
  const what = 'net.ipv4.ip_forward'
  const value = deps.readText('/proc/sys/net/ipv4/ip_forward')?.trim()
  if (value === '1') return { level: 'ok', what, detail: '1: the board routes' }
  const fix = 'sysctl -w net.ipv4.ip_forward=1, and net.ipv4.ip_forward = 1 in /etc/sysctl.d/50-router.conf'
  return { level: router ? 'fail' : 'warn', what, detail: `${value ?? 'unreadable'}: the board does not route`, fix }
}

/**
 * Strict reverse-path filtering on a WAN drops what comes back on a WAN the main table
 * would not use for the source, unless it looks at marks: the runtime's own test
 * (platform/wan.ts reversePathWarning), here before the start.
 */
function rpFilter(config: Config, deps: PreflightDeps): Finding[] {
  const read = (path: string): string => {
    const text = deps.readText(path)
    if (text === null) throw new Error(`no ${path}`)
    return text
  }
  return config.wans.map((w) => {
    const what = `rp_filter ${w.interface}`
    const warning = reversePathWarning(w.interface, read)
    if (warning === null) return { level: 'ok' as const, what, detail: 'loose, off, or with src_valid_mark' }
    return { level: 'warn' as const, what, detail: 'strict: replies on a WAN the main table would not choose are dropped', fix: warning.slice(warning.indexOf('run: ') + 'run: '.length) }
  })
}

/** One line per finding, the fix under it, and a count. */
export function renderFindings(findings: readonly Finding[]): string {
  const lines: string[] = []
  for (const f of findings) {
    lines.push(`${f.level === 'fail' ? 'FAIL' : f.level.padEnd(4)}  ${f.what}: ${f.detail}`)
    if (f.fix !== undefined) lines.push(`      fix: ${f.fix}`)
  }
  const count = (level: Level): number => findings.filter((f) => f.level === level).length
  lines.push(`${findings.length} checks: ${count('ok')} ok, ${count('warn')} to look at, ${count('fail')} failed`)
  return `${lines.join('\n')}\n`
}
