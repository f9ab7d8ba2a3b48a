// `carpd check --system` (src/cli/preflight.ts): every check against a fake board
// (commands, /proc, /sys), each problem with its fix; and check() printing them
// with exit 1 when something needed is missing.
import t from 'tap'
import type { Config } from '../../src/config/types.js'
import type { CommandResult } from '../../src/platform/exec.js'
import { type Finding, type PreflightDeps, preflight, renderFindings } from '../../src/cli/preflight.js'
import { check } from '../../src/cli/check.js'
import { load } from '../helpers/config-fixtures.js'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

const ok = (stdout: string, stderr = ''): CommandResult => ({ code: 0, stdout, stderr, timedOut: false })
const missing: CommandResult = { code: -1, stdout: '', stderr: 'spawn conntrack ENOENT', timedOut: false }

/** A Debian board that has everything: the answers of its tools, its files. */
function board(over: { commands?: Record<string, CommandResult>; files?: Record<string, string | null>; paths?: string[]; node?: string; root?: boolean; kernelConfig?: string | null } = {}): PreflightDeps & { ran: string[] } {
  const commands: Record<string, CommandResult> = {
    ip: ok('ip utility, iproute2-6.1.0, libbpf 1.1.0\n'),
    arping: ok('', 'Usage: arping [-fqbDUAV] [-c count] [-w timeout] [-I device] [-s source] destination\n'),
    conntrack: ok('conntrack v1.4.7 (conntrack-tools)\n'),
    'iptables-restore': ok('iptables-restore v1.8.9 (nf_tables)\n'),
    nft: ok('nftables v1.0.6 (Lester Gooch #5)\n'),
    modprobe: { code: 1, stdout: '', stderr: '', timedOut: false },
    ...over.commands,
  }
  const files: Record<string, string | null> = {
    '/proc/sys/net/netfilter/nf_conntrack_max': '262144\n',
    '/proc/sys/net/ipv4/ip_forward': '1\n',
    '/sys/class/tty/console/active': 'tty0 ttyS0\n',
    '/proc/sys/net/ipv4/conf/all/rp_filter': '0\n',
    ...over.files,
  }
  const paths = new Set(over.paths ?? ['/sys/class/net/lan0', '/sys/class/net/sync0', '/sys/class/net/wan0', '/sys/class/net/wan1', '/dev/ttyUSB0', '/sys/module/macvlan'])
  const ran: string[] = []
  return {
    ran,
    run: async (argv) => {
      ran.push(argv.join(' '))
      return commands[argv[0]!] ?? missing
    },
    readText: (path) => files[path] ?? null,
    exists: (path) => paths.has(path),
    kernelConfig: () => over.kernelConfig ?? null,
    nodeVersion: over.node ?? '20.20.2',
    isRoot: over.root ?? true,
  }
}

function config(...lines: string[]): Config {
  const r = load(['node = fw-a', 'carp.1.interface = lan0', 'carp.1.vip = 192.0.2.1/24', 'carp.1.pass = x', ...lines].join('\n'))
  if (!r.ok) throw new Error(r.errors.map((e) => e.message).join('; '))
  return r.config
}

const PAIR = ['sync.interface = sync0', 'sync.peer = 198.18.0.2', 'sync.key = k', 'serial.device = /dev/ttyUSB0']
const WANS = ['wan.1.interface = wan0', 'wan.1.gateway = 203.0.113.1', 'wan.1.probe = 203.0.113.53', 'wan.2.interface = wan1', 'wan.2.gateway = 198.51.100.1', 'wan.2.probe = 198.51.100.53']

const byWhat = (findings: Finding[], what: string): Finding | undefined => findings.find((f) => f.what === what)

