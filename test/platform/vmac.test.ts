import t from 'tap'
import type { CommandResult, Runner } from '../../src/platform/exec.js'
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { type SysctlIo, type SysctlLedger, fileLedger, linuxVmacs, vmacAddress, vmacName } from '../../src/platform/vmac.js'

const ok: CommandResult = { code: 0, stdout: '', stderr: '', timedOut: false }
const fail = (stderr: string): CommandResult => ({ code: 2, stdout: '', stderr, timedOut: false })

/** A host: the links that exist, the commands run, and /proc/sys as a map. */
function host(links: string[], sysctl: Record<string, string>, failing: RegExp | null = null, ledger?: SysctlLedger) {
  const present = new Set(links)
  const calls: string[] = []
  const run: Runner = async (argv) => {
    const line = argv.join(' ')
    calls.push(line)
    if (failing?.test(line)) return fail('RTNETLINK answers: Operation not supported')
    const [, sub, verb, ...rest] = argv
    if (sub === 'link' && verb === 'show') return present.has(rest[1]!) ? ok : fail('Device does not exist')
    if (sub === 'link' && verb === 'add') {
      const name = rest[rest.indexOf('name') + 1]!
      present.add(name)
      for (const knob of ['arp_ignore', 'accept_local', 'rp_filter']) sysctl[`/proc/sys/net/ipv4/conf/${name}/${knob}`] = knob === 'rp_filter' ? '1' : '0'
      sysctl[`/proc/sys/net/ipv6/conf/${name}/disable_ipv6`] = '0'
    }
    if (sub === 'link' && verb === 'del') present.delete(rest[1]!)
    return ok
  }
  const io: SysctlIo = { read: (path) => sysctl[path] ?? null, write: (path, value) => void (sysctl[path] = value) }
  const lines: string[] = []
  const log = { event: (sub: string, msg: string) => void lines.push(`${sub} ${msg}`) }
  const vmacs = linuxVmacs({ run, log, sysctl: io, ledger, interfaces: () => Object.keys(sysctl).filter((k) => k.startsWith('/proc/sys/net/ipv4/conf/') && k.endsWith('/rp_filter')).map((k) => k.split('/')[6]!) })
  return { vmacs, calls, sysctl, present, lines }
}

const base = () => ({
  '/proc/sys/net/ipv4/conf/all/rp_filter': '2',
  '/proc/sys/net/ipv4/conf/default/rp_filter': '2',
  '/proc/sys/net/ipv4/conf/lan0/rp_filter': '0',
  '/proc/sys/net/ipv4/conf/wan0/rp_filter': '1',
  '/proc/sys/net/ipv4/conf/lan0/arp_ignore': '0',
  '/proc/sys/net/ipv4/conf/lan0/arp_filter': '0',
  '/proc/sys/net/ipv4/conf/lan0/arp_announce': '0',
})

t.test('names and MACs: carpN, 00:00:5e:00:01:NN (RFC 5798 §7.3)', async (t) => {
  t.equal(vmacName(1), 'carp1')
  t.equal(vmacName(255), 'carp255')
  t.equal(vmacAddress(1), '00:00:5e:00:01:01')
  t.equal(vmacAddress(255), '00:00:5e:00:01:ff')
})

t.test('setUp: a leftover is deleted, the macvlan made down, the sysctls set; tearDown puts everything back', async (t) => {
  const h = host(['lan0', 'carp1'], base())
  const before = { ...h.sysctl }
  const ready = await h.vmacs.setUp([{ vhid: 1, parent: 'lan0', ipv4: true, ipv6: false }])
  t.same([...ready], [[1, 'carp1']])
  t.same(h.calls, [
    'ip link show dev carp1',
    'ip link del dev carp1',
    'ip link add link lan0 name carp1 address 00:00:5e:00:01:01 type macvlan mode private',
  ], 'made again, and left down (up only while MASTER)')
  t.match(h.lines.join('\n'), /carp1 left from an earlier run: deleting it/)
  t.match(h.sysctl, {
    '/proc/sys/net/ipv4/conf/all/rp_filter': '0',
    '/proc/sys/net/ipv4/conf/lan0/rp_filter': '2', // what all gave it before
    '/proc/sys/net/ipv4/conf/wan0/rp_filter': '2',
    '/proc/sys/net/ipv4/conf/default/rp_filter': '2', // left alone
    '/proc/sys/net/ipv4/conf/lan0/arp_ignore': '1',
    '/proc/sys/net/ipv4/conf/lan0/arp_filter': '1',
    '/proc/sys/net/ipv4/conf/lan0/arp_announce': '2',
    '/proc/sys/net/ipv4/conf/carp1/arp_ignore': '1',
    '/proc/sys/net/ipv4/conf/carp1/accept_local': '1',
    '/proc/sys/net/ipv4/conf/carp1/rp_filter': '0',
    '/proc/sys/net/ipv6/conf/carp1/disable_ipv6': '1',
  })
  await h.vmacs.link(1, true)
  await h.vmacs.link(7, true) // a vhid without one: nothing
  t.equal(h.calls.at(-1), 'ip link set dev carp1 up')
  h.calls.length = 0
  await h.vmacs.tearDown()
  t.same(h.calls, ['ip link del dev carp1'])
  for (const [path, value] of Object.entries(before)) t.equal(h.sysctl[path], value, `${path} back to ${value}`)
})

