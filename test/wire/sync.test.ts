import t from 'tap'
import { createHmac, randomBytes } from 'node:crypto'
import { type Flow, FAMILY_IPV4, FAMILY_IPV6, PROTO_ICMP, PROTO_TCP, PROTO_UDP } from '../../src/wire/flow.js'
import {
  FLOW6_RECORD_LEN,
  FLOW_RECORD_LEN,
  KEY6_RECORD_LEN,
  KEY_RECORD_LEN,
  SECTION_HEADER_LEN,
  SECTION_RECORD_LEN,
  SYNC_HEADER_LEN,
  SYNC_HMAC_LEN,
  SYNC_MAX_FRAME,
  SyncEncodeError,
  type SyncFrame,
  type SyncSection,
  decodeFlowRecord,
  decodeKeyRecord,
  decodeSyncFrame,
  encodeFlowRecord,
  encodeKeyRecord,
  encodeSyncFrame,
  flowKeyRecord,
  recordBehind,
  recordKey,
  syncFrameLength,
} from '../../src/wire/sync.js'

const KEY = 'sync secret'

// Vectors computed independently with a short Python script (struct.pack of the
// documented layout, hashlib.sha256 for the sender ids, hmac.new(key, msg, sha256)),
// not with this codec.
const SENDER_A = 0xb251c07e // senderId('fw-a')
const SENDER_B = 0x68c59148 // senderId('fw-b')
const FLOW_A_HEX = '04060000c000020acb0071509c4001bbcb007150c633640101bbee4803030000000000100006977f'
const FLOW_B_HEX = '041100070a000005e00000fb14e914e9e00000fb0a00000514e914e900000000ffffffff0000001e'
const KEY_C_HEX = '04010000c00002630808080812340800'
const V1_HEX = // insert (flow A, flow B) + delete (key C)
  '010000a0b251c07e112233440000000755667788000000050100000204060000c000020acb0071509c4001bbcb007150c633640101bbee4803030000000000100006977f041100070a000005e00000fb14e914e9e00000fb0a00000514e914e900000000ffffffff0000001e0300000104010000c0000263080808081234080099f9c6466c3b6fdfb056c2ca2c94060cf02dca89fb371159b291d3a74ef98e3d'
const V2_HEX = // clear, bulkRequest, bulkStart, bulkEnd
  '0100006068c59148cafef00d000000010000000000000000040000000500000200000001deadbeef06000001deadbeef000186a0070000010000000100000000e4a701f398ad1be6b60745830d40786ee9f47e205ca0d6cb19bcd37dddb889f2'
const V3_HEX = // ack-only with selective-ack ranges
  '0101004cb251c07e1122334400000006cafef00d000000070800000200000009000000090000000c0000000f84c7c9fcc9d1ffcc75cdffad52944c004b511e5774f6680f92c3eb3f79ccdac8'
const V4_HEX = // ack-only keepalive, no sections
  '0101003868c59148cafef00d0000000011223344000000060d7b88a0a37c6674f0eee3a47f6843813f792c96e48891cfff1d0de0c6e21f8f'

/** TCP, source-NATed: the reply goes to 198.51.100.1:61000, not back to the client. */
const FLOW_A: Flow = {
  family: FAMILY_IPV4,
  proto: PROTO_TCP,
  orig: { src: '192.0.2.10', dst: '203.0.113.80', sport: 40000, dport: 443 },
  reply: { src: '203.0.113.80', dst: '198.51.100.1', sport: 443, dport: 61000 },
  tcpState: 3,
  timeoutS: 431999,
  mark: 0x10,
  zone: 0,
  seenReply: true,
  assured: true,
}
const FLOW_B: Flow = {
  family: FAMILY_IPV4,
  proto: PROTO_UDP,
  orig: { src: '10.0.0.5', dst: '224.0.0.251', sport: 5353, dport: 5353 },
  reply: { src: '224.0.0.251', dst: '10.0.0.5', sport: 5353, dport: 5353 },
  tcpState: 0,
  timeoutS: 30,
  mark: 0xffffffff,
  zone: 7,
  seenReply: false,
  assured: false,
}
/** ICMP echo: sport is the echo id, dport is type << 8 | code. */
const FLOW_C: Flow = {
  family: FAMILY_IPV4,
  proto: PROTO_ICMP,
  orig: { src: '192.0.2.99', dst: '8.8.8.8', sport: 0x1234, dport: 0x0800 },
  reply: { src: '8.8.8.8', dst: '192.0.2.99', sport: 0x1234, dport: 0 },
  tcpState: 0,
  timeoutS: 30,
  mark: 0,
  zone: 0,
  seenReply: true,
  assured: false,
}

const hex = (s: string): Buffer => Buffer.from(s, 'hex')

