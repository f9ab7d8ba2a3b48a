import t from 'tap'
import { formatErrors, renderEffective, renderReference } from '../../src/config/render.js'
import type { EffectiveEntry } from '../../src/config/types.js'
import { errorsOf, load } from '../helpers/config-fixtures.js'

t.test('renderEffective: aligned key = value  # source, secrets masked', async (t) => {
  const text = [
    'board = tiny',
    'node = fw-a',
    'carp.1.interface = lan0',
    'carp.1.vip = 192.0.2.1/24,192.0.2.2/24',
    'carp.1.passfile = /cf/carp.pass',
    'carp.1.advskew = 100',
    'witness = 192.0.2.50:8241',
    'witness.key = w',
    'heartbeat.interval = 0.5s',
  ].join('\n')
  const result = load(text, {
    files: { '/cf/carp.pass': 'p\n' },
    boards: { tiny: '# a small board\nserial.device = /dev/ttyS1\n' },
  })
  t.ok(result.ok)
  if (!result.ok) return
  t.equal(
    renderEffective(result.effective),
    `node                   = fw-a                           # /cf/carpd.conf:2
board                  = tiny                           # /cf/carpd.conf:1
board.supported        = yes                            # default
platform               = linux                          # default
control.port           = 8239                           # default
log.format             = full                           # default
log.syslog.facility    = daemon                         # default
carp.port              = 8240                           # default
carp.preempt           = yes                            # default
carp.preempt.holddown  = 0s                             # default
carp.1.interface       = lan0                           # /cf/carpd.conf:3
carp.1.vip             = 192.0.2.1/24, 192.0.2.2/24     # /cf/carpd.conf:4
carp.1.advbase         = 1                              # default
carp.1.advskew         = 100                            # /cf/carpd.conf:6
carp.1.pass            = ******** (from /cf/carp.pass)  # /cf/carpd.conf:5
carp.1.passfile        = /cf/carp.pass                  # /cf/carpd.conf:5
carp.1.vmac            = yes                            # default
sync.port              = 8242                           # default
sync.bulk.timeout      = 30s                            # default
sync.backend           = conntrack                      # default
serial.device          = /dev/ttyS1                     # board tiny (boards/tiny.conf:2)
serial.baud            = 19200                          # default
heartbeat.interval     = 500ms                          # /cf/carpd.conf:9
heartbeat.timeout      = 1s                             # default
witness                = 192.0.2.50:8241                # /cf/carpd.conf:7
witness.key            = ********                       # /cf/carpd.conf:8
witness.lease          = 3s                             # default
witness.state          = /cf/witness.state              # default
wan.rules              = iptables                       # default
wan.probe.interval     = 250ms                          # default
wan.probe.timeout      = 1s                             # default
wan.probe.window       = 240                            # default
wan.probe.loss.down    = 5%                             # default
wan.probe.loss.up      = 1%                             # default
wan.probe.latency.down = 800ms                          # default
wan.probe.latency.up   = 400ms                          # default
wan.probe.down.rounds  = 6                              # default
wan.probe.up.rounds    = 8                              # default
wan.failback.hold      = 10s                            # default
`,
  )
})

t.test('renderEffective of nothing is nothing', async (t) => {
  t.equal(renderEffective([]), '')
})

t.test('renderEffective masks a secret whatever its source', async (t) => {
  const entries: EffectiveEntry[] = [
    { key: 'sync.key', value: 'abc', secret: true, source: { kind: 'default' } },
    { key: 'a', value: 'b', secret: false, source: { kind: 'board', board: 'x', line: 3 } },
  ]
  t.equal(renderEffective(entries), 'sync.key = ********  # default\na        = b         # board x (boards/x.conf:3)\n')
})

t.test('renderReference: a Markdown table with escaped pipes', async (t) => {
  const lines = renderReference().split('\n')
  t.equal(lines[0], '| Key | Type / allowed | Default | Description |')
  t.equal(lines[1], '| --- | --- | --- | --- |')
  t.equal(lines[2], "| `node` | name: a name of letters, digits, _ . - starting with a letter or digit | *required* | This board's name, unique in the pair; starts every console line. |")
  t.ok(lines.includes('| `platform` | enum: linux \\| freebsd \\| openbsd | `linux` | Which adapter changes the operating system (ip/conntrack/iptables or ifconfig/pfctl). |'))
  t.ok(lines.some((l) => l.startsWith('| `board` |') && l.includes('| (none) |')))
  t.ok(lines.some((l) => l.startsWith('| `carp.N.passfile` |') && l.includes('| — |')))
  t.ok(lines.some((l) => l.startsWith('| `sync.key` |') && l.endsWith('Secret: never printed. |')))
  t.equal(lines.at(-1), '', 'ends with a newline')
})

t.test('formatErrors: one message per line', async (t) => {
  const errors = errorsOf(load('node = fw-a\nplatfrom = linux\ncarp.1.advskew = x'))
  t.equal(
    formatErrors(errors),
    [
      '/cf/carpd.conf:2: platfrom: unknown key (did you mean platform?)',
      '/cf/carpd.conf:3: carp.1.advskew = x: not a whole number (allowed: 0..254 (1/256 s))',
      '/cf/carpd.conf:3: carp.1.interface: missing required key (allowed: an interface name: up to 15 letters, digits, _ . - starting with a letter or digit)',
      '/cf/carpd.conf:3: carp.1.vip: missing required key (allowed: IPv4/prefix (0..32) or IPv6/prefix (0..128), comma separated, e.g. 192.0.2.1/24, 2001:db8::1/64)',
      '/cf/carpd.conf:3: carp.1.pass: missing: set carp.1.pass or carp.1.passfile (allowed: any text)',
      '',
    ].join('\n'),
  )
  t.equal(formatErrors([]), '')
})

t.test('hardening: past 50 errors, one line says how many more', async (t) => {
  const lines = ['node = fw-a']
  for (let i = 0; i < 120; i++) lines.push(`nope${i} = 1`)
  const text = formatErrors(errorsOf(load(lines.join('\n'))))
  const out = text.trimEnd().split('\n')
  t.equal(out.length, 51)
  t.equal(out.at(-1), '... and 70 more errors', 'of 120 unknown keys')
})
