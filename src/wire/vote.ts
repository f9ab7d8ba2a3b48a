// Vote codec: the datagrams of split-brain protection (SPEC "Split-brain protection").
// A board asks a voter (the witness, or its peer) for a lease on a vhid; the voter
// grants it or denies it, naming whom it has promised. Heartbeats carry a line of text
// for liveness. Every message is authenticated with HMAC-SHA256 under witness.key.
// All integers are big endian.
//
//  0                   1                   2                   3
//  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
// +---------------+---------------+-------------------------------+
// | Version 0x51  |     Kind      |   VHID (1..255; heartbeat 0)  |  0
// +---------------+---------------+-------------------------------+
// |            Sender (first 32 bits of sha256(node name))        |  4
// +---------------------------------------------------------------+
// |      Epoch (random per boot; the witness: its persisted one)  |  8
// +---------------------------------------------------------------+
// |                  Seq (increasing within the epoch)            | 12
// +---------------------------------------------------------------+
// |          Nonce (request: 8 random bytes; grant/deny: the      | 16
// |           request's, echoed; heartbeat: zero)                 |
// +---------------------------------------------------------------+
// |   Subject (grant/deny: the holder the voter promised; else 0) | 24
// +---------------------------------------------------------------+
// |  Lease ms (request: asked; grant: granted; deny: how long the | 28
// |            current promise still runs; heartbeat: 0)          |
// +---------------------------------------------------------------+ 32
// |  Body: request: 4 bytes; grant/deny: none; heartbeat: 1..512  |
// |  bytes of UTF-8 text                                          |
// +---------------------------------------------------------------+ 32 + n
// |             HMAC-SHA256 (32 bytes) over bytes 0 .. 32+n-1     |
// +---------------------------------------------------------------+ 64 + n
//
// Request body:
// +---------------+---------------+---------------+---------------+
// |    Demote     |    AdvBase    |    AdvSkew    |     Flags     | 32
// +---------------+---------------+---------------+---------------+ 36
//   Flags: 0x01 the candidate hears a master's adverts on the LAN (quorum/constants.ts
//   FLAG_HEARS_MASTER); the other bits are sent as 0 and passed up as they came.
//
// Version 0x51 ('Q', for quorum) differs from sync frames' 1 and CARP's 0x21, so one
// socket can tell the three apart by the first byte. There is no length field: the
// kind fixes the length, except for a heartbeat, whose text runs to the HMAC. Fields a
// kind does not use are written as zero and ignored on receipt (like RFC 5798's
// reserved fields): they are inside the HMAC, so only a key holder can set them.

import { asBuffer, checkedInteger } from './bytes.js'
import { timingSafeEqual } from 'node:crypto'
import { hmacOf } from './hmac.js'

export const VOTE_VERSION = 0x51
export const VOTE_HEADER_LEN = 32
export const VOTE_HMAC_LEN = 32
export const VOTE_NONCE_LEN = 8
export const VOTE_REQUEST_BODY_LEN = 4
/** A heartbeat's text, in UTF-8 bytes: a console line, short enough for any MTU. */
export const VOTE_TEXT_MIN_BYTES = 1
export const VOTE_TEXT_MAX_BYTES = 512
/** The longest vote: a heartbeat with the longest text. */
export const VOTE_MAX_BYTES = VOTE_HEADER_LEN + VOTE_TEXT_MAX_BYTES + VOTE_HMAC_LEN

const OFF_VERSION = 0
const OFF_KIND = 1
const OFF_VHID = 2
const OFF_SENDER = 4
const OFF_EPOCH = 8
const OFF_SEQ = 12
const OFF_NONCE = 16
const OFF_SUBJECT = 24
const OFF_LEASE = 28
const OFF_BODY = 32
// Request body, from OFF_BODY.
const OFF_DEMOTE = 0
const OFF_ADVBASE = 1
const OFF_ADVSKEW = 2
const OFF_FLAGS = 3

const VHID_MIN = 1
const VHID_MAX = 255
const U8_MAX = 0xff
const U32_MAX = 0xffffffff

export type VoteKind = 'request' | 'grant' | 'deny' | 'heartbeat'

/** Wire numbers of the kinds; they never change meaning. */
const KIND_CODE: Readonly<Record<VoteKind, number>> = { request: 1, grant: 2, deny: 3, heartbeat: 4 }
const KIND_OF_CODE: readonly (VoteKind | undefined)[] = [undefined, 'request', 'grant', 'deny', 'heartbeat']

/** Every message names its sender and a counter (epoch, seq) for replay protection. */
interface VoteHeader {
  sender: number // senderId(node name) of wire/ids.ts, u32
  epoch: number // u32: random per boot of a board; the witness's persisted epoch
  seq: number // u32, increasing within the epoch
}

