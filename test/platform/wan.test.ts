import { existsSync, readFileSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { basename, dirname, join } from 'node:path'
import t, { type Test } from 'tap'
import type { CommandResult, Runner } from '../../src/platform/exec.js'
import { dryRunWanApplier, linuxWanApplier, reversePathWarning, WanApplyError } from '../../src/platform/wan.js'
import type { WanHook } from '../../src/wan/types.js'
import { iptablesHooks } from '../../src/wan/rules/index.js'

const ok = (stdout = ''): CommandResult => ({ code: 0, stdout, stderr: '', timedOut: false })
const exit = (code: number, stderr = '', stdout = ''): CommandResult => ({ code, stdout, stderr, timedOut: false })

const WAN_COMMAND_TIMEOUT_MS = 10_000
const RULES = '*mangle\n:CARPD_WAN - [0:0]\n-A CARPD_WAN -j RETURN\nCOMMIT\n'

interface Seen {
  argv: string[]
  timeoutMs: number
  /** The rules file named by the command, as it was while the command ran. */
  file?: { path: string; text: string; mode: number }
}

/**
 * Records every argument array and answers from a table of (argv prefix → result);
 * unlisted commands succeed. A command whose last argument is a file that exists has
 * the file read while it runs.
 */
function fakeRunner(answers: [string, CommandResult][] = []) {
  const seen: Seen[] = []
  const run: Runner = async (argv, timeoutMs) => {
    const s: Seen = { argv: [...argv], timeoutMs }
    const last = argv[argv.length - 1]!
    if (last.startsWith(tmpdir()) && existsSync(last)) {
      s.file = { path: last, text: readFileSync(last, 'utf8'), mode: statSync(last).mode & 0o777 }
    }
    seen.push(s)
    const line = argv.join(' ')
    return answers.find(([prefix]) => line.startsWith(prefix))?.[1] ?? ok()
  }
  /** The commands as lines, the rules file shown as FILE. */
  const lines = () => seen.map((s) => s.argv.map((a) => (a === s.file?.path ? 'FILE' : a)).join(' '))
  return { seen, run, lines }
}

function recordingLog() {
  const lines: string[] = []
  return { lines, log: { event: (sub: string, msg: string) => void lines.push(`${sub} ${msg}`) } }
}

/** Every command that read the rules file saw `text`, from one private file that is gone now. */
function checkFile(t: Test, seen: Seen[], text: string, name: string): void {
  const files = seen.filter((s) => s.file)
  t.ok(files.length > 0, 'the rules file existed while the commands ran')
  for (const s of files) {
    t.equal(s.file!.text, text, `${s.argv[0]} read exactly the rules`)
    t.equal(s.file!.mode, 0o600, 'only root reads the rules file')
    t.equal(basename(s.file!.path), name)
    t.match(basename(dirname(s.file!.path)), /^carpd-wan-/)
  }
  t.equal(new Set(files.map((s) => s.file!.path)).size, 1, 'the check and the load read the same file')
  const path = files[0]!.file!.path
  t.notOk(existsSync(path), 'the file is removed afterwards')
  t.notOk(existsSync(dirname(path)), 'and its directory')
}

t.test('iptables: check, load, then each jump checked with -C and inserted only when missing; all wait 5 s for the xtables lock', async (t) => {
  const r = fakeRunner([['iptables -w 5 -t nat -C POSTROUTING', exit(1, 'iptables: No chain/target/match by that name.')]])
  const { lines, log } = recordingLog()
  await linuxWanApplier({ run: r.run, log }).loadRules('iptables', RULES, iptablesHooks())
  t.same(r.lines(), [
    'iptables-restore -w 5 --test --noflush FILE',
    'iptables-restore -w 5 --noflush FILE',
    'iptables -w 5 -t mangle -C PREROUTING -j CARPD_WAN',
    'iptables -w 5 -t mangle -C POSTROUTING -j CARPD_WAN_OUT',
    'iptables -w 5 -t nat -C POSTROUTING -j CARPD_WAN_NAT',
    'iptables -w 5 -t nat -I POSTROUTING 1 -j CARPD_WAN_NAT',
  ])
  t.same(r.seen[0]!.argv.slice(0, 5), ['iptables-restore', '-w', '5', '--test', '--noflush'], '-w and its seconds are two arguments')
  t.ok(r.seen.every((s) => s.timeoutMs === WAN_COMMAND_TIMEOUT_MS), 'every command has the timeout')
  checkFile(t, r.seen, RULES, 'rules.iptables')
  t.same(lines, ['wan hooked nat POSTROUTING: -j CARPD_WAN_NAT'], 'only the inserted jump is logged')
})

t.test('iptables with every jump present inserts nothing and logs nothing', async (t) => {
  const r = fakeRunner()
  const { lines, log } = recordingLog()
  await linuxWanApplier({ run: r.run, log }).loadRules('iptables', RULES, iptablesHooks())
  t.same(r.lines().filter((l) => l.includes(' -I ')), [])
  t.same(lines, [])
})

t.test('iptables with no hooks runs only the check and the load', async (t) => {
  const r = fakeRunner()
  await linuxWanApplier({ run: r.run, log: recordingLog().log }).loadRules('iptables', '', [])
  t.same(r.lines(), ['iptables-restore -w 5 --test --noflush FILE', 'iptables-restore -w 5 --noflush FILE'])
  checkFile(t, r.seen, '', 'rules.iptables')
})

t.test('a failing check rejects with checkFailed, never loads, and leaves no file', async (t) => {
  const r = fakeRunner([['iptables-restore -w 5 --test', exit(2, 'iptables-restore: line 3 failed\n')]])
  const p = linuxWanApplier({ run: r.run, log: recordingLog().log })
  const err = await p.loadRules('iptables', RULES, iptablesHooks()).then(
    () => null,
    (e: unknown) => e,
  )
  t.type(err, WanApplyError)
  const e = err as WanApplyError
  t.equal(e.code, 'checkFailed')
  const file = r.seen[0]!.file!.path
  t.equal(e.message, `iptables-restore -w 5 --test --noflush ${file}: iptables-restore: line 3 failed`, 'the command and the tool\'s message, trimmed')
  t.same(r.lines(), ['iptables-restore -w 5 --test --noflush FILE'], 'no load, no hooks')
  checkFile(t, r.seen, RULES, 'rules.iptables')
})

t.test('a failing load rejects with loadFailed and touches no jump', async (t) => {
  const r = fakeRunner([['iptables-restore -w 5 --noflush', exit(1, '', 'iptables-restore: unable to initialize table')]])
  const p = linuxWanApplier({ run: r.run, log: recordingLog().log })
  await t.rejects(
    p.loadRules('iptables', RULES, iptablesHooks()),
    { code: 'loadFailed', message: /^iptables-restore -w 5 --noflush \S+: iptables-restore: unable to initialize table$/ },
    'stdout when stderr is empty',
  )
  t.same(r.lines(), ['iptables-restore -w 5 --test --noflush FILE', 'iptables-restore -w 5 --noflush FILE'])
  checkFile(t, r.seen, RULES, 'rules.iptables')
})

t.test('a jump that cannot be inserted rejects with hookFailed; a silent failure says its exit code', async (t) => {
  const hooks: WanHook[] = [{ table: 'mangle', chain: 'PREROUTING', rule: ['-j', 'CARPD_WAN'] }]
  const r = fakeRunner([
    ['iptables -w 5 -t mangle -C', exit(1)],
    ['iptables -w 5 -t mangle -I', exit(4, '  \n')],
  ])
  const { lines, log } = recordingLog()
  const p = linuxWanApplier({ run: r.run, log })
  await t.rejects(p.loadRules('iptables', RULES, hooks), new WanApplyError('hookFailed', 'iptables -w 5 -t mangle -I PREROUTING 1 -j CARPD_WAN: exit 4'))
  t.same(r.lines().slice(2), ['iptables -w 5 -t mangle -C PREROUTING -j CARPD_WAN', 'iptables -w 5 -t mangle -I PREROUTING 1 -j CARPD_WAN'])
  t.same(lines, [], 'a jump not inserted is not logged as hooked')
  t.notOk(existsSync(dirname(r.seen[0]!.file!.path)), 'the file is removed after a failure too')
})

t.test('a jump check that fails otherwise than "no such rule" rejects with hookFailed and inserts nothing', async (t) => {
  const cases: [CommandResult, string, string][] = [
    [
      exit(4, 'Another app is currently holding the xtables lock. Stopped waiting after 5s.\n'),
      'iptables -t mangle -C POSTROUTING: Another app is currently holding the xtables lock. Stopped waiting after 5s.',
      'the lock still busy after 5 s: exit 4',
    ],
    [exit(2, '', 'iptables v1.8.7 (legacy): Couldn\'t load target `CARPD_WAN_OUT\''), 'iptables -t mangle -C POSTROUTING: iptables v1.8.7 (legacy): Couldn\'t load target `CARPD_WAN_OUT\'', 'stdout when stderr is empty'],
    [exit(-1), 'iptables -t mangle -C POSTROUTING: exit -1', 'could not start, or timed out: its exit code'],
  ]
  for (const [result, message, what] of cases) {
    const r = fakeRunner([['iptables -w 5 -t mangle -C POSTROUTING', result]])
    const { lines, log } = recordingLog()
    const p = linuxWanApplier({ run: r.run, log })
    await t.rejects(p.loadRules('iptables', RULES, iptablesHooks()), new WanApplyError('hookFailed', message), what)
    t.same(
      r.lines(),
      [
        'iptables-restore -w 5 --test --noflush FILE',
        'iptables-restore -w 5 --noflush FILE',
        'iptables -w 5 -t mangle -C PREROUTING -j CARPD_WAN',
        'iptables -w 5 -t mangle -C POSTROUTING -j CARPD_WAN_OUT',
      ],
      `${what}: no -I, and the hooks after it are not checked`,
    )
    t.same(lines, [], what)
    t.notOk(existsSync(dirname(r.seen[0]!.file!.path)), `${what}: the file is removed`)
  }
})

t.test('nft: check with -c, then load the table in one transaction; no jumps to manage', async (t) => {
  const text = 'table inet carpd_wan {\n}\n'
  const r = fakeRunner()
  await linuxWanApplier({ run: r.run, log: recordingLog().log }).loadRules('nft', text, iptablesHooks())
  t.same(r.lines(), ['nft -c -f FILE', 'nft -f FILE'], 'hooks are ignored for nft')
  t.ok(r.seen.every((s) => s.timeoutMs === WAN_COMMAND_TIMEOUT_MS))
  checkFile(t, r.seen, text, 'rules.nft')
})

t.test('nft: a failing check rejects with checkFailed and does not load', async (t) => {
  const r = fakeRunner([['nft -c', exit(1, 'Error: syntax error, unexpected junk')]])
  const p = linuxWanApplier({ run: r.run, log: recordingLog().log })
  await t.rejects(p.loadRules('nft', 'junk\n', []), { code: 'checkFailed', message: /^nft -c -f \S+rules\.nft: Error: syntax error, unexpected junk$/ })
  t.same(r.lines(), ['nft -c -f FILE'])
  checkFile(t, r.seen, 'junk\n', 'rules.nft')
})

t.test('nft: a failing load rejects with loadFailed', async (t) => {
  const r = fakeRunner([['nft -f', exit(1, 'Error: Could not process rule: Operation not permitted')]])
  const p = linuxWanApplier({ run: r.run, log: recordingLog().log })
  await t.rejects(p.loadRules('nft', 'table inet carpd_wan {}\n', []), { code: 'loadFailed', message: /Operation not permitted$/ })
  t.same(r.lines(), ['nft -c -f FILE', 'nft -f FILE'])
})

t.test('routes: every del runs and may fail, then every add in order', async (t) => {
  const r = fakeRunner([['ip rule del', exit(2, 'RTNETLINK answers: No such file or directory')]])
  const cmds = {
    del: [
      ['ip', 'rule', 'del', 'pref', '9999'],
      ['ip', 'rule', 'del', 'pref', '10001'],
    ],
    add: [
      ['ip', 'route', 'replace', 'unreachable', 'default', 'metric', '4294967295', 'table', '101'],
      ['ip', 'route', 'replace', 'default', 'via', '198.51.100.1', 'dev', 'wan0', 'onlink', 'table', '101'],
      ['ip', 'rule', 'add', 'pref', '10001', 'fwmark', '0x100/0xff00', 'table', '101'],
    ],
  }
  await linuxWanApplier({ run: r.run, log: recordingLog().log }).routes(cmds)
  t.same(r.lines(), [...cmds.del, ...cmds.add].map((a) => a.join(' ')))
  t.ok(r.seen.every((s) => s.timeoutMs === WAN_COMMAND_TIMEOUT_MS))
})

t.test('routes: a failing add does not stop the others; one routeFailed names every failure, after all were tried', async (t) => {
  const r = fakeRunner([
    ['ip route replace default via 10.9.9.9', exit(2, 'Error: Nexthop has invalid gateway.\n')],
    ['ip rule add pref 10102', exit(2)],
  ])
  const cmds = {
    del: [['ip', 'rule', 'del', 'pref', '10001']],
    add: [
      ['ip', 'route', 'replace', 'default', 'via', '10.9.9.9', 'dev', 'wan0', 'onlink', 'table', '101'],
      ['ip', 'rule', 'add', 'pref', '10001', 'fwmark', '0x100/0xff00', 'table', '101'],
      ['ip', 'rule', 'add', 'pref', '10102', 'from', '198.51.100.2', 'table', '102'],
      ['ip', 'rule', 'add', 'pref', '10002', 'fwmark', '0x200/0xff00', 'table', '102'],
    ],
  }
  const p = linuxWanApplier({ run: r.run, log: recordingLog().log })
  const err = await p.routes(cmds).then(
    () => null,
    (e: unknown) => e,
  )
  t.type(err, WanApplyError)
  t.match(err, {
    code: 'routeFailed',
    message: 'ip route replace default via 10.9.9.9 dev wan0 onlink table 101: Error: Nexthop has invalid gateway.; ip rule add pref 10102 from 198.51.100.2 table 102: exit 2',
  })
  t.same(r.lines(), [...cmds.del, ...cmds.add].map((a) => a.join(' ')), 'every add was tried, in order')
  t.same((err as WanApplyError).failed, [cmds.add[0], cmds.add[2]], 'the failed adds, for the runtime to try again')
})

t.test('routes: one failing add alone is the whole message', async (t) => {
  const r = fakeRunner([['ip rule add', exit(2, 'RTNETLINK answers: Operation not permitted')]])
  const p = linuxWanApplier({ run: r.run, log: recordingLog().log })
  await t.rejects(p.routes({ del: [], add: [['ip', 'rule', 'add', 'pref', '9999', 'table', 'main', 'suppress_prefixlength', '0']] }), {
    code: 'routeFailed',
    message: 'ip rule add pref 9999 table main suppress_prefixlength 0: RTNETLINK answers: Operation not permitted',
  })
})

t.test('flushConnections removes only the WAN mark and counts what conntrack deleted', async (t) => {
  const cases: [number, CommandResult, number, string][] = [
    [2, exit(0, 'conntrack v1.4.7 (conntrack-tools): 12 flow entries have been deleted.\n'), 12, 'many, on stderr'],
    [2, exit(0, 'conntrack v1.4.7 (conntrack-tools): 1 flow entry has been deleted.\n'), 1, 'one'],
    [2, exit(1, 'conntrack v1.4.7 (conntrack-tools): 0 flow entries have been deleted.\n'), 0, 'none: exit 1'],
    [2, exit(0, '', '3 flow entries have been deleted.'), 3, 'on stdout'],
    [2, exit(0), 0, 'exit 0, no count'],
  ]
  for (const [wan, result, want, what] of cases) {
    const r = fakeRunner([['conntrack', result]])
    t.equal(await linuxWanApplier({ run: r.run, log: recordingLog().log }).flushConnections(wan), want, what)
    t.same(r.lines(), ['conntrack -D --mark 0x200/0xff00'], what)
    t.equal(r.seen[0]!.timeoutMs, WAN_COMMAND_TIMEOUT_MS)
  }
  const r = fakeRunner()
  await linuxWanApplier({ run: r.run, log: recordingLog().log }).flushConnections(17)
  t.same(r.lines(), ['conntrack -D --mark 0x1100/0xff00'], 'WAN 17: 17 << 8')
})

t.test('flushConnections rejects with flushFailed when conntrack fails otherwise, and counts nothing', async (t) => {
  const cases: [CommandResult, string, string][] = [
    [exit(-1, 'ENOENT: spawn conntrack ENOENT'), 'conntrack -D --mark 0x200/0xff00: ENOENT: spawn conntrack ENOENT', 'not installed: could not start'],
    [{ code: -1, stdout: '', stderr: '', timedOut: true }, 'conntrack -D --mark 0x200/0xff00: exit -1', 'timed out, silent: its exit code'],
    [exit(2, "conntrack v1.4.7 (conntrack-tools): unknown option `--mark'\n"), "conntrack -D --mark 0x200/0xff00: conntrack v1.4.7 (conntrack-tools): unknown option `--mark'", 'a usage error: exit 2'],
    [exit(3, '', 'something on stdout'), 'conntrack -D --mark 0x200/0xff00: something on stdout', 'stdout when stderr is empty'],
  ]
  for (const [result, message, what] of cases) {
    const r = fakeRunner([['conntrack', result]])
    const { lines, log } = recordingLog()
    await t.rejects(linuxWanApplier({ run: r.run, log }).flushConnections(2), new WanApplyError('flushFailed', message), what)
    t.same(r.lines(), ['conntrack -D --mark 0x200/0xff00'], `${what}: run once`)
    t.same(lines, [], `${what}: nothing logged by the applier`)
  }
  const r = fakeRunner([['conntrack', exit(2, 'conntrack v1.4.7 (conntrack-tools): 4 flow entries have been deleted.')]])
  t.equal(await linuxWanApplier({ run: r.run, log: recordingLog().log }).flushConnections(2), 4, 'a count is believed whatever the exit code')
})

t.test('WanApplyError carries a stable code', async (t) => {
  const e = new WanApplyError('routeFailed', 'x')
  t.type(e, Error)
  t.equal(e.code, 'routeFailed')
  t.equal(e.message, 'x')
})

t.test('dry-run says what it would run and runs nothing', async (t) => {
  const { lines, log } = recordingLog()
  const p = dryRunWanApplier(log)
  await p.loadRules('iptables', 'a\nb\nc', iptablesHooks())
  await p.loadRules('nft', 'table inet carpd_wan {}\n', [])
  await p.routes({ del: [['ip', 'rule', 'del', 'pref', '10001']], add: [['ip', 'rule', 'add', 'pref', '10001', 'table', '101']] })
  t.equal(await p.flushConnections(2), 0)
  t.same(lines, [
    'dry-run iptables-restore --noflush (3 lines)',
    'dry-run nft -f (2 lines)',
    'dry-run ip rule del pref 10001',
    'dry-run ip rule add pref 10001 table 101',
    'dry-run conntrack -D --mark 0x200/0xff00',
  ])
})

t.test('the rules directory is made under the temporary directory', async (t) => {
  const r = fakeRunner()
  await linuxWanApplier({ run: r.run, log: recordingLog().log }).loadRules('nft', 'x\n', [])
  t.equal(dirname(dirname(r.seen[0]!.file!.path)), join(tmpdir()))
})

// ---------------------------------------------------------------------------
// reversePathWarning

/** A /proc/sys reader from a table; a path missing from it cannot be read. */
function procReader(files: Record<string, string>) {
  const asked: string[] = []
  const read = (path: string): string => {
    asked.push(path)
    const text = files[path]
    if (text === undefined) throw Object.assign(new Error(`ENOENT: no such file or directory, open '${path}'`), { code: 'ENOENT' })
    return text
  }
  return { read, asked }
}

const RP = (iface: string) => `/proc/sys/net/ipv4/conf/${iface}/rp_filter`
const SVM = (iface: string) => `/proc/sys/net/ipv4/conf/${iface}/src_valid_mark`
const WARNING_WAN0 =
  'wan0: strict rp_filter drops replies of connections split to this WAN; run: sysctl -w net.ipv4.conf.wan0.src_valid_mark=1 (or rp_filter=2)'

t.test('reversePathWarning: strict rp_filter without src_valid_mark warns, with the command that fixes it', async (t) => {
  const cases: [string, string, string, string][] = [
    // [wan0 rp_filter, all rp_filter, wan0 src_valid_mark, what]
    ['1\n', '0\n', '0\n', 'strict on the interface'],
    ['0\n', '1\n', '0\n', 'strict through all: the kernel takes the max'],
    ['1\n', '1\n', '0\n', 'strict on both'],
  ]
  for (const [rp, all, svm, what] of cases) {
    const { read, asked } = procReader({ [RP('wan0')]: rp, [RP('all')]: all, [SVM('wan0')]: svm, [SVM('all')]: '0\n' })
    t.equal(reversePathWarning('wan0', read), WARNING_WAN0, what)
    t.same(asked, [RP('wan0'), RP('all'), SVM('wan0'), SVM('all')], `${what}: the interface's and all's rp_filter and src_valid_mark`)
  }
  const { read } = procReader({ [RP('lte0')]: '1', [RP('all')]: '0', [SVM('lte0')]: '0', [SVM('all')]: '0' })
  t.equal(
    reversePathWarning('lte0', read),
    'lte0: strict rp_filter drops replies of connections split to this WAN; run: sysctl -w net.ipv4.conf.lte0.src_valid_mark=1 (or rp_filter=2)',
    'the interface named in the warning and in the command',
  )
})

t.test('reversePathWarning: no warning when rp_filter is off or loose, or the mark counts', async (t) => {
  const cases: [string, string, string, string][] = [
    ['0\n', '0\n', '0\n', 'off everywhere'],
    ['2\n', '0\n', '0\n', 'loose on the interface'],
    ['0\n', '2\n', '0\n', 'loose through all'],
    ['1\n', '2\n', '0\n', 'loose wins: max(1, 2) is 2'],
    ['2\n', '1\n', '0\n', 'loose on the interface over strict all'],
    ['1\n', '0\n', '1\n', 'strict, but src_valid_mark is set'],
    ['1\n', '1\n', '1\n', 'strict on both, src_valid_mark set'],
  ]
  for (const [rp, all, svm, what] of cases) {
    const { read } = procReader({ [RP('wan0')]: rp, [RP('all')]: all, [SVM('wan0')]: svm, [SVM('all')]: '0\n' })
    t.equal(reversePathWarning('wan0', read), null, what)
  }
  // The kernel ORs the interface's src_valid_mark with all's.
  const { read } = procReader({ [RP('wan0')]: '1\n', [RP('all')]: '0\n', [SVM('wan0')]: '0\n', [SVM('all')]: '1\n' })
  t.equal(reversePathWarning('wan0', read), null, 'src_valid_mark set through all')
})

t.test('reversePathWarning: a file that cannot be read gives no warning', async (t) => {
  const full = { [RP('wan0')]: '1\n', [RP('all')]: '1\n', [SVM('wan0')]: '0\n', [SVM('all')]: '0\n' }
  for (const missing of [RP('wan0'), RP('all'), SVM('wan0'), SVM('all')]) {
    const files: Record<string, string> = { ...full }
    delete files[missing]
    const { read } = procReader(files)
    t.equal(reversePathWarning('wan0', read), null, `${missing} unreadable`)
  }
  t.equal(
    reversePathWarning('nosuch0', () => {
      throw new Error('EACCES')
    }),
    null,
    'nothing readable (no /proc, an interface that does not exist)',
  )
})

t.test('drift: each missing jump, nft table, ip rule and default route is named; what is there says nothing', async (t) => {
  const hooks = [{ table: 'mangle', chain: 'PREROUTING', rule: ['-j', 'CARPD_WAN'] }, { table: 'nat', chain: 'POSTROUTING', rule: ['-j', 'CARPD_SNAT'] }]
  const routes = [
    ['ip', 'rule', 'add', 'pref', '9999', 'table', 'main', 'suppress_prefixlength', '0'],
    ['ip', 'route', 'replace', 'default', 'via', '203.0.113.1', 'dev', 'wan1', 'onlink', 'table', '101'],
    ['ip', 'rule', 'add', 'pref', '10001', 'fwmark', '0x100/0xff00', 'table', '101'],
    ['ip', 'route', 'replace', 'default', 'via', '203.0.113.17', 'dev', 'wan2', 'onlink', 'table', '102'],
  ]
  const ruleShow = ok('0:\tfrom all lookup local\n9999:\tfrom all lookup main suppress_prefixlength 0\n32766:\tfrom all lookup main\n')
  const r = fakeRunner([
    ['iptables -w 5 -t nat -C', { ...ok(), code: 1, stderr: 'iptables: Bad rule' }],
    ['ip rule show', ruleShow],
    ['ip route show table 101', ok('default via 203.0.113.1 dev wan1 onlink\n')],
    ['ip route show table 102', ok('unreachable default metric 4294967295\n')],
  ])
  const a = linuxWanApplier({ run: r.run, log: recordingLog().log })
  t.same(await a.drift!('iptables', hooks, routes), ['jump in nat POSTROUTING', 'ip rule 10001', 'default route of table 102'])
  const gone = fakeRunner([['nft list table ip carpd_wan', { ...ok(), code: 1, stderr: 'No such file or directory' }]])
  t.same(await linuxWanApplier({ run: gone.run, log: recordingLog().log }).drift!('nft', [], []), ['nft table ip carpd_wan'])
  t.same(gone.lines(), ['nft list table ip carpd_wan'], 'nothing else is asked when no route was loaded')
  const fine = fakeRunner([['ip rule show', { ...ruleShow, stdout: `${ruleShow.stdout}10001:\tfrom all fwmark 0x100/0xff00 lookup 101\n` }], ['ip route show', ok('default via 203.0.113.1 dev wan1 onlink\ndefault via 203.0.113.17 dev wan2 onlink\n')]])
  t.same(await linuxWanApplier({ run: fine.run, log: recordingLog().log }).drift!('iptables', hooks, routes), [])
  t.same(await dryRunWanApplier(recordingLog().log).drift!('iptables', hooks, routes), [], 'dry run: nothing is ever missing')
})
