import t from 'tap'
import type { CommandResult, Runner } from '../../src/platform/exec.js'
import { detectArping, linuxInterfaceNet, linuxPlatform } from '../../src/platform/linux.js'

const vip = { address: '192.0.2.1', prefix: 24 }
const ok = (stdout = ''): CommandResult => ({ code: 0, stdout, stderr: '', timedOut: false })
const exit = (code: number, stderr = ''): CommandResult => ({ code, stdout: '', stderr, timedOut: false })

/** A runner that records argument arrays and answers from a table of (argv prefix → result). */
function fakeRunner(answers: [string, CommandResult][]) {
  const calls: string[] = []
  const run: Runner = async (argv, timeoutMs) => {
    const line = argv.join(' ')
    calls.push(`${line} (${timeoutMs} ms)`)
    return answers.find(([prefix]) => line.startsWith(prefix))?.[1] ?? ok()
  }
  return { calls, run }
}

const log = { event: () => {} }

t.test('VIPs with ip, as argument arrays; "already there" and "already gone" are fine', async (t) => {
  const r = fakeRunner([
    ['ip -4 addr add 192.0.2.1/24 dev lan0', exit(2, 'Error: ipv4: Address already assigned.')],
    ['ip -4 addr del 192.0.2.1/24 dev lan0', exit(2, 'Error: ipv4: Address not found.')],
  ])
  const p = linuxPlatform({ run: r.run, log })
  await p.addVip('lan0', vip)
  await p.removeVip('lan0', vip)
  t.same(r.calls, ['ip -4 addr add 192.0.2.1/24 dev lan0 (5000 ms)', 'ip -4 addr del 192.0.2.1/24 dev lan0 (5000 ms)'])
})

t.test('a failing command rejects with the command and its first error line', async (t) => {
  const r = fakeRunner([
    ['ip -4 addr add', exit(2, 'Cannot find device "lan9"\nmore')],
    ['ip -4 addr del', exit(1)],
    ['/cf/up.sh', exit(3, '')],
  ])
  const p = linuxPlatform({ run: r.run, log })
  await t.rejects(p.addVip('lan9', vip), { code: 'commandFailed', message: 'ip -4 addr add 192.0.2.1/24 dev lan9: Cannot find device "lan9"' })
  await t.rejects(p.removeVip('lan0', vip), { message: /: exit code 1$/ })
  await t.rejects(p.runHook('/cf/up.sh', ['1', 'lan0', '192.0.2.1', 'MASTER']), { message: /^\/cf\/up\.sh 1 lan0 192\.0\.2\.1 MASTER: exit code 3$/ })
  const slow: Runner = async () => ({ code: -1, stdout: '', stderr: '', timedOut: true })
  await t.rejects(linuxPlatform({ run: slow, log }).addVip('lan0', vip), { code: 'timeout', message: 'ip timed out after 5000 ms' })
})

t.test("gratuitous ARP with Habets' arping (-S VIP) or iputils' (-s VIP), detected once", async (t) => {
  const habets = fakeRunner([
    ['arping --help', exit(1, 'ARPing 2.23, by Thomas Habets <thomas@habets.se>\nusage: arping')],
    ['arping -U', exit(1)], // no reply to an unsolicited ARP: exit 1 is normal
  ])
  const p = linuxPlatform({ run: habets.run, log })
  await p.garp('lan0', vip)
  await p.garp('lan0', vip)
  t.same(habets.calls, [
    'arping --help (5000 ms)',
    'arping -U -S 192.0.2.1 -i lan0 -c 1 192.0.2.1 (5000 ms)',
    'arping -U -S 192.0.2.1 -i lan0 -c 1 192.0.2.1 (5000 ms)',
  ])
  const iputils = fakeRunner([['arping --help', exit(2, 'Usage: arping [-AbBDfhqUV] ... iputils-20221126')]])
  await linuxPlatform({ run: iputils.run, log }).garp('lan0', vip)
  t.same(iputils.calls.at(-1), 'arping -U -c 1 -I lan0 -s 192.0.2.1 192.0.2.1 (5000 ms)')
  const broken = fakeRunner([['arping --help', ok('Habets')], ['arping -U', exit(2, 'libnet_init failed')]])
  const bp = linuxPlatform({ run: broken.run, log })
  await t.rejects(bp.garp('lan0', vip), { message: /libnet_init failed/ })
  await t.rejects(bp.garp('lan0', vip))
  t.equal(broken.calls.filter((c) => c.startsWith('arping --help')).length, 2, 'after a failure the flavour is detected again')
  t.equal(await detectArping(fakeRunner([['arping', exit(127, 'spawn arping ENOENT')]]).run), 'iputils', 'missing arping: the iputils flags, and the call will fail loudly')
})

t.test('hooks get a longer timeout and log success', async (t) => {
  const lines: string[] = []
  const r = fakeRunner([])
  await linuxPlatform({ run: r.run, log: { event: (s, m) => lines.push(`${s} ${m}`) } }).runHook('/cf/up.sh', ['1', 'lan0', '192.0.2.1', 'MASTER'])
  t.same(r.calls, ['/cf/up.sh 1 lan0 192.0.2.1 MASTER (30000 ms)'])
  t.same(lines, ['platform hook /cf/up.sh 1 lan0 192.0.2.1 MASTER: ok'])
})

