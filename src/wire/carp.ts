// CARP advertisement codec (carp(4), OpenBSD sys/netinet/ip_carp.h), carried as the
// payload of a UDP datagram instead of IP protocol 112 so that carpd needs no raw
// socket (SPEC "CARP behaviour").
//
//  0                   1                   2                   3
//  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
// +-------+-------+---------------+---------------+---------------+
// |Version| Type  |     VHID      |    AdvSkew    |    AuthLen    |  0
// +-------+-------+---------------+---------------+---------------+
// |    Demote     |    AdvBase    |           Checksum            |  4
// +---------------+---------------+-------------------------------+
// |                   Counter (64 bits, big endian)               |  8
// |          high 32 bits: boot epoch, low 32 bits: sequence      |
// +---------------------------------------------------------------+
// |                                                               | 16
// |                  HMAC-SHA1 (20 bytes)                         |
// |          over version, type, vhid, sorted VIPs, counter       |
// |                                                               |
// +---------------------------------------------------------------+ 36
//
// AuthLen is 7: the counter and the HMAC in 32-bit words, as ip_carp.c sets it.
// The checksum is the Internet checksum of all 36 bytes with the field zeroed.

import { timingSafeEqual } from 'node:crypto'
import { internetChecksum } from './checksum.js'
import { PreparedHmac } from './hmac.js'
import { ipv4ToUint32, ipv6Bytes, isIpv6 } from './ip.js'

export const CARP_VERSION = 2
export const CARP_TYPE_ADVERTISEMENT = 1
export const CARP_AUTHLEN = 7
export const CARP_HEADER_LEN = 36
export const CARP_HMAC_LEN = 20

const OFF_VERSION_TYPE = 0
const OFF_VHID = 1
const OFF_ADVSKEW = 2
const OFF_AUTHLEN = 3
const OFF_DEMOTE = 4
const OFF_ADVBASE = 5
const OFF_CHECKSUM = 6
const OFF_COUNTER = 8
const OFF_HMAC = 16

/** A decoded advertisement; the HMAC is checked separately (it needs the vhid's key). */
export interface CarpAdvert {
  vhid: number // 1..255
  advskew: number // 0..255 (255 with advbase 255 = bow-out)
  demote: number // 0..255, the sender's demotion counter
  advbase: number // seconds, 0..255
  counter: bigint // 64 bits: boot epoch << 32 | sequence
  hmac: Uint8Array // 20 bytes
}

/** Why a datagram is not a CARP advertisement; each one is a named drop counter. */
export type CarpDecodeError =
  | 'shortPacket'
  | 'oversized'
  | 'badVersion'
  | 'badType'
  | 'badAuthLen'
  | 'badVhid'
  | 'badChecksum'

export type CarpDecodeResult = { ok: true; advert: CarpAdvert } | { ok: false; error: CarpDecodeError }

/** Encodes an advertisement whose HMAC is already computed (see carpHmac). */
export function encodeCarp(advert: CarpAdvert): Buffer {
  // From the shared pool (every byte is written below): no allocation of its own per advert.
  const out = Buffer.allocUnsafe(CARP_HEADER_LEN)
  out[OFF_VERSION_TYPE] = (CARP_VERSION << 4) | CARP_TYPE_ADVERTISEMENT
  out[OFF_VHID] = advert.vhid
  out[OFF_ADVSKEW] = advert.advskew
  out[OFF_AUTHLEN] = CARP_AUTHLEN
  out[OFF_DEMOTE] = advert.demote
  out[OFF_ADVBASE] = advert.advbase
  out.writeBigUInt64BE(BigInt.asUintN(64, advert.counter), OFF_COUNTER)
  out.set(advert.hmac.subarray(0, CARP_HMAC_LEN), OFF_HMAC)
  out.writeUInt16BE(0, OFF_CHECKSUM)
  out.writeUInt16BE(internetChecksum(out), OFF_CHECKSUM)
  return out
}

