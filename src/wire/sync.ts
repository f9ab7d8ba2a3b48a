// State sync frame codec: the datagrams the sync engine (sync/engine.ts) exchanges with
// its peer over the sync link. The shape is pfsync(4)'s (OpenBSD sys/net/if_pfsync.h):
// a header, then sections of {type, count, fixed-length records}, decoded through one
// table like pfsync_acts[]. Unlike pfsync the header carries a sequence number and a
// cumulative ack, so delivery is reliable, and the whole frame is authenticated.
// All integers are big endian.
//
// Header (24 bytes):
//  0                   1                   2                   3
//  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
// +---------------+-------------+-+-------------------------------+
// |    Version    |  Flags (0)  |A|      Length (whole frame)     |  0
// +---------------+-------------+-+-------------------------------+
// |            Sender (first 32 bits of sha256(node name))        |  4
// +---------------------------------------------------------------+
// |                  Epoch (sender's random boot epoch)           |  8
// +---------------------------------------------------------------+
// |                  Seq (in the sender's epoch)                  | 12
// +---------------------------------------------------------------+
// |          AckEpoch (the receiver's epoch Ack refers to)        | 16
// +---------------------------------------------------------------+
// |                  Ack (cumulative: all seqs <= Ack)            | 20
// +---------------------------------------------------------------+ 24
//   A = ACK_ONLY: the frame carries no reliable content and its seq is not consumed.
//
// Then zero or more sections (4-byte header, then Count records of the type's length):
// +---------------+---------------+-------------------------------+
// |     Type      | Reserved (0)  |             Count             |
// +---------------+---------------+-------------------------------+
// |                  Count x record (see SECTION_CODECS)          |
// +---------------------------------------------------------------+
//
// Then HMAC-SHA256 (32 bytes), keyed by the sync secret, over every byte before it.
//
// Key record (16 bytes), the identity of a flow:
// +---------------+---------------+-------------------------------+
// |  Family (4)   |     Proto     |             Zone              |  0
// +---------------+---------------+-------------------------------+
// |                     Original source address                   |  4
// +---------------------------------------------------------------+
// |                   Original destination address                |  8
// +-------------------------------+-------------------------------+
// |     Original source port      |   Original destination port   | 12
// +-------------------------------+-------------------------------+ 16
//
// Flow record (40 bytes): the key record, then:
// +---------------------------------------------------------------+
// |                      Reply source address                     | 16
// +---------------------------------------------------------------+
// |                    Reply destination address                  | 20
// +-------------------------------+-------------------------------+
// |       Reply source port       |    Reply destination port     | 24
// +---------------+-----------+-+-+-------------------------------+
// |   TCP state   | Flags (0) |A|R|         Reserved (0)          | 28
// +---------------+-----------+-+-+-------------------------------+
// |                          Mark (ct mark)                       | 32
// +---------------------------------------------------------------+
// |                       Timeout (seconds)                       | 36
// +---------------------------------------------------------------+ 40
//   R = seen reply, A = assured.

import { asBuffer, checkedInteger } from './bytes.js'
import { timingSafeEqual } from 'node:crypto'
import { hmacOf } from './hmac.js'
import { FAMILY_IPV4, PROTO_TCP, TCP_STATES, type Flow } from './flow.js'

export const SYNC_VERSION = 1
export const SYNC_HEADER_LEN = 24
export const SYNC_HMAC_LEN = 32
export const SECTION_HEADER_LEN = 4
export const KEY_RECORD_LEN = 16
export const FLOW_RECORD_LEN = 40
/** The largest UDP payload over IPv4 (65535 - 20 - 8); the length field could say more. */
export const SYNC_MAX_FRAME = 65507
/** Header flag: no reliable content, seq not consumed (keepalives and pure acks). */
export const SYNC_FLAG_ACK_ONLY = 0x01

