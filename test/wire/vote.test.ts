import t from 'tap'
import { createHmac } from 'node:crypto'
import { senderId } from '../../src/wire/ids.js'
import {
  VOTE_HEADER_LEN,
  VOTE_HMAC_LEN,
  VOTE_MAX_BYTES,
  VOTE_TEXT_MAX_BYTES,
  VOTE_VERSION,
  VoteEncodeError,
  type VoteMessage,
  decodeVote,
  encodeVote,
  voteCounter,
  voteLength,
} from '../../src/wire/vote.js'
import { prng } from '../helpers/prng.js'

const KEY = 'witness secret'

// Vectors computed independently with a short Python script (struct.pack('>BBHIII',
// ...) of the documented layout, hashlib.sha256 for the sender ids,
// hmac.new(b'witness secret', msg, hashlib.sha256)), not with this codec.
const SENDER_A = 0xb251c07e // senderId('fw-a')
const SENDER_B = 0x68c59148 // senderId('fw-b')
const WITNESS = 0xba1c566a // senderId('witness')
const NONCE = Buffer.from('0102030405060708', 'hex')
const REQUEST_HEX =
  '51010001b251c07e112233440000000701020304050607080000000000000bb800010a01' +
  '6c891929328460cdf0d8ddbcc6da9d1a37c46b2fd2cfd975950a3818adbbedf1'
const GRANT_HEX =
  '51020001ba1c566a00000005000000010102030405060708b251c07e00000bb8' +
  '641b98148ad2b7c6c2ef0109df742d7cf5e624fba997b4761d892a816ad28380'
const DENY_HEX =
  '510300ffba1c566a0000000500000002a1a2a3a4a5a6a7a868c5914800000cd0' +
  '705ee6391d44061e1b04ea0120da69be702ab26cd402efdf26436632899a82a5'
const HEARTBEAT_HEX =
  '5104000068c59148cafef00d0000002a0000000000000000000000000000000066772d62206f6b20e2809420766869642031204241434b5550' +
  'd921d3adddc87e3d4719a2d15367f31d25467643cce55866ec57b7a9f45df51c'

const REQUEST: VoteMessage = {
  kind: 'request',
  sender: SENDER_A,
  epoch: 0x11223344,
  seq: 7,
  vhid: 1,
  nonce: NONCE,
  leaseMs: 3000,
  demote: 0,
  advbase: 1,
  advskew: 10,
  flags: 1,
}
const GRANT: VoteMessage = { kind: 'grant', sender: WITNESS, epoch: 5, seq: 1, vhid: 1, nonce: NONCE, holder: SENDER_A, leaseMs: 3000 }
const DENY: VoteMessage = {
  kind: 'deny',
  sender: WITNESS,
  epoch: 5,
  seq: 2,
  vhid: 255,
  nonce: Buffer.from('a1a2a3a4a5a6a7a8', 'hex'),
  holder: SENDER_B,
  leaseMs: 3280,
}
const HEARTBEAT: VoteMessage = { kind: 'heartbeat', sender: SENDER_B, epoch: 0xcafef00d, seq: 42, text: 'fw-b ok — vhid 1 BACKUP' }

const VECTORS: [string, VoteMessage, string][] = [
  ['request', REQUEST, REQUEST_HEX],
  ['grant', GRANT, GRANT_HEX],
  ['deny', DENY, DENY_HEX],
  ['heartbeat', HEARTBEAT, HEARTBEAT_HEX],
]


function bytesFrom(rand: () => number, length: number): Buffer {
  const out = Buffer.alloc(length)
  for (let i = 0; i < length; i++) out[i] = Math.floor(rand() * 256)
  return out
}

/** Replaces the HMAC of a (possibly edited) datagram, to reach the checks after it. */
function resign(buf: Buffer, key = KEY): Buffer {
  const end = buf.length - VOTE_HMAC_LEN
  const out = Buffer.from(buf)
  createHmac('sha256', key).update(out.subarray(0, end)).digest().copy(out, end)
  return out
}

t.test('the sender ids of the vectors are senderId() of their names', async (t) => {
  t.equal(senderId('fw-a'), SENDER_A)
  t.equal(senderId('fw-b'), SENDER_B)
  t.equal(senderId('witness'), WITNESS)
})

