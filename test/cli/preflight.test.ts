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
function board(
  over: { commands?: Record<string, CommandResult>; files?: Record<string, string | null>; paths?: string[]; node?: string; root?: boolean; kernelConfig?: string | null; addresses?: Record<string, string> } = {},
): PreflightDeps & { ran: string[] } {
  const commands: Record<string, CommandResult> = {
    ip: ok('ip utility, iproute2-6.1.0, libbpf 1.1.0\n'),
    arping: ok('', 'Usage: arping [-fqbDUAV] [-c count] [-w timeout] [-I device] [-s source] destination\n'),
    stty: ok('stty (GNU coreutils) 9.1\n'),
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
    '/proc/sys/net/ipv4/conf/all/src_valid_mark': '0\n',
    ...Object.fromEntries(['wan0', 'wan1'].flatMap((i) => [[`/proc/sys/net/ipv4/conf/${i}/rp_filter`, '0\n'], [`/proc/sys/net/ipv4/conf/${i}/src_valid_mark`, '0\n']])),
    ...over.files,
  }
  const paths = new Set(over.paths ?? ['/sys/class/net/lan0', '/sys/class/net/sync0', '/sys/class/net/wan0', '/sys/class/net/wan1', '/dev/ttyUSB0', '/sys/module/macvlan'])
  const addresses: Record<string, string> = over.addresses ?? { lan0: '192.0.2.2/24', sync0: '198.18.0.1/24', wan0: '203.0.113.2/24', wan1: '198.51.100.2/24' }
  const ran: string[] = []
  return {
    ran,
    run: async (argv) => {
      ran.push(argv.join(' '))
      if (argv[0] === 'ip' && argv[1] === '-j') {
        const a = addresses[argv.at(-1)!]
        const [local, prefixlen] = a === undefined ? [] : a.split('/')
        return ok(JSON.stringify([{ ifname: argv.at(-1), addr_info: a === undefined ? [] : [{ local, prefixlen: Number(prefixlen) }] }]))
      }
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
    ['Node.js', 'user', 'ip', 'arping', 'stty', 'conntrack', 'kernel conntrack', 'iptables-restore', 'kernel macvlan', 'carp.1.interface', 'sync.interface', 'wan.1.interface', 'wan.2.interface', 'serial.device', 'net.ipv4.ip_forward', 'rp_filter wan0', 'rp_filter wan1'],
  )
  t.equal(byWhat(findings, 'arping')?.detail, "iputils' arping (-s)")
  t.equal(byWhat(findings, 'iptables-restore')?.detail, 'iptables-restore v1.8.9 (nf_tables): rules go to nftables through the iptables-nft layer')
  t.equal(byWhat(findings, 'kernel conntrack')?.detail, 'nf_conntrack_max 262144')
  t.equal(byWhat(findings, 'serial.device')?.detail, '/dev/ttyUSB0, not the console (tty0 ttyS0)')
  t.equal(byWhat(findings, 'carp.1.interface')?.detail, 'lan0 192.0.2.2/24')
  t.ok(deps.ran.every((c) => /--version|--help|-V$|^ip -j -4 addr show dev /.test(c)), `read-only commands: ${deps.ran.join(', ')}`)
  t.match(renderFindings(findings), /^ok    Node\.js: 20\.20\.2\n/)
  t.match(renderFindings(findings), /\n17 checks: 17 ok, 0 to look at, 0 failed\n$/)
})

t.test('only what the file uses is checked: one router without sync, WANs or serial line', async (t) => {
  const deps = board()
  const findings = await preflight(config(), deps)
  t.same(
    findings.map((f) => f.what),
    ['Node.js', 'user', 'ip', 'arping', 'kernel macvlan', 'carp.1.interface', 'net.ipv4.ip_forward'],
    'the virtual MAC is on by default',
  )
  t.same(deps.ran, ['ip -V', 'arping --help', 'ip -j -4 addr show dev lan0'])
})