const OFF_VERSION = 0
const OFF_FLAGS = 1
const OFF_LENGTH = 2
const OFF_SENDER = 4
const OFF_EPOCH = 8
const OFF_SEQ = 12
const OFF_ACK_EPOCH = 16
const OFF_ACK = 20

const OFF_SECTION_TYPE = 0
const OFF_SECTION_RESERVED = 1
const OFF_SECTION_COUNT = 2

const OFF_FAMILY = 0
const OFF_PROTO = 1
const OFF_ZONE = 2
const OFF_ORIG_SRC = 4
const OFF_ORIG_DST = 8
const OFF_ORIG_SPORT = 12
const OFF_ORIG_DPORT = 14
const OFF_REPLY_SRC = 16
const OFF_REPLY_DST = 20
const OFF_REPLY_SPORT = 24
const OFF_REPLY_DPORT = 26
const OFF_TCP_STATE = 28
const OFF_FLOW_FLAGS = 29
const OFF_FLOW_RESERVED = 30
const OFF_MARK = 32
const OFF_TIMEOUT = 36

const FLOW_FLAG_SEEN_REPLY = 0x01
const FLOW_FLAG_ASSURED = 0x02
const FLOW_FLAGS_KNOWN = FLOW_FLAG_SEEN_REPLY | FLOW_FLAG_ASSURED

/**
 * One section of a frame. Flow and key records stay raw (subarrays of the decoded
 * datagram, already validated): the engine keeps them as bytes, and 50,000 changes a
 * second should not become 50,000 objects. decodeFlowRecord() turns one into a Flow.
 */
export type SyncSection =
  | { type: 'insert'; records: Buffer[] } // FLOW_RECORD_LEN each; part of a bulk transfer
  | { type: 'update'; records: Buffer[] } // FLOW_RECORD_LEN each; a live change
  | { type: 'delete'; keys: Buffer[] } // KEY_RECORD_LEN each
  | { type: 'clear' } // forget every flow of the sender
  | { type: 'bulkRequest'; ids: number[] } // send me your whole table, transfer id u32
  | { type: 'bulkStart'; items: { id: number; total: number }[] } // inserts of transfer id follow
  | { type: 'bulkEnd'; items: { id: number; count: number }[] } // transfer id done, count sent
  | { type: 'ack'; ranges: { from: number; to: number }[] } // seqs received beyond Ack, from <= to

export type SyncSectionType = SyncSection['type']

/**
 * One frame. The sender fills every u32 field; ackOnly frames may carry only 'ack'
 * sections (anything else would be reliable content that nobody acknowledges).
 */
export interface SyncFrame {
  ackOnly: boolean
  sender: number // senderId(node name), u32
  epoch: number // the sender's session, u32, random at boot
  seq: number // u32; for ackOnly frames, the last seq the sender used
  ackEpoch: number // the receiver's epoch that ack refers to (0: none yet)
  ack: number // cumulative: every seq <= ack of ackEpoch arrived
  sections: SyncSection[]
}

/** Why a datagram is not a sync frame; each one is a named drop counter, checked in this order. */
export type SyncDecodeError =
  | 'shortPacket'
  | 'badVersion'
  | 'badFlags'
  | 'badLength'
  | 'oversized'
  | 'badAuth'
  | 'unknownSection'
  | 'badSection'
  | 'truncatedSection'
  | 'badRecord'

export type SyncDecodeResult = { ok: true; frame: SyncFrame } | { ok: false; error: SyncDecodeError }
export type FlowDecodeResult = { ok: true; flow: Flow } | { ok: false; error: 'badRecord' }

/**
 * Thrown by the encoders for input the decoder would refuse (a bug in the caller: a
 * frame the peer drops would be sent again and again). `code` is stable.
 */
export class SyncEncodeError extends RangeError {
  readonly code = 'syncEncode'
}

// ---------------------------------------------------------------------------------
// Records

/** The 16-byte key of a flow: what identifies it in both boards' tables. */
export function encodeKeyRecord(flow: Flow): Buffer {
  const out = Buffer.alloc(KEY_RECORD_LEN)
  writeKey(flow, out)
  return out
}

