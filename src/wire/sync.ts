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
//
// IPv6 flows have records of their own, in sections of their own (types 9-11: an
// older peer drops such a frame as 'unknownSection'): the same fields with 16-byte
// addresses, Family 6. Key record (40 bytes): Family, Proto, Zone (4), original
// source (16), destination (16), source and destination port (4). Flow record (88
// bytes): the key record, reply source (16), destination (16), ports (4), then TCP
// state, flags, reserved, mark and timeout as above (12). In both families those
// last 12 bytes end the record.

import { asBuffer, checkedInteger } from './bytes.js'
import { timingSafeEqual } from 'node:crypto'
import { hmacOf } from './hmac.js'
import { FAMILY_IPV4, FAMILY_IPV6, PROTO_TCP, TCP_STATES, type Flow } from './flow.js'
import { ipv6Bytes, ipv6Groups, ipv6Text } from './ip.js'

export const SYNC_VERSION = 1
export const SYNC_HEADER_LEN = 24
export const SYNC_HMAC_LEN = 32
export const SECTION_HEADER_LEN = 4
export const KEY_RECORD_LEN = 16
export const FLOW_RECORD_LEN = 40
/** The IPv6 records: 16-byte addresses. */
export const KEY6_RECORD_LEN = 40
export const FLOW6_RECORD_LEN = 88
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
// The state, flags, mark and timeout end both records: offsets from the record's end.
const TAIL_LEN = 12
const TAIL_TCP_STATE = 0
const TAIL_FLOW_FLAGS = 1
const TAIL_FLOW_RESERVED = 2
const TAIL_MARK = 4
const TAIL_TIMEOUT = 8

const FLOW_FLAG_SEEN_REPLY = 0x01
const FLOW_FLAG_ASSURED = 0x02
const FLOW_FLAGS_KNOWN = FLOW_FLAG_SEEN_REPLY | FLOW_FLAG_ASSURED

/**
 * One section of a frame. Flow and key records stay raw (subarrays of the decoded
 * datagram, already validated): the engine keeps them as bytes, and 50,000 changes a
 * second should not become 50,000 objects. decodeFlowRecord() turns one into a Flow.
 */
export type SyncSection =
  | { type: 'insert'; records: Buffer[] } // FLOW_RECORD_LEN (FLOW6_RECORD_LEN) each, one family; part of a bulk transfer
  | { type: 'update'; records: Buffer[] } // likewise; a live change
  | { type: 'delete'; keys: Buffer[] } // KEY_RECORD_LEN (KEY6_RECORD_LEN) each, one family
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

/** The key record of a flow (16 bytes, 40 for IPv6): what identifies it in both boards' tables. */
export function encodeKeyRecord(flow: Flow): Buffer {
  const out = Buffer.alloc(flow.family === FAMILY_IPV6 ? KEY6_RECORD_LEN : KEY_RECORD_LEN)
  writeKey(flow, out)
  return out
}

/** The record of a flow (40 bytes, 88 for IPv6). Throws SyncEncodeError for a flow decode would refuse. */
export function encodeFlowRecord(flow: Flow): Buffer {
  const v6 = flow.family === FAMILY_IPV6
  const out = Buffer.alloc(v6 ? FLOW6_RECORD_LEN : FLOW_RECORD_LEN)
  const at = writeKey(flow, out)
  writeTuple(flow.family, flow.reply, 'reply', out, at)
  const tail = out.length - TAIL_LEN
  const tcpState = integer(flow.tcpState, 0, TCP_STATES.length - 1, 'tcpState')
  // conntrack keeps a protocol state only for TCP; any other protocol says NONE.
  if (tcpState !== 0 && flow.proto !== PROTO_TCP) throw new SyncEncodeError(`tcpState ${tcpState} for protocol ${flow.proto}`)
  out[tail + TAIL_TCP_STATE] = tcpState
  out[tail + TAIL_FLOW_FLAGS] = (flow.seenReply ? FLOW_FLAG_SEEN_REPLY : 0) | (flow.assured ? FLOW_FLAG_ASSURED : 0)
  out.writeUInt32BE(integer(flow.mark, 0, 0xffffffff, 'mark'), tail + TAIL_MARK)
  out.writeUInt32BE(integer(flow.timeoutS, 0, 0xffffffff, 'timeoutS'), tail + TAIL_TIMEOUT)
  return out
}

/** The key record inside a flow record (a view, not a copy). */
export function flowKeyRecord(flowRecord: Buffer): Buffer {
  return flowRecord.subarray(0, flowRecord[OFF_FAMILY] === FAMILY_IPV6 ? KEY6_RECORD_LEN : KEY_RECORD_LEN)
}

/** The key inside a flow record as the engine keeps both (latin1 strings). */
export function recordKey(record: string): string {
  return record.slice(0, record.charCodeAt(OFF_FAMILY) === FAMILY_IPV6 ? KEY6_RECORD_LEN : KEY_RECORD_LEN)
}

