import t from 'tap'
import { createHmac, randomBytes } from 'node:crypto'
import { PreparedHmac, hmacOf } from '../../src/wire/hmac.js'
import { CarpAuth, carpHmac } from '../../src/wire/carp.js'

t.test('a prepared key signs byte-exact with createHmac: short, block-sized and long keys, any message length', async (t) => {
  for (const algorithm of ['sha1', 'sha256'] as const) {
    for (const keyLen of [0, 1, 20, 63, 64, 65, 200]) {
      const key = randomBytes(keyLen)
      const prepared = new PreparedHmac(algorithm, key)
      // Longer messages than the first buffer (64 bytes) grow it; shorter ones after still sign right.
      for (const len of [0, 15, 64, 65, 300, 7, 1500]) {
        const head = randomBytes(len)
        const tail = randomBytes(len % 9)
        const want = createHmac(algorithm, key).update(head).update(tail).digest()
        t.same(prepared.sign(head, tail), want, `${algorithm} key ${keyLen} B, message ${len}+${len % 9} B`)
      }
    }
  }
  const text = new PreparedHmac('sha256', 'pässwörd')
  t.same(text.sign(Buffer.from('abc')), createHmac('sha256', 'pässwörd').update('abc').digest(), 'a string key is UTF-8, as createHmac takes it')
})

t.test('CarpAuth: the same HMAC as carp_hmac_prepare over version, type, vhid, sorted VIPs and counter, for every counter', async (t) => {
  const auth = new CarpAuth('secret', 7, ['192.0.2.9', '192.0.2.1'])
  for (const counter of [0n, 1n, (5n << 32n) | 9n, (1n << 64n) - 1n]) {
    const msg = Buffer.alloc(3 + 8 + 8)
    msg.set([2, 1, 7])
    msg.writeUInt32BE(0xc0000201, 3)
    msg.writeUInt32BE(0xc0000209, 7)
    msg.writeBigUInt64BE(counter, 11)
    const want = createHmac('sha1', 'secret').update(msg).digest()
    t.same(auth.sign(counter), want, `counter ${counter}`)
    t.same(carpHmac('secret', 7, ['192.0.2.1', '192.0.2.9'], counter), want, 'unprepared, VIPs in any order')
  }
})

t.test('hmacOf: the same as createHmac for each key, across more keys than it keeps prepared', async (t) => {
  for (let round = 0; round < 2; round++) {
    for (let i = 0; i < 20; i++) {
      const key = `key-${i}`
      const data = randomBytes(i * 7)
      t.same(hmacOf('sha256', key, data), createHmac('sha256', key).update(data).digest(), `round ${round}, key ${i}`)
    }
  }
  t.same(hmacOf('sha1', 'key-1', Buffer.from('x')), createHmac('sha1', 'key-1').update('x').digest(), 'the algorithm is part of the prepared key')
})

t.test('CarpAuth with IPv6 VIPs: the IPv4 VIPs sorted, then the IPv6 ones sorted bytewise, 16 bytes each (carp_hmac_prepare)', async (t) => {
  const vips = ['2001:db8::20', '192.0.2.9', 'fe80::1', '2001:db8::3', '192.0.2.1']
  const msg = Buffer.concat([
    Buffer.from([2, 1, 9]),
    Buffer.from([192, 0, 2, 1, 192, 0, 2, 9]),
    Buffer.from('20010db8000000000000000000000003', 'hex'),
    Buffer.from('20010db8000000000000000000000020', 'hex'),
    Buffer.from('fe800000000000000000000000000001', 'hex'),
    Buffer.from('0000000500000007', 'hex'),
  ])
  const want = createHmac('sha1', 'pw').update(msg).digest()
  t.same(new CarpAuth('pw', 9, vips).sign((5n << 32n) | 7n), want)
  t.same(carpHmac('pw', 9, [...vips].reverse(), (5n << 32n) | 7n), want, 'in any order')
  t.not(carpHmac('pw', 9, ['2001:db8::3'], 1n).equals(carpHmac('pw', 9, ['2001:db8::4'], 1n)), true, 'the addresses are bound')
})