/** The 40-byte record of a flow. Throws SyncEncodeError for a flow decode would refuse. */
export function encodeFlowRecord(flow: Flow): Buffer {
  const out = Buffer.alloc(FLOW_RECORD_LEN)
  writeKey(flow, out)
  out.writeUInt32BE(ipv4ToU32(flow.reply.src), OFF_REPLY_SRC)
  out.writeUInt32BE(ipv4ToU32(flow.reply.dst), OFF_REPLY_DST)
  out.writeUInt16BE(u16(flow.reply.sport, 'reply.sport'), OFF_REPLY_SPORT)
  out.writeUInt16BE(u16(flow.reply.dport, 'reply.dport'), OFF_REPLY_DPORT)
  const tcpState = integer(flow.tcpState, 0, TCP_STATES.length - 1, 'tcpState')
  // conntrack keeps a protocol state only for TCP; any other protocol says NONE.
  if (tcpState !== 0 && flow.proto !== PROTO_TCP) throw new SyncEncodeError(`tcpState ${tcpState} for protocol ${flow.proto}`)
  out[OFF_TCP_STATE] = tcpState
  out[OFF_FLOW_FLAGS] = (flow.seenReply ? FLOW_FLAG_SEEN_REPLY : 0) | (flow.assured ? FLOW_FLAG_ASSURED : 0)
  out.writeUInt32BE(integer(flow.mark, 0, 0xffffffff, 'mark'), OFF_MARK)
  out.writeUInt32BE(integer(flow.timeoutS, 0, 0xffffffff, 'timeoutS'), OFF_TIMEOUT)
  return out
}

/** The key record inside a flow record (a view, not a copy). */
export function flowKeyRecord(flowRecord: Buffer): Buffer {
  return flowRecord.subarray(0, KEY_RECORD_LEN)
}

/** A flow record back to a Flow; never throws. */
export function decodeFlowRecord(buf: Uint8Array): FlowDecodeResult {
  if (buf.length !== FLOW_RECORD_LEN || !flowRecordValid(buf, 0)) return { ok: false, error: 'badRecord' }
  const b = asBuffer(buf)
  const flags = b[OFF_FLOW_FLAGS]!
  return {
    ok: true,
    flow: {
      family: FAMILY_IPV4,
      proto: b[OFF_PROTO]!,
      orig: readTuple(b, OFF_ORIG_SRC),
      reply: readTuple(b, OFF_REPLY_SRC),
      tcpState: b[OFF_TCP_STATE]!,
      timeoutS: b.readUInt32BE(OFF_TIMEOUT),
      mark: b.readUInt32BE(OFF_MARK),
      zone: b.readUInt16BE(OFF_ZONE),
      seenReply: (flags & FLOW_FLAG_SEEN_REPLY) !== 0,
      assured: (flags & FLOW_FLAG_ASSURED) !== 0,
    },
  }
}

/**
 * The stage of a TCP connection each conntrack state stands for: SYN_SENT2 (a
 * simultaneous open) between SYN_SENT and SYN_RECV; FIN_WAIT and CLOSE_WAIT one stage
 * (which side closed first).
 */
const TCP_STAGE = [0, 1, 3, 4, 5, 5, 6, 7, 8, 2]

/**
 * Whether flow record `a` is an earlier stage of the same connection than flow record
 * `b` of the same key (latin1 records, as the engine keeps them): its TCP state is
 * behind, or, at the same stage, it lacks a flag `b` has (seen reply and assured never
 * go back within one connection) and has none `b` lacks. pfsync's rule for stale
 * updates (if_pfsync.c, pfsync_upd_tcp): a board that restarted reads entries its
 * kernel kept from an earlier term and sends them; they must not replace the live ones.
 */