t.test('a board with everything: every check ok, each tool with its flavour', async (t) => {
  const deps = board()
  const findings = await preflight(config(...PAIR, ...WANS, 'carp.1.vmac = yes'), deps)
  t.same(
    findings.filter((f) => f.level !== 'ok'),
    [],
    'nothing to fix',
  )
  t.same(
    findings.map((f) => f.what),
    ['Node.js', 'user', 'ip', 'arping', 'conntrack', 'kernel conntrack', 'iptables-restore', 'kernel macvlan', 'carp.1.interface', 'sync.interface', 'wan.1.interface', 'wan.2.interface', 'serial.device', 'net.ipv4.ip_forward', 'rp_filter wan0', 'rp_filter wan1'],
  )
  t.equal(byWhat(findings, 'arping')?.detail, "iputils' arping (-s)")
  t.equal(byWhat(findings, 'iptables-restore')?.detail, 'iptables-restore v1.8.9 (nf_tables): rules go to nftables through the iptables-nft layer')
  t.equal(byWhat(findings, 'kernel conntrack')?.detail, 'nf_conntrack_max 262144')
  t.equal(byWhat(findings, 'serial.device')?.detail, '/dev/ttyUSB0, not the console (tty0 ttyS0)')
  t.ok(deps.ran.every((c) => /--version|--help|-V$/.test(c)), `read-only commands: ${deps.ran.join(', ')}`)
  t.match(renderFindings(findings), /^ok    Node\.js: 20\.20\.2\n/)
  t.match(renderFindings(findings), /\n16 checks: 16 ok, 0 to look at, 0 failed\n$/)
})

t.test('only what the file uses is checked: one router without sync, WANs or serial line', async (t) => {
  const deps = board()
  const findings = await preflight(config(), deps)
  t.same(
    findings.map((f) => f.what),
    ['Node.js', 'user', 'ip', 'arping', 'kernel macvlan', 'carp.1.interface', 'net.ipv4.ip_forward'],
    'the virtual MAC is on by default',
  )
  t.same(deps.ran, ['ip -V', 'arping --help'])
})

t.test('what is missing fails, with the command that fixes it', async (t) => {
  const deps = board({
    commands: { conntrack: missing, 'iptables-restore': missing, arping: missing },
    files: { '/proc/sys/net/netfilter/nf_conntrack_max': null, '/proc/sys/net/ipv4/ip_forward': '0\n' },
    paths: ['/sys/class/net/lan0', '/sys/class/net/wan0'],
  })
  const findings = await preflight(config(...PAIR, ...WANS, 'carp.1.vmac = yes'), deps)
  const failed = findings.filter((f) => f.level === 'fail')
  t.same(
    failed.map((f) => [f.what, f.detail, f.fix]),
    [
      ['arping', 'not found: no gratuitous ARP after a takeover', 'apt-get install arping (or iputils-arping)'],
      ['conntrack', 'not found', 'apt-get install conntrack'],
      ['kernel conntrack', 'nf_conntrack is not loaded', 'modprobe nf_conntrack (and add nf_conntrack to /etc/modules)'],
      ['iptables-restore', 'not found', 'apt-get install iptables'],
      ['kernel macvlan', 'not in this kernel: carp.N.vmac needs it', 'carp.N.vmac = no, or a kernel with CONFIG_MACVLAN'],
      ['sync.interface', 'no interface sync0', 'ip link show (the names this board has; net.ifnames=0 on the kernel line gives eth0, eth1...)'],
      ['wan.2.interface', 'no interface wan1', 'ip link show (the names this board has; net.ifnames=0 on the kernel line gives eth0, eth1...)'],
      ['serial.device', 'no /dev/ttyUSB0', 'ls /dev/ttyS* /dev/ttyUSB* (a USB serial adapter appears as /dev/ttyUSB0)'],
      ['net.ipv4.ip_forward', '0: the board does not route', 'sysctl -w net.ipv4.ip_forward=1, and net.ipv4.ip_forward = 1 in /etc/sysctl.d/50-router.conf'],
    ],
  )
  const text = renderFindings(findings)
  t.match(text, /\nFAIL  conntrack: not found\n      fix: apt-get install conntrack\n/)
  t.match(text, /9 failed\n$/)
})

