// Every decoder and parser of input carpd did not write itself, as a fuzz target:
// seeds (valid inputs made by the encoders), a check that runs one input and says what
// is wrong with the result (null: nothing), and for authenticated formats a re-signer,
// so mutations reach the parser behind the HMAC or checksum.
import { createHmac } from 'node:crypto'
import { encodeCarp, decodeCarp } from '../../src/wire/carp.js'
import { internetChecksum } from '../../src/wire/checksum.js'
import { decodeResponse, encodeQuery } from '../../src/wire/dns.js'
import { type Heartbeat, LineReader, crc32, decodeLine, encodeHeartbeat, encodeBlob } from '../../src/wire/heartbeat.js'
import { SYNC_HMAC_LEN, type SyncFrame, decodeSyncFrame, encodeFlowRecord, encodeKeyRecord, encodeSyncFrame } from '../../src/wire/sync.js'
import { VOTE_HMAC_LEN, type VoteMessage, decodeVote, encodeVote } from '../../src/wire/vote.js'
import { parseConntrackLine } from '../../src/sync/conntrack-text.js'
import { parseControlRequest } from '../../src/control/protocol.js'
import { lex } from '../../src/config/lexer.js'
import { loadConfig } from '../../src/config/load.js'
import { BOARDS } from '../../src/config/boards.gen.js'

export interface Target {
  name: string
  seeds: Buffer[]
  /** Decodes `input`: whether it was accepted, and what is wrong (null: nothing; a thrown error counts too). */
  check(input: Buffer): Outcome
  /** Makes the authentication of a mutated input right again, where the format has one. */
  resign?(input: Buffer): Buffer
}

export interface Outcome {
  decoded: boolean
  problem: string | null
}

const accepted = (problem: string | null = null): Outcome => ({ decoded: true, problem })
const rejected = (problem: string | null): Outcome => ({ decoded: false, problem })

const KEY = 'fuzz-key'
/** A rejection names its reason: a short camelCase word, never a sentence or an empty string. */
const NAMED = /^[a-z][A-Za-z]{1,30}$/

function reason(error: unknown): string | null {
  return typeof error === 'string' && NAMED.test(error) ? null : `rejection without a named reason: ${JSON.stringify(error)}`
}

const text = (x: unknown): string => JSON.stringify(x, (_k, v) => (typeof v === 'bigint' ? `${v}n` : v))
const same = (a: unknown, b: unknown): boolean => text(a) === text(b)

/** Sync frames and votes end in an HMAC-SHA256 of everything before it. */
function trailingHmac(input: Buffer, len: number): Buffer {
  if (input.length < len) return input
  const b = Buffer.from(input)
  const end = b.length - len
  createHmac('sha256', KEY).update(b.subarray(0, end)).digest().copy(b, end)
  return b
}

const CONNTRACK_LINES = [
  'ipv4     2 tcp      6 299 ESTABLISHED src=192.0.2.10 dst=203.0.113.5 sport=40000 dport=80 src=203.0.113.5 dst=198.51.100.1 sport=80 dport=61000 [ASSURED] mark=5 use=1',
  '    [NEW] udp      17 30 src=192.0.2.10 dst=198.18.0.53 sport=5353 dport=53 [UNREPLIED] src=198.18.0.53 dst=192.0.2.10 sport=53 dport=5353',
  ' [UPDATE] tcp      6 120 FIN_WAIT src=10.0.0.7 dst=198.51.100.1 sport=5555 dport=443 src=198.51.100.1 dst=10.0.0.7 sport=443 dport=6000 [ASSURED] mark=0 zone=3',
  '[DESTROY] icmp     1 src=192.0.2.10 dst=198.51.100.9 type=8 code=0 id=77 src=198.51.100.9 dst=192.0.2.10 type=0 code=0 id=77',
  'ipv6     10 tcp      6 99 ESTABLISHED src=2001:db8:1::10 dst=2001:db8:2::80 sport=40000 dport=443 src=2001:db8:2::80 dst=2001:db8::9 sport=443 dport=2000 [ASSURED] mark=512 use=1',
  '    [NEW] ipv6     10 udp      17 30 src=2001:db8:1::10 dst=2001:db8::53 sport=5353 dport=53 [UNREPLIED] src=2001:db8::53 dst=2001:db8:1::10 sport=53 dport=5353',
]

function sampleFlows() {
  return CONNTRACK_LINES.map(parseConntrackLine).flatMap((p) => (p.ok ? [p.flow] : []))
}