t.test('byte-exact vectors for every kind, both ways', async (t) => {
  for (const [name, msg, hex] of VECTORS) {
    const bytes = encodeVote(msg, KEY)
    t.equal(bytes.toString('hex'), hex, `${name} encodes to the vector`)
    t.equal(bytes.length, voteLength(msg), `${name} length`)
    t.equal(bytes[0], VOTE_VERSION)
    t.same(decodeVote(Buffer.from(hex, 'hex'), KEY), { ok: true, msg }, `${name} decodes from the vector`)
  }
  t.equal(encodeVote(REQUEST, KEY).length, 68)
  t.equal(encodeVote(GRANT, KEY).length, 64)
  t.equal(VOTE_MAX_BYTES, 576)
})

t.test('decode accepts a Uint8Array view and copies the nonce out', async (t) => {
  const bytes = Buffer.from(GRANT_HEX, 'hex')
  const backing = new Uint8Array(bytes.length + 8)
  backing.set(bytes, 4)
  const view = new Uint8Array(backing.buffer, 4, bytes.length)
  const r = decodeVote(view, KEY)
  t.ok(r.ok)
  if (!r.ok || r.msg.kind !== 'grant') return
  backing.fill(0)
  t.equal(r.msg.nonce.toString('hex'), '0102030405060708', 'not a view into the datagram')
})

t.test('round trips: extremes of every field', async (t) => {
  const u32 = 0xffffffff
  const msgs: VoteMessage[] = [
    { ...REQUEST, sender: u32, epoch: u32, seq: u32, vhid: 255, leaseMs: u32, demote: 255, advbase: 255, advskew: 255, flags: 255 },
    { ...REQUEST, sender: 0, epoch: 0, seq: 0, vhid: 1, leaseMs: 0, demote: 0, advbase: 0, advskew: 0, flags: 0, nonce: Buffer.alloc(8) },
    { ...GRANT, holder: u32, leaseMs: u32 },
    { ...DENY, holder: 0, leaseMs: 0 },
    { ...HEARTBEAT, text: 'x' },
    { ...HEARTBEAT, text: 'é'.repeat(VOTE_TEXT_MAX_BYTES / 2) },
    { ...HEARTBEAT, text: 'y'.repeat(VOTE_TEXT_MAX_BYTES) },
  ]
  for (const msg of msgs) {
    const bytes = encodeVote(msg, 'another key')
    t.same(decodeVote(bytes, 'another key'), { ok: true, msg }, `${msg.kind} ${bytes.length} bytes`)
  }
  t.equal(encodeVote(msgs[6]!, KEY).length, VOTE_MAX_BYTES)
})

t.test('fields a kind does not use are written as zero and ignored on receipt', async (t) => {
  const hb = encodeVote(HEARTBEAT, KEY)
  t.same(hb.subarray(16, 32), Buffer.alloc(16), 'heartbeat: nonce, subject and lease are zero')
  t.same(encodeVote(REQUEST, KEY).subarray(24, 28), Buffer.alloc(4), 'request: subject is zero')
  const edited = Buffer.from(hb)
  edited.fill(0xee, 16, 32)
  t.same(decodeVote(resign(edited), KEY), { ok: true, msg: HEARTBEAT })
  const req = Buffer.from(REQUEST_HEX, 'hex')
  req.writeUInt32BE(0xdeadbeef, 24)
  t.same(decodeVote(resign(req), KEY), { ok: true, msg: REQUEST })
})

t.test('invalid UTF-8 in an authenticated heartbeat is refused as badText (no throw): it could not be encoded again', async (t) => {
  const hb = Buffer.from(encodeVote({ ...HEARTBEAT, text: 'ab' }, KEY))
  hb[VOTE_HEADER_LEN] = 0xff
  t.same(decodeVote(resign(hb), KEY), { ok: false, error: 'badText' })
  const ok = decodeVote(encodeVote({ ...HEARTBEAT, text: 'é'.repeat(256) }, KEY), KEY)
  t.ok(ok.ok && ok.msg.kind === 'heartbeat' && ok.msg.text === 'é'.repeat(256), 'valid UTF-8 up to 512 bytes decodes')
})