const VECTORS: { name: string; hex: string; frame: SyncFrame }[] = [
  {
    name: 'insert + delete',
    hex: V1_HEX,
    frame: {
      ackOnly: false,
      sender: SENDER_A,
      epoch: 0x11223344,
      seq: 7,
      ackEpoch: 0x55667788,
      ack: 5,
      sections: [
        { type: 'insert', records: [hex(FLOW_A_HEX), hex(FLOW_B_HEX)] },
        { type: 'delete', keys: [hex(KEY_C_HEX)] },
      ],
    },
  },
  {
    name: 'bulk control',
    hex: V2_HEX,
    frame: {
      ackOnly: false,
      sender: SENDER_B,
      epoch: 0xcafef00d,
      seq: 1,
      ackEpoch: 0,
      ack: 0,
      sections: [
        { type: 'clear' },
        { type: 'bulkRequest', ids: [1, 0xdeadbeef] },
        { type: 'bulkStart', items: [{ id: 0xdeadbeef, total: 100000 }] },
        { type: 'bulkEnd', items: [{ id: 1, count: 0 }] },
      ],
    },
  },
  {
    name: 'ack-only with selective acks',
    hex: V3_HEX,
    frame: {
      ackOnly: true,
      sender: SENDER_A,
      epoch: 0x11223344,
      seq: 6,
      ackEpoch: 0xcafef00d,
      ack: 7,
      sections: [{ type: 'ack', ranges: [{ from: 9, to: 9 }, { from: 12, to: 15 }] }],
    },
  },
  {
    name: 'ack-only keepalive',
    hex: V4_HEX,
    frame: { ackOnly: true, sender: SENDER_B, epoch: 0xcafef00d, seq: 0, ackEpoch: 0x11223344, ack: 6, sections: [] },
  },
]

/** Buffers as hex, so frames compare by content. */
function plain(frame: SyncFrame): unknown {
  return JSON.parse(JSON.stringify(frame, (_k, v) => (v && v.type === 'Buffer' && Array.isArray(v.data) ? Buffer.from(v.data).toString('hex') : v)))
}

/** Recomputes the trailing HMAC, to reach the checks after authentication. */
function reauth(buf: Buffer, key = KEY): Buffer {
  const end = buf.length - SYNC_HMAC_LEN
  createHmac('sha256', key).update(buf.subarray(0, end)).digest().copy(buf, end)
  return buf
}

/** A frame built by hand from raw section bytes: header fields fixed, length and HMAC right. */
function rawFrame(sections: Buffer, flags = 0): Buffer {
  const buf = Buffer.alloc(SYNC_HEADER_LEN + sections.length + SYNC_HMAC_LEN)
  buf[0] = 1
  buf[1] = flags
  buf.writeUInt16BE(buf.length, 2)
  buf.writeUInt32BE(SENDER_A, 4)
  buf.writeUInt32BE(1, 8)
  buf.writeUInt32BE(1, 12)
  sections.copy(buf, SYNC_HEADER_LEN)
  return reauth(buf)
}

const sectionHead = (type: number, count: number, reserved = 0): Buffer => Buffer.from([type, reserved, count >> 8, count & 0xff])
const u32s = (...values: number[]): Buffer => {
  const b = Buffer.alloc(4 * values.length)
  values.forEach((v, i) => b.writeUInt32BE(v, 4 * i))
  return b
}
/** FLOW_A's record with one byte changed. */
const flowWith = (offset: number, value: number): Buffer => {
  const b = hex(FLOW_A_HEX)
  b[offset] = value
  return b
}

for (const v of VECTORS) {
  t.test(`vector ${v.name}: byte-exact encode and decode`, async (t) => {
    const bytes = encodeSyncFrame(v.frame, KEY)
    t.equal(bytes.toString('hex'), v.hex)
    t.equal(syncFrameLength(v.frame), bytes.length)
    const back = decodeSyncFrame(hex(v.hex), KEY)
    t.ok(back.ok)
    if (back.ok) t.same(plain(back.frame), plain(v.frame))
    t.same(decodeSyncFrame(hex(v.hex), KEY + 'x'), { ok: false, error: 'badAuth' }, 'other key')
  })
}

t.test('flow and key records: byte-exact, both ways', async (t) => {
  t.equal(encodeFlowRecord(FLOW_A).toString('hex'), FLOW_A_HEX)
  t.equal(encodeFlowRecord(FLOW_B).toString('hex'), FLOW_B_HEX)
  t.equal(encodeKeyRecord(FLOW_C).toString('hex'), KEY_C_HEX)
  for (const flow of [FLOW_A, FLOW_B, FLOW_C]) {
    const record = encodeFlowRecord(flow)
    t.equal(record.length, FLOW_RECORD_LEN)
    t.same(decodeFlowRecord(record), { ok: true, flow })
    t.same(flowKeyRecord(record), encodeKeyRecord(flow))
    t.equal(flowKeyRecord(record).buffer, record.buffer, 'the key is a view, not a copy')
    t.same(decodeKeyRecord(encodeKeyRecord(flow)), {
      ok: true,
      key: { family: FAMILY_IPV4, proto: flow.proto, zone: flow.zone, orig: flow.orig },
    })
  }
})

