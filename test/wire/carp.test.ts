import t from 'tap'
import { randomBytes } from 'node:crypto'
import {
  CARP_HEADER_LEN,
  carpHmac,
  carpHmacValid,
  decodeCarp,
  encodeCarp,
  ipv4ToUint32,
  type CarpAdvert,
} from '../../src/wire/carp.js'
import { internetChecksum } from '../../src/wire/checksum.js'

// Vectors computed independently (Python's hmac/struct, RFC 1071 checksum by hand).
const V1 = {
  advert: { vhid: 1, advskew: 100, demote: 0, advbase: 1, counter: 0x1122334455667788n },
  pass: 'secret',
  vips: ['192.0.2.1'],
  hmac: 'eaab758daf31964f2e4b91197a863a3c06aa842c',
  bytes: '210164070001c4e81122334455667788eaab758daf31964f2e4b91197a863a3c06aa842c',
}
const V2 = {
  advert: { vhid: 42, advskew: 0, demote: 128, advbase: 0, counter: 0xdeadbeef00000001n },
  pass: 'correct horse',
  vips: ['198.51.100.7', '192.0.2.9'], // unsorted on purpose: the HMAC sorts them
  hmac: '1138567dda75966181c9635dae5939e059cc8fdd',
  bytes: '212a000780003198deadbeef000000011138567dda75966181c9635dae5939e059cc8fdd',
}

for (const v of [V1, V2]) {
  t.test(`vector vhid ${v.advert.vhid}: byte-exact encode, decode, HMAC`, async (t) => {
    const hmac = carpHmac(v.pass, v.advert.vhid, v.vips, v.advert.counter)
    t.equal(hmac.toString('hex'), v.hmac)
    const bytes = encodeCarp({ ...v.advert, hmac })
    t.equal(bytes.length, CARP_HEADER_LEN)
    t.equal(bytes.toString('hex'), v.bytes)
    const back = decodeCarp(Buffer.from(v.bytes, 'hex'))
    t.ok(back.ok)
    if (!back.ok) return
    t.same({ ...back.advert, hmac: Buffer.from(back.advert.hmac).toString('hex') }, { ...v.advert, hmac: v.hmac })
    t.ok(carpHmacValid(back.advert, v.pass, v.vips))
    t.ok(carpHmacValid(back.advert, v.pass, [...v.vips].reverse()), 'VIP order does not matter')
    t.notOk(carpHmacValid(back.advert, v.pass + 'x', v.vips), 'wrong password')
    t.notOk(carpHmacValid(back.advert, v.pass, ['203.0.113.1']), 'other VIPs')
  })
}

const good = (): Buffer => Buffer.from(V1.bytes, 'hex')
/** Changes one byte and fixes the checksum, to reach the check after it. */
function withByte(offset: number, value: number, fixChecksum = true): Buffer {
  const b = good()
  b[offset] = value
  if (!fixChecksum) return b
  b.writeUInt16BE(0, 6)
  b.writeUInt16BE(internetChecksum(b), 6)
  return b
}

t.test('every decoder drop reason', async (t) => {
  const cases: [string, Buffer, string][] = [
    ['empty', Buffer.alloc(0), 'shortPacket'],
    ['truncated', good().subarray(0, 35), 'shortPacket'],
    ['oversized', Buffer.concat([good(), Buffer.from([0])]), 'oversized'],
    ['wrong version', withByte(0, 0x31), 'badVersion'],
    ['wrong type', withByte(0, 0x22), 'badType'],
    ['wrong authlen', withByte(3, 6), 'badAuthLen'],
    ['vhid 0', withByte(1, 0), 'badVhid'],
    ['bad checksum', withByte(20, 0x00, false), 'badChecksum'],
    ['flipped checksum', withByte(6, 0x00, false), 'badChecksum'],
  ]
  for (const [name, bytes, error] of cases) {
    t.same(decodeCarp(bytes), { ok: false, error }, name)
  }
})

t.test('garbage never throws and never decodes by accident', async (t) => {
  let accepted = 0
  for (let i = 0; i < 5000; i++) {
    const len = i % 3 === 0 ? CARP_HEADER_LEN : i % 80
    const r = decodeCarp(randomBytes(len))
    if (r.ok) accepted++
  }
  // Random 36-byte buffers pass version+type+authlen+checksum about 1 in 2^32.
  t.equal(accepted, 0)
})

t.test('decode reads a view into a larger buffer correctly', async (t) => {
  const big = Buffer.concat([Buffer.alloc(7), good(), Buffer.alloc(5)])
  const r = decodeCarp(big.subarray(7, 7 + CARP_HEADER_LEN))
  t.ok(r.ok)
  if (r.ok) t.equal(r.advert.counter, V1.advert.counter)
})

t.test('HMAC check is false, not an exception, for a short MAC', async (t) => {
  const advert: CarpAdvert = { ...V1.advert, hmac: new Uint8Array(3) }
  t.notOk(carpHmacValid(advert, 'secret', V1.vips))
})

t.test('ipv4ToUint32', async (t) => {
  t.equal(ipv4ToUint32('0.0.0.0'), 0)
  t.equal(ipv4ToUint32('255.255.255.255'), 0xffffffff)
  t.equal(ipv4ToUint32('192.0.2.1'), 0xc0000201)
})