t.test('the heartbeat on the console is refused; a console elsewhere is fine', async (t) => {
  const onConsole = await preflight(config('serial.device = /dev/ttyS0'), board({ paths: ['/sys/class/net/lan0', '/dev/ttyS0'] }))
  t.match(byWhat(onConsole, 'serial.device'), { level: 'fail', detail: /ttyS0 is the console/, fix: /serial\.device = \/dev\/ttyUSB0/ })
  const elsewhere = await preflight(config('serial.device = /dev/ttyS1'), board({ paths: ['/sys/class/net/lan0', '/dev/ttyS1'] }))
  t.match(byWhat(elsewhere, 'serial.device'), { level: 'ok' })
  const noConsole = await preflight(config('serial.device = /dev/ttyS1'), board({ paths: ['/sys/class/net/lan0', '/dev/ttyS1'], files: { '/sys/class/tty/console/active': null } }))
  t.match(byWhat(noConsole, 'serial.device'), { level: 'ok', detail: '/dev/ttyS1, not the console (none)' })
})

t.test('flavours and versions: Habets arping, legacy iptables, nft, macvlan on demand, old Node.js, not root', async (t) => {
  const deps = board({
    commands: {
      arping: ok('ARPing 2.23, by Thomas Habets <thomas@habets.se>\nusage: arping [ -0aAbBdDeFhpqrRuUv ] [ -w <sec> ] [ -S <host/ip> ]\n'),
      'iptables-restore': ok('iptables-restore v1.8.9 (legacy)\n'),
      modprobe: ok(''),
    },
    paths: ['/sys/class/net/lan0', '/sys/class/net/wan0', '/sys/class/net/wan1'],
    node: '18.20.4',
    root: false,
  })
  const findings = await preflight(config(...WANS, 'carp.1.vmac = yes'), deps)
  t.equal(byWhat(findings, 'arping')?.detail, "Thomas Habets' arping (-S)")
  t.equal(byWhat(findings, 'iptables-restore')?.detail, 'iptables-restore v1.8.9 (legacy): rules go to the legacy x_tables')
  t.match(byWhat(findings, 'kernel macvlan'), { level: 'ok', detail: 'a module, loaded on demand (virtual MACs)' })
  t.match(byWhat(findings, 'Node.js'), { level: 'warn', detail: '18.20.4: carpd is tested on 20', fix: /apt-get install nodejs/ })
  t.match(byWhat(findings, 'user'), { level: 'warn', fix: /as root/ })
  t.ok(deps.ran.includes('modprobe --dry-run --quiet macvlan'), 'asks modprobe without loading anything')
  const macvlan = async (over: Parameters<typeof board>[0]): Promise<Finding | undefined> => byWhat(await preflight(config(), board({ paths: ['/sys/class/net/lan0'], ...over })), 'kernel macvlan')
  t.match(await macvlan({ kernelConfig: 'CONFIG_VLAN_8021Q=m\nCONFIG_MACVLAN=y\n' }), { level: 'ok', detail: 'built into the kernel (virtual MACs)' })
  t.match(await macvlan({ kernelConfig: 'CONFIG_MACVLAN=m\n' }), { level: 'ok', detail: 'a module, loaded on demand (virtual MACs)' })
  t.match(await macvlan({ kernelConfig: '# CONFIG_MACVLAN is not set\n' }), { level: 'fail' })
  t.match(await macvlan({ commands: { modprobe: missing } }), { level: 'warn', detail: /could not tell/ })
  t.match(await macvlan({}), { level: 'fail' }, 'modprobe knows no macvlan')
  const nft = await preflight(config(...WANS, 'wan.rules = nft'), board())
  t.equal(byWhat(nft, 'nft')?.detail, 'nftables v1.0.6 (Lester Gooch #5)')
  t.notOk(byWhat(nft, 'iptables-restore'))
  t.match(byWhat(await preflight(config(), board({ node: '16.20.2' })), 'Node.js'), { level: 'fail', detail: '16.20.2: too old for carpd' })
  const hung = await preflight(config(), board({ commands: { ip: { code: -1, stdout: '', stderr: '', timedOut: true } } }))
  t.match(byWhat(hung, 'ip'), { level: 'fail', detail: 'did not answer' })
})