t.test('every decode error', async (t) => {
  const grant = Buffer.from(GRANT_HEX, 'hex')
  const edit = (f: (b: Buffer) => void, sign = true): Buffer => {
    const b = Buffer.from(grant)
    f(b)
    return sign ? resign(b) : b
  }
  const cases: [string, Buffer, string][] = [
    ['empty', Buffer.alloc(0), 'shortPacket'],
    ['one byte short of the smallest vote', grant.subarray(0, 63), 'shortPacket'],
    ['one byte over the largest', Buffer.concat([encodeVote({ ...HEARTBEAT, text: 'y'.repeat(512) }, KEY), Buffer.alloc(1)]), 'oversized'],
    ['sync frame version', edit((b) => (b[0] = 1)), 'badVersion'],
    ['CARP version/type', edit((b) => (b[0] = 0x21)), 'badVersion'],
    ['kind 0', edit((b) => (b[1] = 0)), 'badKind'],
    ['kind 5', edit((b) => (b[1] = 5)), 'badKind'],
    ['kind 255', edit((b) => (b[1] = 255)), 'badKind'],
    ['grant with a body', resign(Buffer.concat([grant.subarray(0, 32), Buffer.alloc(4), grant.subarray(32)])), 'badLength'],
    ['request without its body', edit((b) => (b[1] = 1)), 'badLength'],
    ['request with a longer body', resign(Buffer.concat([Buffer.from(REQUEST_HEX, 'hex'), Buffer.alloc(1)])), 'badLength'],
    ['heartbeat without text', edit((b) => (b[1] = 4)), 'badLength'],
    ['grant for vhid 0', edit((b) => b.writeUInt16BE(0, 2)), 'badVhid'],
    ['grant for vhid 256', edit((b) => b.writeUInt16BE(256, 2)), 'badVhid'],
    ['heartbeat naming a vhid', resign(Buffer.from(HEARTBEAT_HEX, 'hex').fill(1, 3, 4)), 'badVhid'],
    ['wrong key', Buffer.from(GRANT_HEX, 'hex'), 'badAuth:other key'],
    ['last bit of the HMAC flipped', edit((b) => (b[63] ^= 1), false), 'badAuth'],
  ]
  for (const [what, bytes, want] of cases) {
    const [error, otherKey] = want.split(':')
    t.same(decodeVote(bytes, otherKey === undefined ? KEY : 'other key'), { ok: false, error }, what)
  }
})

t.test('the vhid is checked before the HMAC, the HMAC before anything else', async (t) => {
  // A vhid out of range costs no HMAC, whatever the key.
  const bad = Buffer.from(GRANT_HEX, 'hex')
  bad.writeUInt16BE(0, 2)
  t.same(decodeVote(bad, 'wrong key'), { ok: false, error: 'badVhid' })
  // The fields after the header (subject, lease, body) are only read under a good HMAC.
  const forged = Buffer.from(REQUEST_HEX, 'hex')
  forged.writeUInt32BE(1, 28)
  t.same(decodeVote(forged, KEY), { ok: false, error: 'badAuth' })
})

t.test('truncation at every length never decodes', async (t) => {
  for (const [name, msg] of VECTORS) {
    const bytes = encodeVote(msg, KEY)
    for (let len = 0; len < bytes.length; len++) {
      const r = decodeVote(bytes.subarray(0, len), KEY)
      if (r.ok) t.fail(`${name} cut to ${len} bytes decoded`)
      else if (len < 64) t.equal(r.error, 'shortPacket', `${name} cut to ${len}`)
      else t.ok(['badLength', 'badAuth'].includes(r.error), `${name} cut to ${len}: ${r.error}`)
    }
  }
})

t.test('every single bit flip fails', async (t) => {
  for (const [name, msg] of VECTORS) {
    const bytes = encodeVote(msg, KEY)
    let failed = 0
    for (let bit = 0; bit < bytes.length * 8; bit++) {
      const flipped = Buffer.from(bytes)
      flipped[bit >> 3]! ^= 1 << (bit & 7)
      const r = decodeVote(flipped, KEY)
      if (!r.ok) failed++
      // Bits after the version, kind and vhid can only fail authentication.
      if (!r.ok && bit >= 32) t.equal(r.error, 'badAuth', `${name} bit ${bit}`)
    }
    t.equal(failed, bytes.length * 8, `${name}: all ${bytes.length * 8} flips refused`)
  }
})