t.test('a macvlan that cannot be made leaves that vhid on ARP only, and the others go on', async (t) => {
  const h = host(['lan0', 'lan1'], base(), /name carp1 /)
  const ready = await h.vmacs.setUp([{ vhid: 1, parent: 'lan0', ipv4: true, ipv6: false }, { vhid: 2, parent: 'lan1', ipv4: true, ipv6: false }])
  t.same([...ready], [[2, 'carp2']])
  t.match(h.lines.join('\n'), /vhid=1 no virtual MAC, gratuitous ARP only: ip link add .*Operation not supported/)
})

t.test('check: a deleted macvlan is made again (up if it was), a sysctl changed back is set again; each is one repair line', async (t) => {
  const h = host(['lan0'], base())
  await h.vmacs.setUp([{ vhid: 1, parent: 'lan0', ipv4: true, ipv6: false }])
  t.same(await h.vmacs.check(), [], 'nothing to repair')
  await h.vmacs.link(1, true)
  h.present.delete('carp1')
  h.sysctl['/proc/sys/net/ipv4/conf/lan0/arp_ignore'] = '0'
  h.calls.length = 0
  const repairs = await h.vmacs.check()
  t.same(repairs, ['vhid=1 carp1 was deleted by someone else: made again', 'net.ipv4.conf.lan0.arp_ignore was 0: set to 1 again'])
  t.same(h.calls.slice(1), ['ip link add link lan0 name carp1 address 00:00:5e:00:01:01 type macvlan mode private', 'ip link set dev carp1 up'])
  t.equal(h.sysctl['/proc/sys/net/ipv4/conf/carp1/arp_ignore'], '1', 'the new macvlan has its sysctls')
  // A host that refuses: logged, tried again at the next check.
  const refusing = host(['lan0'], base())
  await refusing.vmacs.setUp([{ vhid: 3, parent: 'lan0', ipv4: true, ipv6: false }])
  refusing.present.delete('carp3')
  const broken = host(['lan0'], base(), /name carp3 /)
  t.same(await broken.vmacs.check(), [], 'nothing made yet: nothing to check')
  t.same(await refusing.vmacs.check(), ['vhid=3 carp3 was deleted by someone else: made again'])
})

t.test('all.rp_filter already 0: no interface is touched for it', async (t) => {
  const h = host(['lan0'], { ...base(), '/proc/sys/net/ipv4/conf/all/rp_filter': '0' })
  await h.vmacs.setUp([{ vhid: 1, parent: 'lan0', ipv4: true, ipv6: false }])
  t.equal(h.sysctl['/proc/sys/net/ipv4/conf/wan0/rp_filter'], '1')
  t.equal(h.sysctl['/proc/sys/net/ipv4/conf/lan0/rp_filter'], '0')
})

t.test('a vhid with IPv6 VIPs: IPv6 on without an address of its own, no DAD, no RAs; IPv6-only takes VRRP\'s IPv6 MAC', async (t) => {
  const h = host(['lan0'], base())
  for (const name of ['carp1', 'carp2']) {
    for (const [knob, value] of [['addr_gen_mode', '0'], ['accept_dad', '1'], ['accept_ra', '1']]) h.sysctl[`/proc/sys/net/ipv6/conf/${name}/${knob}`] = value!
  }
  const ready = await h.vmacs.setUp([{ vhid: 1, parent: 'lan0', ipv4: true, ipv6: true }, { vhid: 2, parent: 'lan0', ipv4: false, ipv6: true }])
  t.same([...ready], [[1, 'carp1'], [2, 'carp2']])
  t.match(h.calls.join('\n'), /name carp1 address 00:00:5e:00:01:01 /, 'IPv4 and IPv6 VIPs: the IPv4 MAC, as carp(4)')
  t.match(h.calls.join('\n'), /name carp2 address 00:00:5e:00:02:02 /, 'IPv6 only: 00:00:5e:00:02:VHID')
  t.equal(vmacAddress(2, true), '00:00:5e:00:02:02')
  for (const name of ['carp1', 'carp2']) {
    const v6 = (knob: string) => h.sysctl[`/proc/sys/net/ipv6/conf/${name}/${knob}`]
    t.same([v6('addr_gen_mode'), v6('accept_dad'), v6('accept_ra'), v6('disable_ipv6')], ['1', '0', '0', '0'], `${name}: no link-local address, no DAD, no RAs, IPv6 on`)
  }
  t.ok(h.lines.some((l) => /vhid=2 virtual MAC 00:00:5e:00:02:02 on carp2/.test(l)), 'the console names the MAC in use')
  // Deleted by someone else: made again with the same IPv6 settings.
  h.present.delete('carp2')
  h.sysctl['/proc/sys/net/ipv6/conf/carp2/addr_gen_mode'] = '0'
  const repairs = await h.vmacs.check()
  t.match(repairs.join('\n'), /carp2 was deleted by someone else/)
  t.equal(h.sysctl['/proc/sys/net/ipv6/conf/carp2/addr_gen_mode'], '1', 'its addr_gen_mode set again')
  t.match(h.calls.join('\n'), /link add link lan0 name carp2 address 00:00:5e:00:02:02 type macvlan mode private\n.*link add link lan0 name carp2 address 00:00:5e:00:02:02/s)
})