const carp: Target = {
  name: 'carp advert',
  seeds: [
    encodeCarp({ vhid: 1, advskew: 0, demote: 0, advbase: 1, counter: 0x1122334455667788n, hmac: Buffer.alloc(20, 7) }),
    encodeCarp({ vhid: 255, advskew: 254, demote: 255, advbase: 0, counter: 0xffffffffffffffffn, hmac: Buffer.alloc(20, 0xff) }),
  ],
  check(input) {
    const d = decodeCarp(input)
    if (!d.ok) return rejected(reason(d.error))
    return accepted(same(decodeCarp(encodeCarp(d.advert)), d) ? null : 'decode(encode(x)) differs')
  },
  resign(input) {
    if (input.length < 8) return input
    const b = Buffer.from(input)
    b.writeUInt16BE(0, 6)
    b.writeUInt16BE(internetChecksum(b), 6)
    return b
  },
}

function syncSeeds(): Buffer[] {
  // One family per section: the IPv6 ones have sections of their own.
  const flows = sampleFlows().filter((f) => f.family === 4)
  const flows6 = sampleFlows().filter((f) => f.family === 6)
  const frames: SyncFrame[] = [
    { ackOnly: false, sender: 0x0a0b0c0d, epoch: 7, seq: 9, ackEpoch: 3, ack: 2, sections: [
      { type: 'insert', records: flows.map(encodeFlowRecord) },
      { type: 'update', records: flows.slice(0, 1).map(encodeFlowRecord) },
      { type: 'delete', keys: flows.map(encodeKeyRecord) },
      { type: 'update', records: flows6.map(encodeFlowRecord) },
      { type: 'delete', keys: flows6.map(encodeKeyRecord) },
    ] },
    { ackOnly: false, sender: 1, epoch: 0xffffffff, seq: 1, ackEpoch: 0, ack: 0, sections: [
      { type: 'clear' }, { type: 'bulkRequest', ids: [1, 2] }, { type: 'bulkStart', items: [{ id: 1, total: 100 }] }, { type: 'bulkEnd', items: [{ id: 1, count: 100 }] },
    ] },
    { ackOnly: true, sender: 2, epoch: 5, seq: 4, ackEpoch: 6, ack: 7, sections: [{ type: 'ack', ranges: [{ from: 9, to: 12 }] }] },
  ]
  return frames.map((f) => encodeSyncFrame(f, KEY))
}

const sync: Target = {
  name: 'sync frame',
  seeds: syncSeeds(),
  check(input) {
    const d = decodeSyncFrame(input, KEY)
    if (!d.ok) return rejected(reason(d.error))
    const again = decodeSyncFrame(encodeSyncFrame(d.frame, KEY), KEY)
    return accepted(same(again, d) ? null : 'decode(encode(x)) differs')
  },
  resign: (input) => trailingHmac(input, SYNC_HMAC_LEN),
}

const VOTES: VoteMessage[] = [
  { kind: 'request', sender: 0x01020304, epoch: 9, seq: 1, vhid: 1, nonce: Buffer.alloc(8, 1), leaseMs: 3000, demote: 0, advbase: 1, advskew: 100, flags: 1 },
  { kind: 'grant', sender: 0x05060708, epoch: 2, seq: 77, vhid: 255, nonce: Buffer.alloc(8, 2), holder: 0x01020304, leaseMs: 1000 },
  { kind: 'deny', sender: 0x05060708, epoch: 2, seq: 78, vhid: 3, nonce: Buffer.alloc(8, 3), holder: 0, leaseMs: 0 },
  { kind: 'heartbeat', sender: 0x0a0a0a0a, epoch: 1, seq: 5, text: 'HB fw-a e=00000001 s=5 d=0 v=1:M' },
] as VoteMessage[]

const vote: Target = {
  name: 'vote',
  seeds: VOTES.map((m) => encodeVote(m, KEY)),
  check(input) {
    const d = decodeVote(input, KEY)
    if (!d.ok) return rejected(reason(d.error))
    const again = decodeVote(encodeVote(d.msg, KEY), KEY)
    return accepted(same(again, d) ? null : 'decode(encode(x)) differs')
  },
  resign: (input) => trailingHmac(input, VOTE_HMAC_LEN),
}

const HEARTBEATS: Heartbeat[] = [
  { node: 'fw-a', epoch: 0x1a2b3c4d, seq: 42, demote: 0, vhids: [{ vhid: 1, state: 'M' }, { vhid: 2, state: 'B' }] },
  { node: 'fw-b', epoch: 0xbeef, seq: 7, demote: 0, vhids: [{ vhid: 1, state: 'M', boot: true }, { vhid: 2, state: 'I' }] },
  { node: 'fw-b', epoch: 0, seq: 0xffffffff, demote: 255, vhids: [], wans: [{ wan: 1, state: 'U' }, { wan: 2, state: 'D' }] },
] as Heartbeat[]

