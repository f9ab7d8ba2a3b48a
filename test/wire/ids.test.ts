import t from 'tap'
import { idHex, senderId } from '../../src/wire/ids.js'

// The same values as the sync vectors in test/wire/sync.test.ts (computed there with
// Python's hashlib, not with this code).
t.test('sender ids are the first 4 bytes of sha256(name)', async (t) => {
  t.equal(senderId('fw-a'), 0xb251c07e)
  t.equal(senderId('fw-b'), 0x68c59148)
})

t.test('ids and epochs print as 8 hex digits', async (t) => {
  t.equal(idHex(0), '00000000')
  t.equal(idHex(0xb251c07e), 'b251c07e')
  t.equal(idHex(-1), 'ffffffff', 'a u32 whatever the sign it came with')
})
