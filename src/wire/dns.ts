// DNS over UDP, just enough for WAN health probes (RFC 1035; SPEC "Multi-WAN").
// carpd asks each probe target one small question through each WAN and only needs
// to know that an answer to *that* question came back: it never uses the records.
//
//  0  1  2  3  4  5  6  7  8  9 10 11 12 13 14 15
// +--+--+--+--+--+--+--+--+--+--+--+--+--+--+--+--+
// |                      ID                       |  0
// +--+--+--+--+--+--+--+--+--+--+--+--+--+--+--+--+
// |QR|  Opcode   |AA|TC|RD|RA|   Z    |   RCODE   |  2  query: 0x0100 (RD only)
// +--+--+--+--+--+--+--+--+--+--+--+--+--+--+--+--+
// |                    QDCOUNT                    |  4  always 1
// |                    ANCOUNT                    |  6
// |                    NSCOUNT                    |  8
// |                    ARCOUNT                    | 10
// +--+--+--+--+--+--+--+--+--+--+--+--+--+--+--+--+
// /                     QNAME                     / 12  labels: length byte, bytes; 0 ends
// |                     QTYPE                     |     NS (2) for the root by default
// |                     QCLASS                    |     IN (1)
// +--+--+--+--+--+--+--+--+--+--+--+--+--+--+--+--+
// / answers: NAME / TYPE / CLASS / TTL (32) / RDLENGTH / RDATA, ANCOUNT times
//
// A name's length byte has two top bits: 00 = a label of 0..63 bytes follows,
// 11 = a 14-bit pointer to an earlier name in the message (RFC 1035 4.1.4, "message
// compression"); 01 and 10 are not names carpd accepts (RFC 6891 retired 01).
//
// Query for the root's NS records, id 0x1234 (17 bytes):
//   1234 0100 0001 0000 0000 0000 00 0002 0001

export const DNS_TYPE_A = 1
export const DNS_TYPE_NS = 2
export const DNS_CLASS_IN = 1
export const DNS_PORT = 53
export const DNS_HEADER_LEN = 12
/** Standard query with recursion desired: QR 0, opcode 0 (QUERY), RD 1. */
export const DNS_FLAGS_QUERY = 0x0100

/** RFC 1035 2.3.4: a label is at most 63 bytes, a name at most 255 on the wire. */
export const DNS_LABEL_MAX_BYTES = 63
export const DNS_NAME_MAX_BYTES = 255
/**
 * Pointers followed while reading one name. A real name has at most 127 labels, so
 * any honest chain is shorter; a longer one is a loop (a pointer to itself or a
 * cycle) and without a limit it would spin for ever.
 */
export const DNS_POINTER_JUMPS_MAX = 127

const OFF_ID = 0
const OFF_FLAGS = 2
const OFF_QDCOUNT = 4
const OFF_ANCOUNT = 6
const OFF_QUESTION = DNS_HEADER_LEN
/** QTYPE and QCLASS after the question's name. */
const QUESTION_FIXED_LEN = 4
/** TYPE, CLASS, TTL and RDLENGTH after an answer's name. */
const RR_FIXED_LEN = 10
const OFF_RR_RDLENGTH = 8

const FLAG_QR = 0x8000
const OPCODE_MASK = 0x7800
const RCODE_MASK = 0x000f
const LABEL_KIND_MASK = 0xc0
const LABEL_KIND_POINTER = 0xc0
const POINTER_HIGH_MASK = 0x3f
const U16_MAX = 0xffff

/**
 * Why a datagram is not an answer to a probe; each one is a named drop counter.
 * short: the message ends before the header, the question or an answer record does.
 * notResponse: QR is 0 (a query, perhaps our own looped back) or the opcode is not QUERY.
 * badQuestion: not exactly one question, or its class is not IN.
 * badName: a name with a pointer out of the message or in a loop, a label type other
 * than 00/11, or longer than 255 bytes.
 */
export type DnsDecodeError = 'short' | 'notResponse' | 'badQuestion' | 'badName'

export type DnsDecodeResult =
  | { ok: true; id: number; rcode: number; qname: string; qtype: number; answers: number }
  | { ok: false; error: DnsDecodeError }

export type DnsEncodeErrorCode = 'badId' | 'badName' | 'badType'

/** Thrown by encodeQuery on a value that cannot be sent: a bug in the caller, not bad input from the wire. */
export class DnsEncodeError extends Error {
  constructor(
    readonly code: DnsEncodeErrorCode,
    message: string,
  ) {
    super(message)
  }
}

// Bytes a label may hold when carpd writes it: printable ASCII but '.' and '\', so the
// text form of every name carpd sends needs no escapes and reads back the same.
const LABEL_TEXT_RE = /^[\x21-\x2d\x2f-\x5b\x5d-\x7e]{1,63}$/

/** The labels of a name in text form; '.' and '' are the root (no labels). */
function labelsOf(name: string): string[] {
  if (name === '.' || name === '') return []
  const trimmed = name.endsWith('.') ? name.slice(0, -1) : name
  const labels = trimmed.split('.')
  for (const label of labels) {
    if (!LABEL_TEXT_RE.test(label)) {
      throw new DnsEncodeError('badName', `name ${JSON.stringify(name)}: labels of 1..${DNS_LABEL_MAX_BYTES} printable ASCII bytes, no '\\'`)
    }
  }
  return labels
}

/**
 * A standard query (RD set) with one question of class IN. `name` is text such as
 * 'example.com' or 'example.com.'; '.' is the root. Throws DnsEncodeError on an id or
 * type outside 0..65535 or a name that is not a plain host name.
 */