export function recordBehind(a: string, b: string): boolean {
  const stageA = TCP_STAGE[a.charCodeAt(OFF_TCP_STATE)] ?? 0
  const stageB = TCP_STAGE[b.charCodeAt(OFF_TCP_STATE)] ?? 0
  if (stageA !== stageB) return stageA < stageB
  const flagsA = a.charCodeAt(OFF_FLOW_FLAGS)
  const flagsB = b.charCodeAt(OFF_FLOW_FLAGS)
  return (flagsA & ~flagsB) === 0 && (flagsB & ~flagsA) !== 0
}

/** The identifying part of a key record; reply and state fields are not in it. */
export type FlowKey = Pick<Flow, 'family' | 'proto' | 'zone' | 'orig'>

/** A key record back to its fields; never throws. */
export function decodeKeyRecord(buf: Uint8Array): { ok: true; key: FlowKey } | { ok: false; error: 'badRecord' } {
  if (buf.length !== KEY_RECORD_LEN || !keyRecordValid(buf, 0)) return { ok: false, error: 'badRecord' }
  const b = asBuffer(buf)
  return { ok: true, key: { family: FAMILY_IPV4, proto: b[OFF_PROTO]!, zone: b.readUInt16BE(OFF_ZONE), orig: readTuple(b, OFF_ORIG_SRC) } }
}

function writeKey(flow: Flow, out: Buffer): void {
  if (flow.family !== FAMILY_IPV4) throw new SyncEncodeError(`family ${String(flow.family)}: only IPv4 is carried`)
  out[OFF_FAMILY] = FAMILY_IPV4
  out[OFF_PROTO] = integer(flow.proto, 0, 0xff, 'proto')
  out.writeUInt16BE(u16(flow.zone, 'zone'), OFF_ZONE)
  out.writeUInt32BE(ipv4ToU32(flow.orig.src), OFF_ORIG_SRC)
  out.writeUInt32BE(ipv4ToU32(flow.orig.dst), OFF_ORIG_DST)
  out.writeUInt16BE(u16(flow.orig.sport, 'orig.sport'), OFF_ORIG_SPORT)
  out.writeUInt16BE(u16(flow.orig.dport, 'orig.dport'), OFF_ORIG_DPORT)
}

// Validation works on the bytes in place, so a frame of 35 records costs no objects.
function keyRecordValid(b: Uint8Array, off: number): boolean {
  return b[off + OFF_FAMILY] === FAMILY_IPV4
}

function flowRecordValid(b: Uint8Array, off: number): boolean {
  const tcpState = b[off + OFF_TCP_STATE]!
  return (
    keyRecordValid(b, off) &&
    tcpState < TCP_STATES.length &&
    (tcpState === 0 || b[off + OFF_PROTO] === PROTO_TCP) &&
    (b[off + OFF_FLOW_FLAGS]! & ~FLOW_FLAGS_KNOWN) === 0 &&
    b[off + OFF_FLOW_RESERVED] === 0 &&
    b[off + OFF_FLOW_RESERVED + 1] === 0
  )
}

function readTuple(b: Buffer, off: number): Flow['orig'] {
  return { src: u32ToIpv4(b.readUInt32BE(off)), dst: u32ToIpv4(b.readUInt32BE(off + 4)), sport: b.readUInt16BE(off + 8), dport: b.readUInt16BE(off + 10) }
}

// ---------------------------------------------------------------------------------
// Sections: one table, indexed by the wire type (as pfsync_acts[] is).

interface SectionCodec<S extends SyncSection = SyncSection> {
  name: S['type']
  recordLength: number // bytes per record; 0: the section has no records (count must be 0)
  count(section: S): number
  /** Reads `count` records at `offset` (the caller checked they are in bounds); null: one is invalid. */
  decode(buf: Buffer, offset: number, count: number): S | null
  /** Writes the records at `offset`; throws SyncEncodeError for a record decode would refuse. */
  encode(section: S, out: Buffer, offset: number): void
}
type Of<T extends SyncSectionType> = Extract<SyncSection, { type: T }>

type FlowSection = Of<'insert'> | Of<'update'>