t.test('a run killed without its tear-down: the next run puts its sysctls back first and restores the true originals at its own end', async (t) => {
  let kept: [string, string][] = []
  const ledger: SysctlLedger = { read: () => kept, write: (e) => void (kept = e), remove: () => void (kept = []) }
  const sysctl: Record<string, string> = base()
  const before = { ...sysctl }
  const first = host(['lan0'], sysctl, null, ledger)
  await first.vmacs.setUp([{ vhid: 1, parent: 'lan0', ipv4: true, ipv6: false }])
  t.equal(sysctl['/proc/sys/net/ipv4/conf/lan0/arp_ignore'], '1', 'the first run changed the parent')
  t.ok(kept.some(([p, v]) => p === '/proc/sys/net/ipv4/conf/all/rp_filter' && v === '2'), 'and kept what all.rp_filter was')
  // SIGKILL: no tearDown. A second run on the same host (the macvlan is still there).
  const second = host(['lan0', 'carp1'], sysctl, null, ledger)
  await second.vmacs.setUp([{ vhid: 1, parent: 'lan0', ipv4: true, ipv6: false }])
  t.match(second.lines.join('\n'), /sysctls an earlier run changed and did not put back, back now: .*net\.ipv4\.conf\.lan0\.arp_ignore=0/)
  t.equal(sysctl['/proc/sys/net/ipv4/conf/lan0/arp_ignore'], '1', 'then set again by this run')
  await second.vmacs.tearDown()
  for (const key of Object.keys(before)) t.equal(sysctl[key], before[key], `${key} back to its value from before the first run`)
  t.same(kept, [], 'a clean end leaves no ledger')
  t.ok(second.calls.indexOf('ip link del dev carp1') >= 0, "the killed run's macvlan was deleted before its parent's sysctls went back")

  // Killed again; the next run has no vhid to set up: its stop still puts them back.
  await host(['lan0'], sysctl, null, ledger).vmacs.setUp([{ vhid: 1, parent: 'lan0', ipv4: true, ipv6: false }])
  const third = host(['lan0', 'carp1'], sysctl, null, ledger)
  await third.vmacs.tearDown()
  for (const key of Object.keys(before)) t.equal(sysctl[key], before[key], `${key} back without a setUp`)
  t.same(kept, [])
})

t.test('fileLedger: one file per network namespace under the directory; a bad or foreign file reads as empty', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'carpd-ledger-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const l = fileLedger(join(dir, 'run'))
  t.same(l.read(), [], 'nothing kept yet')
  l.write([['/proc/sys/net/ipv4/conf/all/rp_filter', '2']])
  t.same(l.read(), [['/proc/sys/net/ipv4/conf/all/rp_filter', '2']])
  const [file] = readdirSync(join(dir, 'run'))
  t.match(file, /^sysctl-\d+\.json$/, 'named by the namespace')
  writeFileSync(join(dir, 'run', file!), JSON.stringify([['/etc/passwd', 'x'], ['/proc/sys/../../etc/x', '1'], ['/proc/sys/net/ipv4/conf/lan0/arp_ignore', '0'], [1, 2]]))
  t.same(l.read(), [['/proc/sys/net/ipv4/conf/lan0/arp_ignore', '0']], 'only /proc/sys paths, without ..')
  writeFileSync(join(dir, 'run', file!), '{not json')
  t.same(l.read(), [])
  t.equal(readFileSync(join(dir, 'run', file!), 'utf8'), '{not json')
  l.remove()
  t.same(l.read(), [])
})