export function encodeQuery(id: number, name = '.', qtype: number = DNS_TYPE_NS): Buffer {
  if (!Number.isInteger(id) || id < 0 || id > U16_MAX) throw new DnsEncodeError('badId', `id ${id}: an integer 0..${U16_MAX}`)
  if (!Number.isInteger(qtype) || qtype < 0 || qtype > U16_MAX) throw new DnsEncodeError('badType', `qtype ${qtype}: an integer 0..${U16_MAX}`)
  const labels = labelsOf(name)
  // Each label costs its length byte; the root's empty label ends the name.
  const nameLen = labels.reduce((n, l) => n + 1 + l.length, 0) + 1
  if (nameLen > DNS_NAME_MAX_BYTES) {
    throw new DnsEncodeError('badName', `name ${JSON.stringify(name)}: ${nameLen} bytes on the wire, at most ${DNS_NAME_MAX_BYTES}`)
  }
  const buf = Buffer.alloc(DNS_HEADER_LEN + nameLen + QUESTION_FIXED_LEN)
  buf.writeUInt16BE(id, OFF_ID)
  buf.writeUInt16BE(DNS_FLAGS_QUERY, OFF_FLAGS)
  buf.writeUInt16BE(1, OFF_QDCOUNT)
  let pos = OFF_QUESTION
  for (const label of labels) {
    buf[pos++] = label.length
    pos += buf.write(label, pos, 'latin1')
  }
  buf[pos++] = 0
  buf.writeUInt16BE(qtype, pos)
  buf.writeUInt16BE(DNS_CLASS_IN, pos + 2)
  return buf
}

type NameResult = { ok: true; name: string; next: number } | { ok: false; error: DnsDecodeError }

/**
 * Reads the name at `offset`, following compression pointers. `next` is where the
 * record goes on: after the first pointer if there was one, else after the final 0.
 * Running off the end is 'short' (a cut datagram); a pointer out of the message, a
 * loop, a reserved label type or an over-long name is 'badName'.
 */
function readName(buf: Buffer, offset: number): NameResult {
  const labels: string[] = []
  let pos = offset
  let next = -1
  let jumps = 0
  let wireLen = 0
  for (;;) {
    if (pos >= buf.length) return { ok: false, error: 'short' }
    const len = buf[pos]!
    const kind = len & LABEL_KIND_MASK
    if (kind === LABEL_KIND_POINTER) {
      if (pos + 1 >= buf.length) return { ok: false, error: 'short' }
      const target = ((len & POINTER_HIGH_MASK) << 8) | buf[pos + 1]!
      if (next < 0) next = pos + 2
      if (++jumps > DNS_POINTER_JUMPS_MAX || target >= buf.length) return { ok: false, error: 'badName' }
      pos = target
      continue
    }
    if (kind !== 0) return { ok: false, error: 'badName' }
    // The length as RFC 1035 counts it: every label with its length byte, and the root.
    wireLen += len + 1
    if (wireLen > DNS_NAME_MAX_BYTES) return { ok: false, error: 'badName' }
    if (len === 0) {
      if (next < 0) next = pos + 1
      return { ok: true, name: labels.length === 0 ? '.' : labels.join('.'), next }
    }
    if (pos + 1 + len > buf.length) return { ok: false, error: 'short' }
    labels.push(labelText(buf, pos + 1, len))
    pos += 1 + len
  }
}

/**
 * A label in master-file text (RFC 1035 5.1, RFC 4343 2.1): '.' and '\' escaped with
 * '\', bytes outside printable ASCII as '\DDD', so two different names never read
 * the same (a label "a.b" is not the two labels "a" and "b").
 */
function labelText(buf: Buffer, start: number, len: number): string {
  let text = ''
  for (let i = start; i < start + len; i++) {
    const b = buf[i]!
    if (b === 0x2e || b === 0x5c) text += '\\' + String.fromCharCode(b)
    else if (b > 0x20 && b < 0x7f) text += String.fromCharCode(b)
    else text += '\\' + b.toString().padStart(3, '0')
  }
  return text
}

/**
 * Decodes a response far enough to match it to a probe: header, the one question and
 * the answer records' framing (names, with compression, and RDLENGTH; RDATA is skipped
 * unread). The authority and additional sections are not read. The rcode is reported,
 * not judged: a resolver that refuses or fails still proved the path. Never throws.
 */
export function decodeResponse(buf: Buffer): DnsDecodeResult {
  if (buf.length < DNS_HEADER_LEN) return { ok: false, error: 'short' }
  const flags = buf.readUInt16BE(OFF_FLAGS)
  if ((flags & FLAG_QR) === 0 || (flags & OPCODE_MASK) !== 0) return { ok: false, error: 'notResponse' }
  if (buf.readUInt16BE(OFF_QDCOUNT) !== 1) return { ok: false, error: 'badQuestion' }
  const q = readName(buf, OFF_QUESTION)
  if (!q.ok) return q
  if (q.next + QUESTION_FIXED_LEN > buf.length) return { ok: false, error: 'short' }
  const qtype = buf.readUInt16BE(q.next)
  if (buf.readUInt16BE(q.next + 2) !== DNS_CLASS_IN) return { ok: false, error: 'badQuestion' }
  const answers = buf.readUInt16BE(OFF_ANCOUNT)
  let pos = q.next + QUESTION_FIXED_LEN
  for (let i = 0; i < answers; i++) {
    const owner = readName(buf, pos)
    if (!owner.ok) return owner
    if (owner.next + RR_FIXED_LEN > buf.length) return { ok: false, error: 'short' }
    pos = owner.next + RR_FIXED_LEN + buf.readUInt16BE(owner.next + OFF_RR_RDLENGTH)
    if (pos > buf.length) return { ok: false, error: 'short' }
  }
  return { ok: true, id: buf.readUInt16BE(OFF_ID), rcode: flags & RCODE_MASK, qname: q.name, qtype, answers }
}