t.test('what is missing fails, with the command that fixes it; a WAN that comes later is a warning', async (t) => {
  const deps = board({
    commands: { conntrack: missing, 'iptables-restore': missing, arping: missing, ip: { code: 1, stdout: '', stderr: 'BusyBox v1.36.1 multi-call binary.\nUsage: ip [OPTIONS]', timedOut: false } },
    files: { '/proc/sys/net/netfilter/nf_conntrack_max': null, '/proc/sys/net/ipv4/ip_forward': '0\n' },
    paths: ['/sys/class/net/lan0', '/sys/class/net/wan0'],
    addresses: { lan0: '192.0.2.2/24' },
  })
  const findings = await preflight(config(...PAIR, ...WANS, 'carp.1.vmac = yes'), deps)
  const failed = findings.filter((f) => f.level !== 'ok')
  const ifFix = 'ip link show (the names this board has; net.ifnames=0 on the kernel line gives eth0, eth1...)'
  t.same(
    failed.map((f) => [f.level, f.what, f.detail, f.fix]),
    [
      ['fail', 'ip', 'not the expected program: BusyBox v1.36.1 multi-call binary.', 'apt-get install iproute2 (carpd needs its -j and -batch; busybox ip has neither)'],
      ['fail', 'arping', 'not found: no gratuitous ARP after a takeover', 'apt-get install arping (or iputils-arping)'],
      ['fail', 'conntrack', 'not found', 'apt-get install conntrack'],
      ['fail', 'kernel conntrack', 'not in this kernel (no nf_conntrack)', 'a kernel with CONFIG_NF_CONNTRACK; or sync.interface = (no sync) and no wan.N blocks'],
      ['fail', 'iptables-restore', 'not found', 'apt-get install iptables'],
      ['fail', 'kernel macvlan', 'not in this kernel: carp.N.vmac needs it', 'carp.N.vmac = no, or a kernel with CONFIG_MACVLAN'],
      ['fail', 'sync.interface', 'no interface sync0', ifFix],
      ['warn', 'wan.1.interface', 'wan0 has no IPv4 address yet', 'ip addr add ADDRESS/PREFIX dev wan0 (and in the interfaces file)'],
      ['warn', 'wan.2.interface', 'no interface wan1 yet (a PPPoE link comes up later; carpd waits for it)', ifFix],
      ['fail', 'serial.device', 'no /dev/ttyUSB0', 'ls /dev/ttyS* /dev/ttyUSB* (a USB serial adapter appears as /dev/ttyUSB0)'],
      ['fail', 'net.ipv4.ip_forward', '0: the board does not route', 'sysctl -w net.ipv4.ip_forward=1, and net.ipv4.ip_forward = 1 in /etc/sysctl.d/50-router.conf'],
    ],
  )
  const text = renderFindings(findings)
  t.match(text, /\nFAIL  conntrack: not found\n      fix: apt-get install conntrack\n/)
  t.match(text, /2 to look at, 9 failed\n$/)
})

t.test('what carpd run refuses: a LAN interface without an IPv4 address; an IPv6-only vhid needs no IPv4 (pf on Linux the file itself refuses)', async (t) => {
  const noAddress = await preflight(config(), board({ addresses: {} }))
  t.match(byWhat(noAddress, 'carp.1.interface'), { level: 'fail', detail: 'lan0 has no IPv4 address: carpd run refuses to start' })
  const v6 = load(['node = fw-a', 'carp.1.interface = lan0', 'carp.1.vip = 2001:db8::1/64', 'carp.1.pass = x', 'carp.1.vmac = no'].join('\n'))
  if (!v6.ok) throw new Error('v6 config')
  const v6Findings = await preflight(v6.config, board({ addresses: {}, commands: { na6: { code: 1, stdout: '', stderr: 'usage: na6 -i INTERFACE [-s SRC_ADDR[/LEN]] ...', timedOut: false } } }))
  t.match(byWhat(v6Findings, 'carp.1.interface'), { level: 'ok', detail: 'lan0' })
  t.match(byWhat(v6Findings, 'na6'), { level: 'ok', detail: 'ipv6toolkit' }, 'na6 for the neighbour advertisement, its help exits 1')
  const noNa6 = await preflight(v6.config, board({ addresses: {} }))
  t.match(byWhat(noNa6, 'na6'), { level: 'fail', fix: /ipv6toolkit/ })
})

t.test('kernel conntrack not loaded yet is fine when the kernel has it', async (t) => {
  const files = { '/proc/sys/net/netfilter/nf_conntrack_max': null }
  const built = await preflight(config(...WANS), board({ files, kernelConfig: 'CONFIG_NF_CONNTRACK=m\n' }))
  t.match(byWhat(built, 'kernel conntrack'), { level: 'ok', detail: 'not loaded yet; loads on demand' })
  const probe = await preflight(config(...WANS), board({ files, commands: { modprobe: ok('') } }))
  t.match(byWhat(probe, 'kernel conntrack'), { level: 'ok' })
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

t.test('ip_forward off on a single router without sync or WANs is a warning; strict rp_filter on a WAN is one, unless marks are valid', async (t) => {
  const single = await preflight(config(), board({ files: { '/proc/sys/net/ipv4/ip_forward': '0\n' } }))
  t.match(byWhat(single, 'net.ipv4.ip_forward'), { level: 'warn' })
  const strictAll = await preflight(config(...WANS), board({ files: { '/proc/sys/net/ipv4/conf/all/rp_filter': '1\n' } }))
  t.match(byWhat(strictAll, 'rp_filter wan0'), { level: 'warn', detail: /strict/, fix: 'sysctl -w net.ipv4.conf.wan0.src_valid_mark=1 (or rp_filter=2)' })
  const strictOne = await preflight(config(...WANS), board({ files: { '/proc/sys/net/ipv4/conf/wan1/rp_filter': '1\n', '/proc/sys/net/ipv4/conf/wan0/rp_filter': '2\n' } }))
  t.match(byWhat(strictOne, 'rp_filter wan0'), { level: 'ok' })
  t.match(byWhat(strictOne, 'rp_filter wan1'), { level: 'warn' })
  const marks = await preflight(config(...WANS), board({ files: { '/proc/sys/net/ipv4/conf/all/rp_filter': '1\n', '/proc/sys/net/ipv4/conf/all/src_valid_mark': '1\n' } }))
  t.match(byWhat(marks, 'rp_filter wan0'), { level: 'ok' }, 'src_valid_mark: the marks count')
  const oneWan = await preflight(config(...WANS.slice(0, 3)), board({ files: { '/proc/sys/net/ipv4/conf/all/rp_filter': '1\n' } }))
  t.match(byWhat(oneWan, 'rp_filter wan0'), { level: 'warn' }, 'one WAN too: the runtime warns the same')
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
