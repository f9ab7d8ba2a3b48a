// Console lines in both formats, the tee, RFC 5424 messages, and the syslog sender on
// loopback: one datagram per event, long ones cut, failures counted and said once.
import t, { type Test } from 'tap'
import { createSocket } from 'node:dgram'
import { once } from 'node:events'
import { lineLogger, syslogMessage, teeLogger } from '../../src/io/log.js'
import { openSyslog } from '../../src/io/syslog.js'
import { commandLogger } from '../../src/cli/logger.js'
import { makeConfig } from '../helpers/agents.js'

const WHEN = new Date('2026-12-07T17:07:43.026Z')

/** A syslog server on loopback: its port, what it got, and a wait (at most 0.5 s) for n datagrams. */
async function syslogServer(t: Test): Promise<{ port: number; got: string[]; waitFor(n: number): Promise<void> }> {
  const server = createSocket('udp4')
  server.bind(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => server.close())
  const got: string[] = []
  server.on('message', (m) => got.push(m.toString()))
  return {
    port: server.address().port,
    got,
    async waitFor(n) {
      for (let i = 0; i < 50 && got.length < n; i++) await new Promise((r) => setTimeout(r, 10))
    },
  }
}

t.test('full lines as SPEC words them; short ones fit an 80-column console', async (t) => {
  const lines: string[] = []
  lineLogger('fw-a', (l) => lines.push(l), () => WHEN).event('carp', 'vhid=1 BACKUP->MASTER reason="no master heard in 3.0s"')
  lineLogger('fw-a', (l) => lines.push(l), () => WHEN, 'short').event('carp', 'vhid=1 BACKUP->MASTER reason="no master heard in 3.0s"')
  t.same(lines, [
    '2026-12-07T17:07:43.026Z fw-a carp vhid=1 BACKUP->MASTER reason="no master heard in 3.0s"\n',
    '17:07:43 carp vhid=1 BACKUP->MASTER reason="no master heard in 3.0s"\n',
  ])
  t.ok(lines[1]!.length <= 80, `${lines[1]!.length} columns`)
})

t.test('tee: every event to each logger, in order', async (t) => {
  const seen: string[] = []
  const log = teeLogger({ event: (s, m) => seen.push(`a ${s} ${m}`) }, { event: (s, m) => seen.push(`b ${s} ${m}`) })
  log.event('wan', 'x')
  t.same(seen, ['a wan x', 'b wan x'])
})

t.test('RFC 5424: PRI from facility and severity, VERSION 1, fields without spaces, "-" for no structured data', async (t) => {
  t.equal(
    syslogMessage('daemon', 'fw-a', 346, WHEN, 'carp', 'vhid=1 BACKUP->MASTER reason="no master heard in 3.0s"'),
    '<29>1 2026-12-07T17:07:43.026Z fw-a carpd 346 carp - vhid=1 BACKUP->MASTER reason="no master heard in 3.0s"',
    'daemon (3) * 8 + notice (5): a change of role',
  )
  t.match(syslogMessage('local7', 'fw-a', 1, WHEN, 'wan', 'wan2 wan2 online->degraded reason="loss 10%"'), /^<189>1 /, 'local7 (23) * 8 + notice: a WAN state change')
  t.match(syslogMessage('local0', 'fw-a', 1, WHEN, 'sync', 'bulk done: 12 flows'), /^<134>1 /, 'local0 (16) * 8 + info (6)')
  t.match(syslogMessage('nonsense', 'fw-a', 1, WHEN, 'sync', 'x'), /^<30>1 /, 'an unknown facility is daemon')
  t.match(syslogMessage('daemon', 'fw a\u00e9', 1, WHEN, '', 'x'), / fw_a_ carpd 1 - - x$/, 'HOSTNAME printable, an empty MSGID is "-"')
  t.match(syslogMessage('daemon', 'fw-a', 1, WHEN, 'wan', 'ip rules not loaded: exit 2'), /^<28>1 /, 'a fault is warning (4), above the changes')
  t.match(syslogMessage('daemon', 'fw-a', 1, WHEN, 'quorum', 'peer path sync dead (silent for 1005 ms)'), /^<28>1 /)
  t.match(syslogMessage('daemon', 'fw-a', 1, WHEN, 'log', 'syslog to 192.0.2.9:514 failed (EPERM)'), /^<28>1 /)
})

t.test('the sender: one datagram per event on loopback; over 2048 bytes cut; a failure counted and said once', async (t) => {
  const { port, got, waitFor } = await syslogServer(t)
  const said: string[] = []
  const sender = openSyslog({ host: '127.0.0.1', port, facility: 'daemon', node: 'fw-a', wall: () => WHEN, console: { event: (s, m) => said.push(`${s} ${m}`) } })
  sender.event('carp', 'vhid=1 INIT->BACKUP reason="started"')
  sender.event('sync', 'x'.repeat(5000))
  sender.event('sync', '\u00e9'.repeat(2000))
  await waitFor(3)
  t.equal(got[0], `<29>1 2026-12-07T17:07:43.026Z fw-a carpd ${process.pid} carp - vhid=1 INIT->BACKUP reason="started"`)
  t.equal(Buffer.byteLength(got[1]!), 2048, 'cut to what every RFC 5426 receiver should take')
  t.ok(Buffer.byteLength(got[2]!) <= 2048 && !got[2]!.includes('\ufffd'), 'never inside a UTF-8 sequence')
  t.equal(sender.failed, 0)
  sender.close()
  sender.event('carp', 'a')
  sender.event('carp', 'b')
  t.equal(sender.failed, 2, 'a closed socket: both lost, both counted')
  t.equal(said.length, 1, 'said once')
  t.match(said[0], /^log syslog to 127\.0\.0\.1:\d+ failed \(.*\); carpd goes on, and says this once$/)
})

t.test('commandLogger: the console alone without log.syslog; both with it, port 514 by default', async (t) => {
  const lines: string[] = []
  const clock = { wall: () => WHEN } as Parameters<typeof commandLogger>[1]
  const plain = makeConfig('fw-a', [])
  commandLogger({ ...plain, log: { ...plain.log, format: 'short' } }, clock, (l) => lines.push(l)).event('carp', 'x')
  t.same(lines, ['17:07:43 carp x\n'])
  const { port, got, waitFor } = await syslogServer(t)
  const both = commandLogger({ ...plain, log: { format: 'full', syslog: { address: '127.0.0.1', port }, facility: 'local3' } }, clock, (l) => lines.push(l))
  both.event('wan', 'wan1 wan1 offline->online')
  await waitFor(1)
  t.equal(lines.at(-1), '2026-12-07T17:07:43.026Z fw-a wan wan1 wan1 offline->online\n')
  t.match(got[0], /^<157>1 .* fw-a carpd \d+ wan - wan1 wan1 offline->online$/, 'local3 (19) * 8 + notice')
})