t.test('decode never throws on 10,000 random buffers (seeded)', async (t) => {
  const rand = prng(0x5157)
  const seen = new Map<string, number>()
  for (let i = 0; i < 10_000; i++) {
    const len = Math.floor(rand() * (VOTE_MAX_BYTES + 40))
    const buf = bytesFrom(rand, len)
    // Steer half of them past the first checks, so later ones are reached too.
    if (len > 3 && rand() < 0.5) {
      buf[0] = VOTE_VERSION
      buf[1] = 1 + Math.floor(rand() * 4)
      buf[2] = 0
    }
    // A quarter carry a valid HMAC: what follows authentication must not throw either.
    const bytes = len >= 64 && rand() < 0.25 ? resign(buf) : buf
    let r
    try {
      r = decodeVote(bytes, KEY)
    } catch (err) {
      t.fail(`buffer ${i} threw ${String(err)}: ${bytes.toString('hex')}`)
      continue
    }
    const outcome = r.ok ? `ok ${r.msg.kind}` : r.error
    seen.set(outcome, (seen.get(outcome) ?? 0) + 1)
  }
  t.ok(seen.get('shortPacket'), 'short ones seen')
  t.ok(seen.get('badAuth'), 'unauthenticated ones seen')
  t.ok(seen.get('badText') || seen.get('ok heartbeat'), 'signed random heartbeats reach the text check (random bytes are rarely UTF-8: badText)')
  t.ok(seen.get('ok request'), 'signed random requests decode')
  t.comment(JSON.stringify(Object.fromEntries(seen)))
})

t.test('encode refuses what decode would refuse, with a stable code', async (t) => {
  const bad: [string, VoteMessage][] = [
    ['vhid 0', { ...GRANT, vhid: 0 }],
    ['vhid 256', { ...REQUEST, vhid: 256 }],
    ['vhid 1.5', { ...REQUEST, vhid: 1.5 }],
    ['sender -1', { ...GRANT, sender: -1 }],
    ['epoch 2^32', { ...GRANT, epoch: 2 ** 32 }],
    ['seq NaN', { ...HEARTBEAT, seq: NaN }],
    ['short nonce', { ...GRANT, nonce: Buffer.alloc(7) }],
    ['long nonce', { ...REQUEST, nonce: Buffer.alloc(9) }],
    ['nonce not a Buffer', { ...REQUEST, nonce: new Uint8Array(8) as Buffer }],
    ['holder 2^32', { ...DENY, holder: 2 ** 32 }],
    ['lease -1', { ...DENY, leaseMs: -1 }],
    ['demote 256', { ...REQUEST, demote: 256 }],
    ['advbase -1', { ...REQUEST, advbase: -1 }],
    ['advskew 300', { ...REQUEST, advskew: 300 }],
    ['flags 256', { ...REQUEST, flags: 256 }],
    ['empty text', { ...HEARTBEAT, text: '' }],
    ['text over 512 bytes', { ...HEARTBEAT, text: 'é'.repeat(257) }],
    ['unknown kind', { ...GRANT, kind: 'abstain' } as unknown as VoteMessage],
  ]
  for (const [what, msg] of bad) {
    t.throws(() => encodeVote(msg, KEY), { code: 'voteEncode' }, what)
  }
  t.ok(new VoteEncodeError('x') instanceof RangeError)
})

t.test('voteCounter: epoch in the high 32 bits, seq in the low', async (t) => {
  t.equal(voteCounter({ epoch: 0x11223344, seq: 7 }), 0x1122334400000007n)
  t.equal(voteCounter({ epoch: 0xffffffff, seq: 0xffffffff }), 0xffffffffffffffffn)
  t.equal(voteCounter({ epoch: 0, seq: 0 }), 0n)
  t.ok(voteCounter({ epoch: 1, seq: 0 }) > voteCounter({ epoch: 0, seq: 0xffffffff }))
})