t.test('a NAT flow keeps its reply tuple through a frame', async (t) => {
  const nat: Flow = {
    ...FLOW_A,
    orig: { src: '10.1.1.2', dst: '93.184.216.34', sport: 51000, dport: 80 },
    reply: { src: '93.184.216.34', dst: '203.0.113.7', sport: 80, dport: 1025 },
    tcpState: 7,
    timeoutS: 0,
    mark: 0x80000001,
    zone: 65535,
    seenReply: false,
    assured: true,
  }
  const frame: SyncFrame = { ackOnly: false, sender: 1, epoch: 2, seq: 3, ackEpoch: 4, ack: 5, sections: [{ type: 'update', records: [encodeFlowRecord(nat)] }] }
  const back = decodeSyncFrame(encodeSyncFrame(frame, KEY), KEY)
  t.ok(back.ok)
  if (!back.ok) return
  const section = back.frame.sections[0]!
  t.equal(section.type, 'update')
  if (section.type !== 'update') return
  t.same(decodeFlowRecord(section.records[0]!), { ok: true, flow: nat })
})

t.test('record decoders refuse invalid records', async (t) => {
  const bad: [string, Buffer][] = [
    ['short', hex(FLOW_A_HEX).subarray(0, 39)],
    ['long', Buffer.concat([hex(FLOW_A_HEX), Buffer.alloc(1)])],
    ['family 6', flowWith(0, 6)],
    ['tcpState past SYN_SENT2', flowWith(28, 10)],
    ['tcpState for UDP', hex(FLOW_B_HEX).fill(3, 28, 29)],
    ['unknown flow flag', flowWith(29, 0x07)],
    ['reserved high byte', flowWith(30, 1)],
    ['reserved low byte', flowWith(31, 1)],
  ]
  for (const [name, record] of bad) t.same(decodeFlowRecord(record), { ok: false, error: 'badRecord' }, name)
  t.same(decodeFlowRecord(flowWith(28, 9)).ok, true, 'SYN_SENT2 is the last state')
  t.same(decodeKeyRecord(hex(KEY_C_HEX).subarray(0, 15)), { ok: false, error: 'badRecord' }, 'short key')
  t.same(decodeKeyRecord(hex(KEY_C_HEX).fill(6, 0, 1)), { ok: false, error: 'badRecord' }, 'key of family 6')
})

t.test('encodeFlowRecord throws SyncEncodeError for what decode would refuse', async (t) => {
  const cases: [string, Partial<Flow>][] = [
    ['short address', { orig: { ...FLOW_A.orig, src: '192.0.2' } }],
    ['address part over 255', { orig: { ...FLOW_A.orig, dst: '256.0.0.1' } }],
    ['leading zero', { reply: { ...FLOW_A.reply, src: '010.0.0.1' } }],
    ['not a number', { reply: { ...FLOW_A.reply, dst: 'a.b.c.d' } }],
    ['IPv6', { orig: { ...FLOW_A.orig, src: '2001:db8::1' } }],
    ['port over 65535', { orig: { ...FLOW_A.orig, sport: 65536 } }],
    ['negative reply port', { reply: { ...FLOW_A.reply, dport: -1 } }],
    ['tcpState 10', { tcpState: 10 }],
    ['tcpState for UDP', { proto: PROTO_UDP, tcpState: 3 }],
    ['fractional timeout', { timeoutS: 1.5 }],
    ['negative timeout', { timeoutS: -1 }],
    ['mark over u32', { mark: 2 ** 32 }],
    ['zone over u16', { zone: 65536 }],
    ['proto over u8', { proto: 256 }],
    ['family 6', { family: 6 as never }],
  ]
  for (const [name, change] of cases) {
    t.throws(() => encodeFlowRecord({ ...FLOW_A, ...change }), { name: 'RangeError', code: 'syncEncode' }, name)
  }
  t.throws(() => encodeKeyRecord({ ...FLOW_A, zone: -1 }), { code: 'syncEncode' }, 'key record too')
  try {
    encodeKeyRecord({ ...FLOW_A, orig: { ...FLOW_A.orig, src: '' } })
  } catch (err) {
    t.ok(err instanceof SyncEncodeError, 'a SyncEncodeError')
  }
  t.equal(encodeFlowRecord({ ...FLOW_A, orig: { ...FLOW_A.orig, src: '0.0.0.0', dst: '255.255.255.255' } }).toString('hex', 4, 12), '00000000ffffffff')
})