const heartbeat: Target = {
  name: 'serial heartbeat line',
  seeds: [...HEARTBEATS.map((hb) => Buffer.from(encodeHeartbeat(hb), 'latin1')), Buffer.from(encodeBlob(Buffer.from('00ff10', 'hex')), 'latin1')],
  check(input) {
    const text = input.toString('latin1')
    const d = decodeLine(text)
    // The reader too: any bytes, in any split, never more than its line limit buffered.
    const reader = new LineReader()
    reader.push(input.subarray(0, input.length >> 1))
    reader.push(input.subarray(input.length >> 1))
    if (!d.ok) return rejected(reason(d.error))
    if (d.frame.kind !== 'heartbeat') return accepted()
    const again = decodeLine(encodeHeartbeat(d.frame.hb).replace(/\r\n$/, ''))
    return accepted(same(again, d) ? null : 'decode(encode(x)) differs')
  },
  resign(input) {
    // The line without its end, its trailer " *CRC32" computed again over the body.
    const line = input.toString('latin1').replace(/\r?\n$/, '')
    const body = line.replace(/ \*[0-9A-F]{8}$/, '')
    return Buffer.from(`${body} *${crc32(body).toString(16).toUpperCase().padStart(8, '0')}`, 'latin1')
  },
}

function dnsReply(query: Buffer): Buffer {
  const reply = Buffer.concat([query, Buffer.from('c00c000200010000012c0002c00c', 'hex')])
  reply[2] = 0x81
  reply[3] = 0x80
  reply.writeUInt16BE(1, 6)
  return reply
}

const dns: Target = {
  name: 'dns reply',
  seeds: [dnsReply(encodeQuery(0x1234)), dnsReply(encodeQuery(7, 'example.net')), encodeQuery(1)],
  check(input) {
    const d = decodeResponse(input)
    return d.ok ? accepted() : rejected(reason(d.error))
  },
}

const conntrack: Target = {
  name: 'conntrack line',
  seeds: CONNTRACK_LINES.map((l) => Buffer.from(l)),
  check(input) {
    const p = parseConntrackLine(input.toString('latin1'))
    return p.ok ? accepted() : rejected(reason(p.reason))
  },
}

const control: Target = {
  name: 'control request',
  seeds: ['{"cmd":"status"}', '{"cmd":"maint","on":true,"nonce":"00","mac":"aa"}', '{"cmd":"demote","value":7}', '{"cmd":"resync"}', '{"ok":false,"error":"x"}'].map((s) => Buffer.from(s)),
  check(input) {
    const r = parseControlRequest(input)
    if ('error' in r) return rejected(typeof r.error === 'string' && r.error.length > 0 && r.error.length <= 200 ? null : `an error a user cannot read: ${JSON.stringify(r.error)}`)
    return accepted(typeof r.cmd === 'string' ? null : 'a request without a command')
  },
}

const CONFIG = [
  'node = fw-a\nboard = alix2d3\ncarp.1.interface = lan0\ncarp.1.vip = 192.0.2.1/24\ncarp.1.pass = secret\ncarp.1.advskew = 100\n',
  'node = fw-b\ncarp.2.interface = lan1\ncarp.2.vip = 198.51.100.1/24, 198.51.100.2/24\ncarp.2.passfile = /cf/p\ncarp.2.peer = 198.51.100.3:8240\nsync.interface = sync0\nsync.peer = 203.0.113.2\nsync.key = k\nwitness = 203.0.113.50\nwitness.key = w\n',
  'node = r\nwan.1.interface = wan0\nwan.1.gateway = 203.0.113.1\nwan.1.weight = 3\nwan.2.interface = wan1\nwan.2.gateway = 198.51.100.1\nwan.2.tier = 2\n# comment\n',
]

const config: Target = {
  name: 'config file',
  seeds: CONFIG.map((c) => Buffer.from(c)),
  check(input) {
    const text = input.toString('utf8')
    lex(text, 'fuzz.conf')
    const r = loadConfig(text, 'fuzz.conf', { readFile: () => 'secret-from-file', boards: BOARDS })
    if (r.ok) return accepted()
    if (r.errors.length === 0) return rejected('rejected without an error')
    return rejected(r.errors.every((e) => typeof e.message === 'string' && e.message.length > 0) ? null : 'an error without a message')
  },
}

export const TARGETS: readonly Target[] = [carp, sync, vote, heartbeat, dns, conntrack, control, config]