function flowSection(name: FlowSection['type']): SectionCodec<FlowSection> {
  return {
    name,
    recordLength: FLOW_RECORD_LEN,
    count: (s) => s.records.length,
    decode: (buf, offset, count) => {
      const records = rawRecords(buf, offset, count, FLOW_RECORD_LEN, flowRecordValid)
      return records && { type: name, records }
    },
    encode: (s, out, offset) => copyRecords(s.records, out, offset, FLOW_RECORD_LEN, flowRecordValid),
  }
}

/**
 * A section whose records are u32 fields, named in wire order: `items` lists a
 * section's records as objects of those fields, `make` builds a section from them.
 */
function u32Section<S extends SyncSection>(
  name: S['type'],
  fields: readonly string[],
  items: (section: S) => Record<string, number>[],
  make: (items: Record<string, number>[]) => S,
  valid: (item: Record<string, number>) => boolean = () => true,
): SectionCodec<S> {
  const width = 4 * fields.length
  return {
    name,
    recordLength: width,
    count: (section) => items(section).length,
    decode: (buf, offset, count) => {
      const list: Record<string, number>[] = new Array(count)
      for (let i = 0; i < count; i++) {
        const item: Record<string, number> = {}
        fields.forEach((field, j) => (item[field] = buf.readUInt32BE(offset + i * width + 4 * j)))
        if (!valid(item)) return null
        list[i] = item
      }
      return make(list)
    },
    encode: (section, out, offset) => {
      items(section).forEach((item, i) => {
        if (!valid(item)) throw new SyncEncodeError(`invalid ${name} record ${JSON.stringify(item)}`)
        fields.forEach((field, j) => out.writeUInt32BE(u32(item[field]!, `${name}.${field}`), offset + i * width + 4 * j))
      })
    },
  }
}

/**
 * The section table. Numbers are wire values and never change meaning; a new kind of
 * section gets a new number, and an old peer drops the frame as 'unknownSection'.
 */
const SECTION_CODECS: { readonly [type: number]: SectionCodec | undefined } = {
  1: flowSection('insert'),
  2: flowSection('update'),
  3: {
    name: 'delete',
    recordLength: KEY_RECORD_LEN,
    count: (s) => s.keys.length,
    decode: (buf, offset, count) => {
      const keys = rawRecords(buf, offset, count, KEY_RECORD_LEN, keyRecordValid)
      return keys && { type: 'delete', keys }
    },
    encode: (s, out, offset) => copyRecords(s.keys, out, offset, KEY_RECORD_LEN, keyRecordValid),
  } satisfies SectionCodec<Of<'delete'>>,
  4: { name: 'clear', recordLength: 0, count: () => 0, decode: () => ({ type: 'clear' }), encode: () => {} } satisfies SectionCodec<Of<'clear'>>,
  5: u32Section<Of<'bulkRequest'>>('bulkRequest', ['id'], (s) => s.ids.map((id) => ({ id })), (l) => ({ type: 'bulkRequest', ids: l.map((x) => x.id!) })),
  6: u32Section<Of<'bulkStart'>>('bulkStart', ['id', 'total'], (s) => s.items, (l) => ({ type: 'bulkStart', items: l as Of<'bulkStart'>['items'] })),
  7: u32Section<Of<'bulkEnd'>>('bulkEnd', ['id', 'count'], (s) => s.items, (l) => ({ type: 'bulkEnd', items: l as Of<'bulkEnd'>['items'] })),
  // A range with from > to means nothing; refusing it keeps the sender's loop simple.
  8: u32Section<Of<'ack'>>('ack', ['from', 'to'], (s) => s.ranges, (l) => ({ type: 'ack', ranges: l as Of<'ack'>['ranges'] }), (r) => r.from! <= r.to!),
}

/** Wire type of each section name, derived from the table. */
const SECTION_TYPE = Object.fromEntries(
  Object.entries(SECTION_CODECS).map(([type, codec]) => [codec!.name, Number(type)]),
) as Record<SyncSectionType, number>