t.test('every decoder drop reason', async (t) => {
  const v1 = (): Buffer => hex(V1_HEX)
  const oversized = Buffer.alloc(SYNC_MAX_FRAME + 1)
  oversized[0] = 1
  oversized.writeUInt16BE(oversized.length, 2)
  const withHeaderByte = (offset: number, value: number): Buffer => {
    const b = v1()
    b[offset] = value
    return reauth(b)
  }
  const cases: [string, Buffer, string][] = [
    ['empty', Buffer.alloc(0), 'shortPacket'],
    ['header without HMAC', v1().subarray(0, SYNC_HEADER_LEN + SYNC_HMAC_LEN - 1), 'shortPacket'],
    ['version 2', withHeaderByte(0, 2), 'badVersion'],
    ['version 0', withHeaderByte(0, 0), 'badVersion'],
    ['unknown flag', withHeaderByte(1, 0x02), 'badFlags'],
    ['length field short', withHeaderByte(3, 0x9f), 'badLength'],
    ['trailing byte', Buffer.concat([v1(), Buffer.alloc(1)]), 'badLength'],
    ['truncated datagram', v1().subarray(0, 100), 'badLength'],
    ['over the UDP maximum', oversized, 'oversized'],
    ['payload byte flipped', (() => { const b = v1(); b[40] ^= 1; return b })(), 'badAuth'],
    ['HMAC byte flipped', (() => { const b = v1(); b[b.length - 1] ^= 0x80; return b })(), 'badAuth'],
    ['unknown section type 12', rawFrame(sectionHead(12, 0)), 'unknownSection'],
    ['unknown section type 0', rawFrame(sectionHead(0, 0)), 'unknownSection'],
    ['reserved section byte', rawFrame(sectionHead(1, 0, 1)), 'badSection'],
    ['clear with a count', rawFrame(sectionHead(4, 1)), 'badSection'],
    ['update in an ack-only frame', rawFrame(Buffer.concat([sectionHead(2, 1), hex(FLOW_A_HEX)]), 1), 'badSection'],
    ['clear in an ack-only frame', rawFrame(sectionHead(4, 0), 1), 'badSection'],
    ['count past the end', rawFrame(Buffer.concat([sectionHead(1, 2), hex(FLOW_A_HEX)])), 'truncatedSection'],
    ['absurd count', rawFrame(sectionHead(3, 0xffff)), 'truncatedSection'],
    ['partial section header', rawFrame(Buffer.concat([sectionHead(4, 0), Buffer.from([5, 0])])), 'truncatedSection'],
    ['insert of family 6', rawFrame(Buffer.concat([sectionHead(1, 1), flowWith(0, 6)])), 'badRecord'],
    ['update with UDP tcpState', rawFrame(Buffer.concat([sectionHead(2, 1), hex(FLOW_B_HEX).fill(1, 28, 29)])), 'badRecord'],
    ['delete of family 0', rawFrame(Buffer.concat([sectionHead(3, 1), Buffer.alloc(KEY_RECORD_LEN)])), 'badRecord'],
    ['ack range backwards', rawFrame(Buffer.concat([sectionHead(8, 1), u32s(5, 4)])), 'badRecord'],
  ]
  for (const [name, bytes, error] of cases) t.same(decodeSyncFrame(bytes, KEY), { ok: false, error }, name)
})

t.test('authentication comes before any section is parsed', async (t) => {
  // An unknown section under a wrong HMAC is a forgery, not an unknownSection.
  const forged = rawFrame(sectionHead(200, 0xffff))
  forged[forged.length - 1] ^= 1
  t.same(decodeSyncFrame(forged, KEY), { ok: false, error: 'badAuth' })
  t.same(decodeSyncFrame(reauth(forged, 'other'), KEY), { ok: false, error: 'badAuth' })
})

t.test('frames of zero-length sections and the largest frame decode', async (t) => {
  const empties = rawFrame(Buffer.concat([sectionHead(1, 0), sectionHead(3, 0), sectionHead(8, 0)]))
  const r = decodeSyncFrame(empties, KEY)
  t.same(r.ok && plain(r.frame), plain({ ackOnly: false, sender: SENDER_A, epoch: 1, seq: 1, ackEpoch: 0, ack: 0, sections: [
    { type: 'insert', records: [] }, { type: 'delete', keys: [] }, { type: 'ack', ranges: [] },
  ] }))
  const n = Math.floor((SYNC_MAX_FRAME - SYNC_HEADER_LEN - SYNC_HMAC_LEN - SECTION_HEADER_LEN) / 4)
  const biggest: SyncFrame = { ackOnly: false, sender: 0xffffffff, epoch: 0xffffffff, seq: 0xffffffff, ackEpoch: 0xffffffff, ack: 0xffffffff, sections: [{ type: 'bulkRequest', ids: Array.from({ length: n }, (_, i) => i) }] }
  const bytes = encodeSyncFrame(biggest, KEY)
  t.ok(bytes.length <= SYNC_MAX_FRAME && bytes.length > SYNC_MAX_FRAME - 4)
  const back = decodeSyncFrame(bytes, KEY)
  t.same(back.ok && plain(back.frame), plain(biggest))
})