/**
 * One vote message. Requests ask for `leaseMs` on `vhid` with a fresh 8-byte `nonce`
 * and say how fit the candidate is (its CARP demote, advbase, advskew, u8 each) and
 * what it sees (`flags`, u8, see the diagram). Grants and
 * denials echo the request's vhid and nonce and name `holder`, the sender id the voter
 * has promised (0 = nobody); `leaseMs` is what was granted, or for a deny how long the
 * promise to `holder` still runs. Heartbeats carry 1..512 bytes of UTF-8 text.
 */
export type VoteMessage =
  | (VoteHeader & { kind: 'request'; vhid: number; nonce: Buffer; leaseMs: number; demote: number; advbase: number; advskew: number; flags: number })
  | (VoteHeader & { kind: 'grant' | 'deny'; vhid: number; nonce: Buffer; holder: number; leaseMs: number })
  | (VoteHeader & { kind: 'heartbeat'; text: string })

/** Why a datagram is not a vote; each one is a named drop counter, checked in this order. */
export type VoteDecodeError = 'shortPacket' | 'oversized' | 'badVersion' | 'badKind' | 'badLength' | 'badVhid' | 'badAuth' | 'badText'

export type VoteDecodeResult = { ok: true; msg: VoteMessage } | { ok: false; error: VoteDecodeError }

/**
 * Thrown by encodeVote() for a message the decoder would refuse (a bug in the caller:
 * the receiver would drop it every time). `code` is stable.
 */
export class VoteEncodeError extends RangeError {
  readonly code = 'voteEncode'
}

/** The exact length encodeVote() produces for `msg`, HMAC included. */
export function voteLength(msg: VoteMessage): number {
  return VOTE_HEADER_LEN + bodyLength(msg) + VOTE_HMAC_LEN
}

function bodyLength(msg: VoteMessage): number {
  switch (msg.kind) {
    case 'request':
      return VOTE_REQUEST_BODY_LEN
    case 'grant':
    case 'deny':
      return 0
    case 'heartbeat':
      return Buffer.byteLength(msg.text, 'utf8')
  }
}

/** Encodes and authenticates a vote. Throws VoteEncodeError for out-of-range fields. */
export function encodeVote(msg: VoteMessage, key: string): Buffer {
  const code = KIND_CODE[msg.kind]
  if (code === undefined) throw new VoteEncodeError(`unknown kind ${String(msg.kind)}`)
  const bodyLen = bodyLength(msg)
  const out = Buffer.alloc(VOTE_HEADER_LEN + bodyLen + VOTE_HMAC_LEN)
  out[OFF_VERSION] = VOTE_VERSION
  out[OFF_KIND] = code
  out.writeUInt32BE(integer(msg.sender, 0, U32_MAX, 'sender'), OFF_SENDER)
  out.writeUInt32BE(integer(msg.epoch, 0, U32_MAX, 'epoch'), OFF_EPOCH)
  out.writeUInt32BE(integer(msg.seq, 0, U32_MAX, 'seq'), OFF_SEQ)
  if (msg.kind === 'heartbeat') {
    if (bodyLen < VOTE_TEXT_MIN_BYTES || bodyLen > VOTE_TEXT_MAX_BYTES) {
      throw new VoteEncodeError(`heartbeat text of ${bodyLen} bytes is not in ${VOTE_TEXT_MIN_BYTES}..${VOTE_TEXT_MAX_BYTES}`)
    }
    out.write(msg.text, OFF_BODY, 'utf8')
  } else {
    out.writeUInt16BE(integer(msg.vhid, VHID_MIN, VHID_MAX, 'vhid'), OFF_VHID)
    if (!Buffer.isBuffer(msg.nonce) || msg.nonce.length !== VOTE_NONCE_LEN) {
      throw new VoteEncodeError(`nonce must be ${VOTE_NONCE_LEN} bytes`)
    }
    msg.nonce.copy(out, OFF_NONCE)
    out.writeUInt32BE(integer(msg.leaseMs, 0, U32_MAX, 'leaseMs'), OFF_LEASE)
    if (msg.kind === 'request') {
      out[OFF_BODY + OFF_DEMOTE] = integer(msg.demote, 0, U8_MAX, 'demote')
      out[OFF_BODY + OFF_ADVBASE] = integer(msg.advbase, 0, U8_MAX, 'advbase')
      out[OFF_BODY + OFF_ADVSKEW] = integer(msg.advskew, 0, U8_MAX, 'advskew')
      out[OFF_BODY + OFF_FLAGS] = integer(msg.flags, 0, U8_MAX, 'flags')
    } else {
      out.writeUInt32BE(integer(msg.holder, 0, U32_MAX, 'holder'), OFF_SUBJECT)
    }
  }
  const end = VOTE_HEADER_LEN + bodyLen
  voteHmac(key, out.subarray(0, end)).copy(out, end)
  return out
}