/** Bytes per record of each section type (0 for 'clear', which has none). */
export const SECTION_RECORD_LEN = Object.fromEntries(
  Object.values(SECTION_CODECS).map((codec) => [codec!.name, codec!.recordLength]),
) as Readonly<Record<SyncSectionType, number>>

function rawRecords(
  buf: Buffer,
  offset: number,
  count: number,
  length: number,
  valid: (b: Uint8Array, off: number) => boolean,
): Buffer[] | null {
  const records: Buffer[] = new Array(count)
  for (let i = 0; i < count; i++) {
    const at = offset + i * length
    if (!valid(buf, at)) return null
    records[i] = buf.subarray(at, at + length)
  }
  return records
}

function copyRecords(
  records: readonly Uint8Array[],
  out: Buffer,
  offset: number,
  length: number,
  valid: (b: Uint8Array, off: number) => boolean,
): void {
  records.forEach((record, i) => {
    if (record.length !== length || !valid(record, 0)) throw new SyncEncodeError(`invalid ${length}-byte record ${Buffer.from(record).toString('hex')}`)
    out.set(record, offset + i * length)
  })
}

function codecOf(section: SyncSection): SectionCodec {
  return SECTION_CODECS[SECTION_TYPE[section.type]]!
}

// ---------------------------------------------------------------------------------
// Frames

/** The exact length encodeSyncFrame() will produce, HMAC included. */
export function syncFrameLength(frame: SyncFrame): number {
  let length = SYNC_HEADER_LEN + SYNC_HMAC_LEN
  for (const section of frame.sections) {
    const codec = codecOf(section)
    length += SECTION_HEADER_LEN + codec.recordLength * codec.count(section)
  }
  return length
}

/**
 * Encodes and authenticates a frame. Throws SyncEncodeError for a frame the decoder
 * would refuse (too long, u32 fields out of range, content in an ack-only frame,
 * invalid records), since the peer would drop it every time it is sent again.
 */
export function encodeSyncFrame(frame: SyncFrame, key: string): Buffer {
  const length = syncFrameLength(frame)
  if (length > SYNC_MAX_FRAME) throw new SyncEncodeError(`frame of ${length} bytes is over ${SYNC_MAX_FRAME}`)
  const out = Buffer.alloc(length)
  out[OFF_VERSION] = SYNC_VERSION
  out[OFF_FLAGS] = frame.ackOnly ? SYNC_FLAG_ACK_ONLY : 0
  out.writeUInt16BE(length, OFF_LENGTH)
  out.writeUInt32BE(u32(frame.sender, 'sender'), OFF_SENDER)
  out.writeUInt32BE(u32(frame.epoch, 'epoch'), OFF_EPOCH)
  out.writeUInt32BE(u32(frame.seq, 'seq'), OFF_SEQ)
  out.writeUInt32BE(u32(frame.ackEpoch, 'ackEpoch'), OFF_ACK_EPOCH)
  out.writeUInt32BE(u32(frame.ack, 'ack'), OFF_ACK)
  let offset = SYNC_HEADER_LEN
  for (const section of frame.sections) {
    if (frame.ackOnly && section.type !== 'ack') throw new SyncEncodeError(`an ack-only frame cannot carry ${section.type}`)
    const codec = codecOf(section)
    const count = codec.count(section)
    // No section reaches 65535 records inside SYNC_MAX_FRAME (4-byte records: 16,361).
    out[offset + OFF_SECTION_TYPE] = SECTION_TYPE[section.type]
    out.writeUInt16BE(count, offset + OFF_SECTION_COUNT)
    codec.encode(section, out, offset + SECTION_HEADER_LEN)
    offset += SECTION_HEADER_LEN + codec.recordLength * count
  }
  frameHmac(key, out.subarray(0, offset)).copy(out, offset)
  return out
}