t.test('encodeSyncFrame refuses frames the peer would drop', async (t) => {
  const base: SyncFrame = { ackOnly: false, sender: 1, epoch: 1, seq: 1, ackEpoch: 0, ack: 0, sections: [] }
  const cases: [string, SyncFrame][] = [
    ['update in an ack-only frame', { ...base, ackOnly: true, sections: [{ type: 'update', records: [hex(FLOW_A_HEX)] }] }],
    ['bulkRequest in an ack-only frame', { ...base, ackOnly: true, sections: [{ type: 'bulkRequest', ids: [1] }] }],
    ['record of 39 bytes', { ...base, sections: [{ type: 'insert', records: [hex(FLOW_A_HEX).subarray(1)] }] }],
    ['flow record as a key', { ...base, sections: [{ type: 'delete', keys: [hex(FLOW_A_HEX)] }] }],
    ['invalid flow record', { ...base, sections: [{ type: 'update', records: [flowWith(29, 0x80)] }] }],
    ['backwards ack range', { ...base, sections: [{ type: 'ack', ranges: [{ from: 2, to: 1 }] }] }],
    ['bulkStart total over u32', { ...base, sections: [{ type: 'bulkStart', items: [{ id: 1, total: 2 ** 32 }] }] }],
    ['fractional bulkRequest id', { ...base, sections: [{ type: 'bulkRequest', ids: [1.5] }] }],
    ['seq -1', { ...base, seq: -1 }],
    ['ack over u32', { ...base, ack: 2 ** 32 }],
    ['over SYNC_MAX_FRAME', { ...base, sections: [{ type: 'delete', keys: Array.from({ length: 4094 }, () => hex(KEY_C_HEX)) }] }],
  ]
  for (const [name, frame] of cases) t.throws(() => encodeSyncFrame(frame, KEY), { code: 'syncEncode' }, name)
})

// IPv6: the same fields with 16-byte addresses (vector from Python's struct and ipaddress).
const FLOW6: Flow = {
  family: FAMILY_IPV6,
  proto: PROTO_TCP,
  orig: { src: '2001:db8:1::10', dst: '2001:db8:2::80', sport: 40000, dport: 443 },
  reply: { src: '2001:db8:2::80', dst: '2001:db8:1::10', sport: 443, dport: 40000 },
  tcpState: 3,
  timeoutS: 431999,
  mark: 0x200,
  zone: 0,
  seenReply: true,
  assured: true,
}
const KEY6_HEX = '0606000020010db800010000000000000000001020010db80002000000000000000000809c4001bb'
const FLOW6_HEX = KEY6_HEX + '20010db800020000000000000000008020010db800010000000000000000001001bb9c4003030000000002000006977f'

