import t from 'tap'
import { internetChecksum } from '../../src/wire/checksum.js'

t.test('RFC 1071 example and properties', async (t) => {
  // RFC 1071 §3: the sum of 0001 f203 f4f5 f6f7 is ddf2, so the checksum is 220d.
  t.equal(internetChecksum(Buffer.from('0001f203f4f5f6f7', 'hex')), 0x220d)
  t.equal(internetChecksum(Buffer.alloc(0)), 0xffff)
  t.equal(internetChecksum(Buffer.from([0x01])), internetChecksum(Buffer.from([0x01, 0x00])), 'odd length pads with zero')
  const b = Buffer.from('4500003c1c4640004006000ac0a80001c0a800c7', 'hex')
  b.writeUInt16BE(0, 10)
  b.writeUInt16BE(internetChecksum(b), 10)
  t.equal(internetChecksum(b), 0, 'a buffer holding its checksum sums to zero')
})