/**
 * Decodes one datagram. Never throws: every bad input maps to a VoteDecodeError. Only
 * the version, the kind and the datagram's length are read before the HMAC (they are
 * what locates it); the vhid is a single fixed byte pair, refused early so garbage
 * costs no HMAC. Nothing else is read until the HMAC has been checked.
 */
export function decodeVote(bytes: Uint8Array, key: string): VoteDecodeResult {
  if (bytes.length < VOTE_HEADER_LEN + VOTE_HMAC_LEN) return fail('shortPacket')
  if (bytes.length > VOTE_MAX_BYTES) return fail('oversized')
  const buf = asBuffer(bytes)
  if (buf[OFF_VERSION] !== VOTE_VERSION) return fail('badVersion')
  const kind = KIND_OF_CODE[buf[OFF_KIND]!]
  if (kind === undefined) return fail('badKind')
  const bodyLen = buf.length - VOTE_HEADER_LEN - VOTE_HMAC_LEN
  if (!lengthFits(kind, bodyLen)) return fail('badLength')
  const vhid = buf.readUInt16BE(OFF_VHID)
  // A heartbeat is about the pair, not one vhid; any other kind names exactly one.
  if (kind === 'heartbeat' ? vhid !== 0 : vhid < VHID_MIN || vhid > VHID_MAX) return fail('badVhid')
  const end = VOTE_HEADER_LEN + bodyLen
  if (!timingSafeEqual(voteHmac(key, buf.subarray(0, end)), buf.subarray(end))) return fail('badAuth')

  const header = { sender: buf.readUInt32BE(OFF_SENDER), epoch: buf.readUInt32BE(OFF_EPOCH), seq: buf.readUInt32BE(OFF_SEQ) }
  // Copied out, so a message kept in a lease table does not pin the datagram.
  const nonce = Buffer.from(buf.subarray(OFF_NONCE, OFF_NONCE + VOTE_NONCE_LEN))
  const leaseMs = buf.readUInt32BE(OFF_LEASE)
  switch (kind) {
    case 'request':
      return {
        ok: true,
        msg: {
          ...header,
          kind,
          vhid,
          nonce,
          leaseMs,
          demote: buf[OFF_BODY + OFF_DEMOTE]!,
          advbase: buf[OFF_BODY + OFF_ADVBASE]!,
          advskew: buf[OFF_BODY + OFF_ADVSKEW]!,
          flags: buf[OFF_BODY + OFF_FLAGS]!,
        },
      }
    case 'grant':
    case 'deny':
      return { ok: true, msg: { ...header, kind, vhid, nonce, holder: buf.readUInt32BE(OFF_SUBJECT), leaseMs } }
    case 'heartbeat': {
      // Only UTF-8: replacing bad bytes with U+FFFD (3 bytes each) made a text that no
      // longer fits a heartbeat, so decode(encode(x)) broke (found by the fuzzer).
      const text = utf8(buf.subarray(OFF_BODY, end))
      return text === null ? fail('badText') : { ok: true, msg: { ...header, kind, text } }
    }
  }
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true })

function utf8(bytes: Uint8Array): string | null {
  try {
    return strictUtf8.decode(bytes)
  } catch {
    return null
  }
}

/** The 64-bit replay counter of a message, epoch << 32 | seq, for ReplayWindow.check(). */
export function voteCounter(msg: { epoch: number; seq: number }): bigint {
  return (BigInt(msg.epoch >>> 0) << 32n) | BigInt(msg.seq >>> 0)
}

function lengthFits(kind: VoteKind, bodyLen: number): boolean {
  switch (kind) {
    case 'request':
      return bodyLen === VOTE_REQUEST_BODY_LEN
    case 'grant':
    case 'deny':
      return bodyLen === 0
    case 'heartbeat':
      return bodyLen >= VOTE_TEXT_MIN_BYTES // the upper bound is VOTE_MAX_BYTES, checked first
  }
}

function voteHmac(key: string, covered: Buffer): Buffer {
  return hmacOf('sha256', key, covered)
}

const integer = (value: number, min: number, max: number, what: string): number => checkedInteger(value, min, max, what, VoteEncodeError)

const fail = (error: VoteDecodeError): VoteDecodeResult => ({ ok: false, error })