t.test('IPv6 flow and key records: byte-exact, both ways, in sections of their own', async (t) => {
  const record = encodeFlowRecord(FLOW6)
  t.equal(record.toString('hex'), FLOW6_HEX)
  t.equal(record.length, FLOW6_RECORD_LEN)
  t.equal(encodeKeyRecord(FLOW6).toString('hex'), KEY6_HEX)
  t.equal(encodeKeyRecord(FLOW6).length, KEY6_RECORD_LEN)
  t.same(decodeFlowRecord(record), { ok: true, flow: FLOW6 })
  t.same(flowKeyRecord(record), encodeKeyRecord(FLOW6))
  t.equal(recordKey(record.toString('latin1')), encodeKeyRecord(FLOW6).toString('latin1'))
  t.equal(recordKey(encodeFlowRecord(FLOW_A).toString('latin1')).length, KEY_RECORD_LEN, 'an IPv4 key stays 16 bytes')
  t.same(decodeKeyRecord(encodeKeyRecord(FLOW6)), { ok: true, key: { family: FAMILY_IPV6, proto: PROTO_TCP, zone: 0, orig: FLOW6.orig } })
  const long = { ...FLOW6, orig: { ...FLOW6.orig, src: '2001:0DB8:0001:0000:0000:0000:0000:0010' } }
  t.same(decodeFlowRecord(encodeFlowRecord(long)), { ok: true, flow: FLOW6 }, 'any text form in, RFC 5952 (as conntrack prints) out')
  t.throws(() => encodeFlowRecord({ ...FLOW6, orig: { ...FLOW6.orig, src: '192.0.2.1' } }), { code: 'syncEncode' }, 'an IPv4 address in an IPv6 flow')
  t.throws(() => encodeFlowRecord({ ...FLOW_A, family: FAMILY_IPV6 }), { code: 'syncEncode' })
  t.throws(() => encodeFlowRecord({ ...FLOW6, family: 5 as never }), { code: 'syncEncode' })
  // A TCP stage behind, in either family: the state and flags end both records.
  const syn = encodeFlowRecord({ ...FLOW6, tcpState: 1, assured: false }).toString('latin1')
  t.ok(recordBehind(syn, record.toString('latin1')))
  t.notOk(recordBehind(record.toString('latin1'), syn))

  const frame: SyncFrame = {
    ackOnly: false,
    sender: SENDER_A,
    epoch: 1,
    seq: 2,
    ackEpoch: 0,
    ack: 0,
    sections: [
      { type: 'update', records: [encodeFlowRecord(FLOW_A)] },
      { type: 'update', records: [record, record] },
      { type: 'delete', keys: [encodeKeyRecord(FLOW6)] },
      { type: 'insert', records: [record] },
    ],
  }
  const bytes = encodeSyncFrame(frame, KEY)
  t.equal(bytes.length, syncFrameLength(frame))
  t.equal(bytes.length, SYNC_HEADER_LEN + 4 * SECTION_HEADER_LEN + FLOW_RECORD_LEN + 3 * FLOW6_RECORD_LEN + KEY6_RECORD_LEN + SYNC_HMAC_LEN)
  t.same([bytes[SYNC_HEADER_LEN], bytes[SYNC_HEADER_LEN + SECTION_HEADER_LEN + FLOW_RECORD_LEN]], [2, 10], 'update (2), then update of IPv6 flows (10)')
  const back = decodeSyncFrame(bytes, KEY)
  t.ok(back.ok)
  if (back.ok) {
    t.same(back.frame.sections.map((x) => x.type), ['update', 'update', 'delete', 'insert'])
    t.same(back.frame.sections.map((x) => ('records' in x ? x.records : 'keys' in x ? x.keys : []).map((r) => r.length)), [[40], [88, 88], [40], [88]])
  }
  t.throws(() => encodeSyncFrame({ ...frame, sections: [{ type: 'update', records: [record, encodeFlowRecord(FLOW_A)] }] }, KEY), { code: 'syncEncode' }, 'one section, one family')
  // A record of the other family where the section names one is refused.
  t.same(decodeSyncFrame(rawFrame(Buffer.concat([sectionHead(10, 1), encodeFlowRecord(FLOW_A), Buffer.alloc(48)])), KEY), { ok: false, error: 'badRecord' }, 'IPv4 record in an IPv6 update')
  t.same(decodeSyncFrame(rawFrame(Buffer.concat([sectionHead(3, 1), encodeKeyRecord(FLOW6).subarray(0, KEY_RECORD_LEN)])), KEY), { ok: false, error: 'badRecord' }, 'IPv6 key in an IPv4 delete')
  t.match(decodeSyncFrame(rawFrame(Buffer.concat([sectionHead(11, 1), encodeKeyRecord(FLOW6)])), KEY), { ok: true, frame: { sections: [{ type: 'delete', keys: [encodeKeyRecord(FLOW6)] }] } }, 'an IPv6 key in an IPv6 delete')
})

t.test('decoded records are validated views of the datagram', async (t) => {
  const datagram = hex(V1_HEX)
  const r = decodeSyncFrame(datagram, KEY)
  t.ok(r.ok)
  if (!r.ok || r.frame.sections[0]!.type !== 'insert' || r.frame.sections[1]!.type !== 'delete') return
  const [a, b] = r.frame.sections[0]!.records
  t.equal(a!.length, FLOW_RECORD_LEN)
  t.equal(a!.buffer, datagram.buffer, 'no copy')
  t.equal(a!.byteOffset, datagram.byteOffset + SYNC_HEADER_LEN + SECTION_HEADER_LEN)
  t.equal(b!.toString('hex'), FLOW_B_HEX)
  t.equal(r.frame.sections[1]!.keys[0]!.length, KEY_RECORD_LEN)
  t.same(decodeFlowRecord(a!), { ok: true, flow: FLOW_A })
})

t.test('decode reads a plain Uint8Array view into a larger buffer', async (t) => {
  const big = new Uint8Array(7 + V2_HEX.length / 2 + 5)
  big.set(hex(V2_HEX), 7)
  const r = decodeSyncFrame(big.subarray(7, 7 + V2_HEX.length / 2), KEY)
  t.ok(r.ok)
  if (r.ok) t.same(plain(r.frame), plain(VECTORS[1]!.frame))
  t.same(decodeFlowRecord(new Uint8Array(hex(FLOW_A_HEX))), { ok: true, flow: FLOW_A })
})

// ---------------------------------------------------------------------------------
// Fuzzing: decode must never throw, whatever the bytes.

/** decodeSyncFrame, with an exception turned into a failed test (and a 'threw' drop). */
function decodeOrFail(t: { fail(message: string): unknown }, bytes: Buffer): ReturnType<typeof decodeSyncFrame> {
  try {
    return decodeSyncFrame(bytes, KEY)
  } catch (err) {
    t.fail(`threw on ${bytes.toString('hex')}: ${String(err)}`)
    return { ok: false, error: 'threw' as never }
  }
}