/** Decodes one UDP payload. Never throws: every bad input maps to a CarpDecodeError. */
export function decodeCarp(bytes: Uint8Array): CarpDecodeResult {
  if (bytes.length < CARP_HEADER_LEN) return { ok: false, error: 'shortPacket' }
  if (bytes.length > CARP_HEADER_LEN) return { ok: false, error: 'oversized' }
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  if (buf[OFF_VERSION_TYPE]! >> 4 !== CARP_VERSION) return { ok: false, error: 'badVersion' }
  if ((buf[OFF_VERSION_TYPE]! & 0x0f) !== CARP_TYPE_ADVERTISEMENT) return { ok: false, error: 'badType' }
  if (buf[OFF_AUTHLEN] !== CARP_AUTHLEN) return { ok: false, error: 'badAuthLen' }
  if (buf[OFF_VHID] === 0) return { ok: false, error: 'badVhid' }
  if (internetChecksum(buf) !== 0) return { ok: false, error: 'badChecksum' }
  return {
    ok: true,
    advert: {
      vhid: buf[OFF_VHID]!,
      advskew: buf[OFF_ADVSKEW]!,
      demote: buf[OFF_DEMOTE]!,
      advbase: buf[OFF_ADVBASE]!,
      counter: buf.readBigUInt64BE(OFF_COUNTER),
      hmac: new Uint8Array(buf.subarray(OFF_HMAC, OFF_HMAC + CARP_HMAC_LEN)),
    },
  }
}

/**
 * HMAC-SHA1 keyed by the vhid's password over version, type, vhid, the IPv4 VIPs sorted
 * numerically (4 bytes each), then the IPv6 VIPs sorted bytewise (16 bytes each), and
 * the counter, as carp_hmac_prepare() does. Binding
 * the VIPs means two pairs that share a password but not addresses ignore each other.
 * Prepared once per vhid (key pads and the fixed part of the message): an advert
 * then costs two one-shot hashes.
 */
export class CarpAuth {
  private readonly hmac: PreparedHmac
  /** Version, type, vhid and the sorted VIPs: the same in every advert. */
  private readonly fixed: Buffer
  private readonly counter = Buffer.alloc(8)

  constructor(pass: string, vhid: number, vips: readonly string[]) {
    this.hmac = new PreparedHmac('sha1', pass)
    const v4 = vips.filter((a) => !isIpv6(a)).map(ipv4ToUint32).sort((a, b) => a - b)
    const v6 = vips.filter(isIpv6).map(ipv6Bytes).sort(Buffer.compare)
    this.fixed = Buffer.alloc(3 + v4.length * 4 + v6.length * 16)
    this.fixed.set([CARP_VERSION, CARP_TYPE_ADVERTISEMENT, vhid])
    v4.forEach((addr, i) => this.fixed.writeUInt32BE(addr, 3 + i * 4))
    v6.forEach((addr, i) => this.fixed.set(addr, 3 + v4.length * 4 + i * 16))
  }

  sign(counter: bigint): Buffer {
    this.counter.writeBigUInt64BE(BigInt.asUintN(64, counter))
    return this.hmac.sign(this.fixed, this.counter)
  }

  /** Constant-time check of an advert's HMAC (no early exit on the first differing byte). */
  valid(advert: CarpAdvert): boolean {
    const want = this.sign(advert.counter)
    return advert.hmac.length === want.length && timingSafeEqual(advert.hmac, want)
  }
}

/** One advert's HMAC, unprepared (tests and one-off checks). */
export function carpHmac(pass: string, vhid: number, vips: readonly string[], counter: bigint): Buffer {
  return new CarpAuth(pass, vhid, vips).sign(counter)
}

/** The same check, unprepared. */
export function carpHmacValid(advert: CarpAdvert, pass: string, vips: readonly string[]): boolean {
  return new CarpAuth(pass, advert.vhid, vips).valid(advert)
}

export { ipv4ToUint32 }