t.test('ip_forward off on a single router without sync or WANs is a warning; strict rp_filter on a WAN is one', async (t) => {
  const single = await preflight(config(), board({ files: { '/proc/sys/net/ipv4/ip_forward': '0\n' } }))
  t.match(byWhat(single, 'net.ipv4.ip_forward'), { level: 'warn' })
  const strictAll = await preflight(config(...WANS), board({ files: { '/proc/sys/net/ipv4/conf/all/rp_filter': '1\n' } }))
  t.match(byWhat(strictAll, 'rp_filter wan0'), { level: 'warn', detail: /strict/, fix: 'sysctl -w net.ipv4.conf.wan0.rp_filter=2 net.ipv4.conf.all.rp_filter=2 (loose), also in /etc/sysctl.d/' })
  const strictOne = await preflight(config(...WANS), board({ files: { '/proc/sys/net/ipv4/conf/wan1/rp_filter': '1\n', '/proc/sys/net/ipv4/conf/wan0/rp_filter': '2\n' } }))
  t.match(byWhat(strictOne, 'rp_filter wan0'), { level: 'ok', detail: '2 (loose)' })
  t.match(byWhat(strictOne, 'rp_filter wan1'), { level: 'warn', fix: 'sysctl -w net.ipv4.conf.wan1.rp_filter=2 (loose), also in /etc/sysctl.d/' })
  const oneWan = await preflight(config(...WANS.slice(0, 3)), board({ files: { '/proc/sys/net/ipv4/conf/all/rp_filter': '1\n' } }))
  t.notOk(oneWan.some((f) => f.what.startsWith('rp_filter')), 'one WAN: replies come back where they left')
})

t.test('a BSD platform is refused before any tool is run', async (t) => {
  const deps = board()
  const findings = await preflight(config('platform = openbsd', 'sync.backend = none'), deps)
  t.match(findings.at(-1), { level: 'fail', what: 'platform', detail: /Linux only/ })
  t.same(deps.ran, [])
})

t.test('check --system prints the findings after the configuration; exit 1 on a failure', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'carpd-preflight-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const file = join(dir, 'carpd.conf')
  writeFileSync(file, 'node = fw-a\ncarp.1.interface = lan0\ncarp.1.vip = 192.0.2.1/24\ncarp.1.pass = x\n')
  const written: string[] = []
  const write = process.stdout.write.bind(process.stdout)
  process.stdout.write = ((chunk: string) => {
    written.push(chunk)
    return true
  }) as typeof process.stdout.write
  let good: number
  let bad: number
  let plain: number
  try {
    const base = { command: 'check', positional: [], config: file, dryRun: false, json: false, help: false, routes: false, wanState: undefined }
    good = await check({ ...base, system: true }, board())
    bad = await check({ ...base, system: true }, board({ paths: [] }))
    plain = await check({ ...base, system: false }, board({ paths: [] }))
  } finally {
    process.stdout.write = write
  }
  t.equal(good, 0)
  t.equal(bad, 1, 'the LAN interface is missing')
  t.equal(plain, 0, 'without --system the board is not looked at')
  const out = written.join('')
  t.match(out, `# this system, for ${file}\nok    Node.js`)
  t.match(out, /FAIL  carp\.1\.interface: no interface lan0\n/)
  t.equal(out.split('# this system').length, 3, 'twice, for the two --system runs')
})