t.test('random bytes never throw and never decode', async (t) => {
  let accepted = 0
  for (let i = 0; i < 5000; i++) {
    const len = i % 2 === 0 ? 56 + (i % 200) : i % 60
    const bytes = randomBytes(len)
    if (i % 4 === 0) {
      // Past version, flags and length, so only the HMAC stands in the way.
      bytes[0] = 1
      bytes[1] = 0
      bytes.writeUInt16BE(len, 2)
    }
    if (decodeOrFail(t, bytes).ok) accepted++
  }
  t.equal(accepted, 0)
})

t.test('random sections under a valid HMAC never throw', async (t) => {
  for (let i = 0; i < 5000; i++) {
    const body = randomBytes(i % 300)
    // Bias towards known types with plausible counts, to get past the first checks.
    for (let off = 0; off + 4 <= body.length; off += 4 + 8 * (i % 5)) {
      body[off] = 1 + (body[off]! % 9)
      body[off + 1] = i % 7 === 0 ? 1 : 0
      body[off + 2] = 0
    }
    const frame = rawFrame(body, i % 3 === 0 ? 1 : 0)
    const r = decodeOrFail(t, frame)
    if (r.ok) t.equal(syncFrameLength(r.frame), frame.length, 'what decodes re-encodes to its length')
  }
})

t.test('every truncation of a valid frame is refused without throwing', async (t) => {
  const v1 = hex(V1_HEX)
  for (let len = 0; len < v1.length; len++) {
    const cut = Buffer.from(v1.subarray(0, len))
    t.notOk(decodeOrFail(t, cut).ok, `cut to ${len}`)
    if (len < SYNC_HEADER_LEN + SYNC_HMAC_LEN) continue
    // The same cut with a matching length field and HMAC reaches the section parser.
    cut.writeUInt16BE(len, 2)
    // Only cuts at a section boundary are whole frames: no sections (56), the insert alone (140).
    const r = decodeOrFail(t, reauth(cut))
    t.equal(r.ok, len === 56 || len === 140, `cut to ${len}, re-authenticated: ${r.ok || r.error}`)
  }
})

t.test('bit flips with the HMAC recomputed never throw', async (t) => {
  for (const v of VECTORS) {
    const good = hex(v.hex)
    for (let bit = 0; bit < (good.length - SYNC_HMAC_LEN) * 8; bit++) {
      const b = Buffer.from(good)
      b[bit >> 3] ^= 0x80 >> (bit & 7)
      const r = decodeOrFail(t, reauth(b))
      // A flip can only pass when it lands in a field no check covers (ids, seqs, addresses...).
      if (r.ok) t.equal(encodeSyncFrame(r.frame, KEY).toString('hex'), b.toString('hex'), `flip ${bit} re-encodes`)
    }
  }
})

t.test('random frames round-trip', async (t) => {
  const u32 = (): number => randomBytes(4).readUInt32BE(0)
  const flow = (): Flow => {
    const proto = [PROTO_TCP, PROTO_UDP, PROTO_ICMP, 47][u32() % 4]!
    const ip = (): string => [...randomBytes(4)].join('.')
    const port = (): number => u32() & 0xffff
    return {
      family: FAMILY_IPV4,
      proto,
      orig: { src: ip(), dst: ip(), sport: port(), dport: port() },
      reply: { src: ip(), dst: ip(), sport: port(), dport: port() },
      tcpState: proto === PROTO_TCP ? u32() % 10 : 0,
      timeoutS: u32(),
      mark: u32(),
      zone: port(),
      seenReply: u32() % 2 === 0,
      assured: u32() % 2 === 0,
    }
  }
  const many = <T>(make: () => T): T[] => Array.from({ length: u32() % 4 }, make)
  const section = (): SyncSection => {
    switch (u32() % 8) {
      case 0: return { type: 'insert', records: many(() => encodeFlowRecord(flow())) }
      case 1: return { type: 'update', records: many(() => encodeFlowRecord(flow())) }
      case 2: return { type: 'delete', keys: many(() => encodeKeyRecord(flow())) }
      case 3: return { type: 'clear' }
      case 4: return { type: 'bulkRequest', ids: many(u32) }
      case 5: return { type: 'bulkStart', items: many(() => ({ id: u32(), total: u32() })) }
      case 6: return { type: 'bulkEnd', items: many(() => ({ id: u32(), count: u32() })) }
      default: {
        const from = u32()
        return { type: 'ack', ranges: many(() => ({ from, to: from + (u32() % (0xffffffff - from + 1)) })) }
      }
    }
  }
  for (let i = 0; i < 500; i++) {
    const ackOnly = i % 5 === 0
    const sections = Array.from({ length: u32() % 5 }, section).filter((s) => !ackOnly || s.type === 'ack')
    const frame: SyncFrame = { ackOnly, sender: u32(), epoch: u32(), seq: u32(), ackEpoch: u32(), ack: u32(), sections }
    const bytes = encodeSyncFrame(frame, KEY)
    t.equal(bytes.length, syncFrameLength(frame))
    const back = decodeSyncFrame(bytes, KEY)
    if (!back.ok) t.fail(`frame ${i}: ${back.error}`)
    else if (JSON.stringify(plain(back.frame)) !== JSON.stringify(plain(frame))) t.same(plain(back.frame), plain(frame), `frame ${i}`)
    for (const s of back.ok ? back.frame.sections : []) {
      if (s.type === 'insert' || s.type === 'update') for (const r of s.records) if (!decodeFlowRecord(r).ok) t.fail('record')
    }
  }
  t.pass('500 frames')
})