t.test('link state from operstate', async (t) => {
  const states: Record<string, string> = { lan0: 'up\n', lo: 'unknown\n', wan0: 'down\n', veth1: 'lowerlayerdown\n' }
  const p = linuxPlatform({
    run: fakeRunner([]).run,
    log,
    readOperstate: (iface) => {
      if (!(iface in states)) throw new Error('ENOENT')
      return states[iface]!
    },
  })
  t.same(['lan0', 'lo', 'wan0', 'veth1', 'gone0'].map((i) => p.linkUp(i)), [true, true, false, false, false])
  const real = linuxPlatform({ run: fakeRunner([]).run, log })
  t.equal(real.linkUp('lo'), true, "/sys/class/net/lo/operstate is 'unknown': up")
  t.equal(real.linkUp('nosuch0'), false, 'no such interface: down')
})

t.test('interface addresses from ip -j', async (t) => {
  t.same(linuxInterfaceNet('lo'), { address: '127.0.0.1', prefix: 8 })
  t.equal(linuxInterfaceNet('nosuch0'), undefined)
})

t.test('prepare() detects the arping once at start; only Habets may announce before the address exists', async (t) => {
  const lines: string[] = []
  const habets = fakeRunner([['arping --help', exit(1, 'ARPing 2.23, by Thomas Habets')]])
  const p = linuxPlatform({ run: habets.run, log: { event: (s, m) => lines.push(`${s} ${m}`) } })
  t.equal(p.garpBeforeAddress, false, 'unknown until detected')
  await p.prepare()
  t.equal(p.garpBeforeAddress, true)
  t.same(lines, ["platform arping: Thomas Habets' (-S)"])
  await p.garp('lan0', vip)
  t.equal(habets.calls.filter((c) => c.startsWith('arping --help')).length, 1, 'not detected again')
  const iputils = linuxPlatform({ run: fakeRunner([['arping --help', exit(2, 'iputils')]]).run, log })
  await iputils.prepare()
  t.equal(iputils.garpBeforeAddress, false, 'iputils binds to the address: wait for it')
})

t.test('IPv6 VIPs: ip -6 with nodad (no DAD delay); the unsolicited NA with na6, detected once; without na6 the call fails loudly', async (t) => {
  const v6 = { address: '2001:db8::1', prefix: 64 }
  const r = fakeRunner([
    ['ip -6 addr add', exit(2, 'Error: ipv6: address already assigned.')],
    ['ip -6 addr del', exit(2, 'Error: ipv6: address not found.')],
    ['na6 -h', exit(1, 'usage: na6 -i INTERFACE ...')],
  ])
  const p = linuxPlatform({ run: r.run, log })
  await p.addVip('carp1', v6)
  await p.removeVip('carp1', v6)
  await p.garp('carp1', v6)
  await p.garp('carp1', v6)
  t.same(r.calls, [
    'ip -6 addr add 2001:db8::1/64 dev carp1 nodad preferred_lft 0 (5000 ms)',
    'ip -6 addr del 2001:db8::1/64 dev carp1 (5000 ms)',
    'na6 -h (5000 ms)',
    'na6 -i carp1 -s 2001:db8::1 -d ff02::1 -t 2001:db8::1 -o -e (5000 ms)',
    'na6 -i carp1 -s 2001:db8::1 -d ff02::1 -t 2001:db8::1 -o -e (5000 ms)',
  ])
  const missing = linuxPlatform({ run: fakeRunner([['na6', exit(-1, 'ENOENT: spawn na6 ENOENT')]]).run, log })
  await t.rejects(missing.garp('lan0', v6), { code: 'notSupported', message: /no na6 .*ipv6toolkit/ })
  const failing = fakeRunner([['na6 -h', exit(1, 'na6: usage')], ['na6 -i', exit(1, 'Error opening device')]])
  const f = linuxPlatform({ run: failing.run, log })
  await t.rejects(f.garp('lan0', v6), { code: 'commandFailed', message: /na6 -i lan0 .*: Error opening device/ })
  await t.rejects(f.garp('lan0', v6))
  t.equal(failing.calls.filter((c) => c.startsWith('na6 -h')).length, 2, 'looked for again after a failure')
})

t.test('the self-repair check reads IPv4 and IPv6 addresses', async (t) => {
  const json = JSON.stringify([{ ifname: 'carp1', addr_info: [{ family: 'inet', local: '192.0.2.1' }, { family: 'inet6', local: '2001:db8::1' }, { family: 'inet6', local: 'fe80::1' }, { family: 'other', local: 'x' }] }])
  const r = fakeRunner([['ip -j addr show dev carp1', ok(json)]])
  const p = linuxPlatform({ run: r.run, log })
  t.same([...(await p.addresses!('carp1'))], ['192.0.2.1', '2001:db8::1', 'fe80::1'])
})