/** A flow record back to a Flow; never throws. */
export function decodeFlowRecord(buf: Uint8Array): FlowDecodeResult {
  const family = buf[OFF_FAMILY] === FAMILY_IPV6 ? FAMILY_IPV6 : FAMILY_IPV4
  if (buf.length !== flowRecordLength(family) || !flowRecordValid(buf, 0, family)) return { ok: false, error: 'badRecord' }
  const b = asBuffer(buf)
  const tail = b.length - TAIL_LEN
  const flags = b[tail + TAIL_FLOW_FLAGS]!
  const keyLength = family === FAMILY_IPV6 ? KEY6_RECORD_LEN : KEY_RECORD_LEN
  return {
    ok: true,
    flow: {
      family,
      proto: b[OFF_PROTO]!,
      orig: readTuple(b, OFF_ORIG_SRC, family),
      reply: readTuple(b, keyLength, family),
      tcpState: b[tail + TAIL_TCP_STATE]!,
      timeoutS: b.readUInt32BE(tail + TAIL_TIMEOUT),
      mark: b.readUInt32BE(tail + TAIL_MARK),
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
  const tailA = a.length - TAIL_LEN
  const tailB = b.length - TAIL_LEN
  const stageA = TCP_STAGE[a.charCodeAt(tailA + TAIL_TCP_STATE)] ?? 0
  const stageB = TCP_STAGE[b.charCodeAt(tailB + TAIL_TCP_STATE)] ?? 0
  if (stageA !== stageB) return stageA < stageB
  const flagsA = a.charCodeAt(tailA + TAIL_FLOW_FLAGS)
  const flagsB = b.charCodeAt(tailB + TAIL_FLOW_FLAGS)
  return (flagsA & ~flagsB) === 0 && (flagsB & ~flagsA) !== 0
}

/** The identifying part of a key record; reply and state fields are not in it. */
export type FlowKey = Pick<Flow, 'family' | 'proto' | 'zone' | 'orig'>

/** A key record back to its fields; never throws. */
export function decodeKeyRecord(buf: Uint8Array): { ok: true; key: FlowKey } | { ok: false; error: 'badRecord' } {
  const family = buf[OFF_FAMILY] === FAMILY_IPV6 ? FAMILY_IPV6 : FAMILY_IPV4
  if (buf.length !== keyRecordLength(family) || !keyRecordValid(buf, 0, family)) return { ok: false, error: 'badRecord' }
  const b = asBuffer(buf)
  return { ok: true, key: { family, proto: b[OFF_PROTO]!, zone: b.readUInt16BE(OFF_ZONE), orig: readTuple(b, OFF_ORIG_SRC, family) } }
}

const keyRecordLength = (family: Flow['family']): number => (family === FAMILY_IPV6 ? KEY6_RECORD_LEN : KEY_RECORD_LEN)
const flowRecordLength = (family: Flow['family']): number => (family === FAMILY_IPV6 ? FLOW6_RECORD_LEN : FLOW_RECORD_LEN)

/** Writes the key's fields; returns where the key record ends. */
function writeKey(flow: Flow, out: Buffer): number {
  if (flow.family !== FAMILY_IPV4 && flow.family !== FAMILY_IPV6) throw new SyncEncodeError(`family ${String(flow.family)}: only IPv4 and IPv6 are carried`)
  out[OFF_FAMILY] = flow.family
  out[OFF_PROTO] = integer(flow.proto, 0, 0xff, 'proto')
  out.writeUInt16BE(u16(flow.zone, 'zone'), OFF_ZONE)
  return writeTuple(flow.family, flow.orig, 'orig', out, OFF_ORIG_SRC)
}

/** Source, destination, ports at `at`; returns where they end. */
function writeTuple(family: Flow['family'], t: Flow['orig'], what: string, out: Buffer, at: number): number {
  if (family === FAMILY_IPV6) {
    ipv6ToBytes(t.src, `${what}.src`).copy(out, at)
    ipv6ToBytes(t.dst, `${what}.dst`).copy(out, at + 16)
    at += 32
  } else {
    out.writeUInt32BE(ipv4ToU32(t.src), at)
    out.writeUInt32BE(ipv4ToU32(t.dst), at + 4)
    at += 8
  }
  out.writeUInt16BE(u16(t.sport, `${what}.sport`), at)
  out.writeUInt16BE(u16(t.dport, `${what}.dport`), at + 2)
  return at + 4
}

// Validation works on the bytes in place, so a frame of 35 records costs no objects.
function keyRecordValid(b: Uint8Array, off: number, family: Flow['family']): boolean {
  return b[off + OFF_FAMILY] === family
}

function flowRecordValid(b: Uint8Array, off: number, family: Flow['family']): boolean {
  const tail = off + flowRecordLength(family) - TAIL_LEN
  const tcpState = b[tail + TAIL_TCP_STATE]!
  return (
    keyRecordValid(b, off, family) &&
    tcpState < TCP_STATES.length &&
    (tcpState === 0 || b[off + OFF_PROTO] === PROTO_TCP) &&
    (b[tail + TAIL_FLOW_FLAGS]! & ~FLOW_FLAGS_KNOWN) === 0 &&
    b[tail + TAIL_FLOW_RESERVED] === 0 &&
    b[tail + TAIL_FLOW_RESERVED + 1] === 0
  )
}

function readTuple(b: Buffer, off: number, family: Flow['family']): Flow['orig'] {
  if (family === FAMILY_IPV6) {
    return { src: bytesToIpv6(b, off), dst: bytesToIpv6(b, off + 16), sport: b.readUInt16BE(off + 32), dport: b.readUInt16BE(off + 34) }
  }
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

function flowSection(name: FlowSection['type'], family: Flow['family']): SectionCodec<FlowSection> {
  const length = flowRecordLength(family)
  const valid = (b: Uint8Array, off: number) => flowRecordValid(b, off, family)
  return {
    name,
    recordLength: length,
    count: (s) => s.records.length,
    decode: (buf, offset, count) => {
      const records = rawRecords(buf, offset, count, length, valid)
      return records && { type: name, records }
    },
    encode: (s, out, offset) => copyRecords(s.records, out, offset, length, valid),
  }
}

function deleteSection(family: Flow['family']): SectionCodec<Of<'delete'>> {
  const length = keyRecordLength(family)
  const valid = (b: Uint8Array, off: number) => keyRecordValid(b, off, family)
  return {
    name: 'delete',
    recordLength: length,
    count: (s) => s.keys.length,
    decode: (buf, offset, count) => {
      const keys = rawRecords(buf, offset, count, length, valid)
      return keys && { type: 'delete', keys }
    },
    encode: (s, out, offset) => copyRecords(s.keys, out, offset, length, valid),
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
  1: flowSection('insert', FAMILY_IPV4),
  2: flowSection('update', FAMILY_IPV4),
  3: deleteSection(FAMILY_IPV4),
  4: { name: 'clear', recordLength: 0, count: () => 0, decode: () => ({ type: 'clear' }), encode: () => {} } satisfies SectionCodec<Of<'clear'>>,
  5: u32Section<Of<'bulkRequest'>>('bulkRequest', ['id'], (s) => s.ids.map((id) => ({ id })), (l) => ({ type: 'bulkRequest', ids: l.map((x) => x.id!) })),
  6: u32Section<Of<'bulkStart'>>('bulkStart', ['id', 'total'], (s) => s.items, (l) => ({ type: 'bulkStart', items: l as Of<'bulkStart'>['items'] })),
  7: u32Section<Of<'bulkEnd'>>('bulkEnd', ['id', 'count'], (s) => s.items, (l) => ({ type: 'bulkEnd', items: l as Of<'bulkEnd'>['items'] })),
  // A range with from > to means nothing; refusing it keeps the sender's loop simple.
  8: u32Section<Of<'ack'>>('ack', ['from', 'to'], (s) => s.ranges, (l) => ({ type: 'ack', ranges: l as Of<'ack'>['ranges'] }), (r) => r.from! <= r.to!),
  // IPv6 flows: the same sections, each record of one family (see the header).
  9: flowSection('insert', FAMILY_IPV6),
  10: flowSection('update', FAMILY_IPV6),
  11: deleteSection(FAMILY_IPV6),
}

/** The IPv6 wire type of the flow sections, by name. */
const IPV6_TYPE: Partial<Record<SyncSectionType, number>> = { insert: 9, update: 10, delete: 11 }

/** Wire type of each section name, derived from the table (the IPv4 one for flow sections). */
const SECTION_TYPE = Object.fromEntries(
  Object.entries(SECTION_CODECS)
    .filter(([type]) => !Object.values(IPV6_TYPE).includes(Number(type)))
    .map(([type, codec]) => [codec!.name, Number(type)]),
) as Record<SyncSectionType, number>

/** Bytes per record of each section type (0 for 'clear', which has none), IPv4 flows. */
export const SECTION_RECORD_LEN = Object.fromEntries(
  Object.entries(SECTION_TYPE).map(([name, type]) => [name, SECTION_CODECS[type]!.recordLength]),
) as Readonly<Record<SyncSectionType, number>>

/** A section's wire type: a flow section whose first record is IPv6 is of the IPv6 type. */
function wireType(section: SyncSection): number {
  const first = section.type === 'delete' ? section.keys[0] : section.type === 'insert' || section.type === 'update' ? section.records[0] : undefined
  return first?.[OFF_FAMILY] === FAMILY_IPV6 ? IPV6_TYPE[section.type]! : SECTION_TYPE[section.type]
}

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
  return SECTION_CODECS[wireType(section)]!
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
    out[offset + OFF_SECTION_TYPE] = wireType(section)
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

/** IPv6 text (any RFC 4291 form) to its 16 bytes; throws SyncEncodeError for anything else. */
function ipv6ToBytes(address: string, what: string): Buffer {
  if (typeof address !== 'string' || ipv6Groups(address) === null) throw new SyncEncodeError(`${what}: not an IPv6 address: ${JSON.stringify(address)}`)
  return ipv6Bytes(address)
}

/** 16 bytes at `off` as RFC 5952 text, as conntrack prints them. */
function bytesToIpv6(b: Buffer, off: number): string {
  const groups: number[] = new Array(8)
  for (let i = 0; i < 8; i++) groups[i] = b.readUInt16BE(off + 2 * i)
  return ipv6Text(groups)
}