// ---------------------------------------------------------------------------------
// Filling frames

t.test('a 1472-byte frame (1500 MTU less IPv4 and UDP) holds 35 flow records, not 36', async (t) => {
  const record = hex(FLOW_A_HEX)
  const frameOf = (n: number): SyncFrame => ({
    ackOnly: false, sender: 1, epoch: 1, seq: 1, ackEpoch: 0, ack: 0,
    sections: [{ type: 'insert', records: Array.from({ length: n }, () => record) }],
  })
  t.equal(syncFrameLength(frameOf(35)), SYNC_HEADER_LEN + SECTION_HEADER_LEN + 35 * FLOW_RECORD_LEN + SYNC_HMAC_LEN)
  t.ok(syncFrameLength(frameOf(35)) <= 1472)
  t.ok(syncFrameLength(frameOf(36)) > 1472)
  t.equal(encodeSyncFrame(frameOf(35), KEY).length, syncFrameLength(frameOf(35)))
  t.same(SECTION_RECORD_LEN, { insert: 40, update: 40, delete: 16, clear: 0, bulkRequest: 4, bulkStart: 8, bulkEnd: 8, ack: 8 })
})

t.test('recordBehind: an earlier stage of the same connection (pfsync\'s stale-update rule)', async (t) => {
  const tcp = (tcpState: number, seenReply = true, assured = true, timeoutS = 300): string => {
    const f: Flow = {
      family: FAMILY_IPV4, proto: PROTO_TCP, zone: 0, mark: 0, timeoutS, tcpState, seenReply, assured,
      orig: { src: '192.0.2.10', dst: '203.0.113.80', sport: 40000, dport: 80 },
      reply: { src: '203.0.113.80', dst: '198.51.100.1', sport: 80, dport: 40000 },
    }
    return encodeFlowRecord(f).toString('latin1')
  }
  const [NONE, SYN_SENT, SYN_RECV, ESTABLISHED, FIN_WAIT, CLOSE_WAIT, LAST_ACK, TIME_WAIT, CLOSE, SYN_SENT2] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]
  // The order of a connection's life, SYN_SENT2 (simultaneous open) after SYN_SENT.
  const life = [NONE, SYN_SENT, SYN_SENT2, SYN_RECV, ESTABLISHED, FIN_WAIT, LAST_ACK, TIME_WAIT, CLOSE]
  for (let i = 0; i < life.length; i++) {
    for (let j = 0; j < life.length; j++) {
      t.equal(recordBehind(tcp(life[i]!), tcp(life[j]!)), i < j, `state ${life[i]} behind ${life[j]}: ${i < j}`)
    }
  }
  t.equal(recordBehind(tcp(FIN_WAIT), tcp(CLOSE_WAIT)), false, 'who closed first: one stage, neither behind')
  t.equal(recordBehind(tcp(CLOSE_WAIT), tcp(FIN_WAIT)), false)
  t.equal(recordBehind(tcp(ESTABLISHED, true, true, 10), tcp(ESTABLISHED, true, true, 400)), false, 'timeouts say nothing (arrival order decides)')
  t.equal(recordBehind(tcp(ESTABLISHED, true, false), tcp(ESTABLISHED, true, true)), true, 'not yet assured')
  t.equal(recordBehind(tcp(ESTABLISHED, false, false), tcp(ESTABLISHED, true, false)), true, 'no reply seen yet')
  t.equal(recordBehind(tcp(ESTABLISHED, true, false), tcp(ESTABLISHED, false, true)), false, 'flags that disagree: neither behind')
  t.equal(recordBehind(tcp(ESTABLISHED), tcp(ESTABLISHED)), false, 'the same record')
  const udp = (seenReply: boolean, assured: boolean) =>
    encodeFlowRecord({ family: FAMILY_IPV4, proto: PROTO_UDP, zone: 0, mark: 0, timeoutS: 30, tcpState: 0, seenReply, assured, orig: { src: '192.0.2.10', dst: '203.0.113.53', sport: 5353, dport: 53 }, reply: { src: '203.0.113.53', dst: '198.51.100.1', sport: 53, dport: 5353 } }).toString('latin1')
  t.equal(recordBehind(udp(false, false), udp(true, false)), true, 'UDP: by its flags only')
  t.equal(recordBehind(udp(true, true), udp(true, false)), false)
})