/**
 * Decodes one datagram. Never throws: every bad input maps to a SyncDecodeError. The
 * HMAC is checked before any section is parsed. Records in the result are views into
 * `bytes`: the caller must not reuse the datagram's buffer while it keeps them.
 */
export function decodeSyncFrame(bytes: Uint8Array, key: string): SyncDecodeResult {
  if (bytes.length < SYNC_HEADER_LEN + SYNC_HMAC_LEN) return fail('shortPacket')
  const buf = asBuffer(bytes)
  if (buf[OFF_VERSION] !== SYNC_VERSION) return fail('badVersion')
  const flags = buf[OFF_FLAGS]!
  if ((flags & ~SYNC_FLAG_ACK_ONLY) !== 0) return fail('badFlags')
  if (buf.readUInt16BE(OFF_LENGTH) !== buf.length) return fail('badLength')
  if (buf.length > SYNC_MAX_FRAME) return fail('oversized')
  const end = buf.length - SYNC_HMAC_LEN
  if (!timingSafeEqual(frameHmac(key, buf.subarray(0, end)), buf.subarray(end))) return fail('badAuth')

  const ackOnly = (flags & SYNC_FLAG_ACK_ONLY) !== 0
  const sections: SyncSection[] = []
  let offset = SYNC_HEADER_LEN
  while (offset < end) {
    if (end - offset < SECTION_HEADER_LEN) return fail('truncatedSection')
    const codec = SECTION_CODECS[buf[offset + OFF_SECTION_TYPE]!]
    if (!codec) return fail('unknownSection')
    if (buf[offset + OFF_SECTION_RESERVED] !== 0) return fail('badSection')
    const count = buf.readUInt16BE(offset + OFF_SECTION_COUNT)
    // 'clear' has no records: a count would be bytes nobody reads.
    if (codec.recordLength === 0 && count !== 0) return fail('badSection')
    // Reliable content in a frame whose seq is not consumed would never be acknowledged.
    if (ackOnly && codec.name !== 'ack') return fail('badSection')
    const body = offset + SECTION_HEADER_LEN
    if (body + codec.recordLength * count > end) return fail('truncatedSection')
    const section = codec.decode(buf, body, count)
    if (!section) return fail('badRecord')
    sections.push(section)
    offset = body + codec.recordLength * count
  }
  return {
    ok: true,
    frame: {
      ackOnly,
      sender: buf.readUInt32BE(OFF_SENDER),
      epoch: buf.readUInt32BE(OFF_EPOCH),
      seq: buf.readUInt32BE(OFF_SEQ),
      ackEpoch: buf.readUInt32BE(OFF_ACK_EPOCH),
      ack: buf.readUInt32BE(OFF_ACK),
      sections,
    },
  }
}

function frameHmac(key: string, covered: Buffer): Buffer {
  return hmacOf('sha256', key, covered)
}

const fail = (error: SyncDecodeError): SyncDecodeResult => ({ ok: false, error })


// ---------------------------------------------------------------------------------
// Small helpers

const integer = (value: number, min: number, max: number, what: string): number => checkedInteger(value, min, max, what, SyncEncodeError)

const u16 = (value: number, what: string): number => integer(value, 0, 0xffff, what)
const u32 = (value: number, what: string): number => integer(value, 0, 0xffffffff, what)

const IPV4_PART = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/

/** Dotted quad to u32; throws SyncEncodeError for anything else (no leading zeros). */
function ipv4ToU32(address: string): number {
  const parts = address.split('.')
  if (parts.length !== 4 || !parts.every((p) => IPV4_PART.test(p))) throw new SyncEncodeError(`not an IPv4 address: ${JSON.stringify(address)}`)
  return ((Number(parts[0]) << 24) >>> 0) + (Number(parts[1]) << 16) + (Number(parts[2]) << 8) + Number(parts[3])
}

function u32ToIpv4(n: number): string {
  return `${n >>> 24}.${(n >>> 16) & 0xff}.${(n >>> 8) & 0xff}.${n & 0xff}`
}
