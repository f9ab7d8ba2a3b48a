import t from 'tap'
import {
  decodeResponse,
  DNS_POINTER_JUMPS_MAX,
  DNS_TYPE_A,
  DNS_TYPE_NS,
  DnsEncodeError,
  encodeQuery,
} from '../../src/wire/dns.js'
import { prng } from '../helpers/prng.js'

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex')

// Hand-assembled from RFC 1035 4.1: header (id, flags 0100 = RD, qdcount 1, three
// zero counts), the name as labels ending in 00, qtype, qclass 0001 (IN).
const ROOT_NS_QUERY = '1234 0100 0001 0000 0000 0000  00  0002 0001'
const EXAMPLE_A_QUERY = 'abcd 0100 0001 0000 0000 0000  07 6578616d706c65 03 636f6d 00  0001 0001'

// A recursive resolver's answer to the second query: flags 8180 (QR, RD, RA), two
// answers whose owner names are compressed: c00c (the question's name) and "www" + c00c.
const EXAMPLE_A_RESPONSE = hex(`
  abcd 8180 0001 0002 0000 0000
  07 6578616d706c65 03 636f6d 00  0001 0001
  c00c  0001 0001 00000e10 0004 5db8d822
  03 777777 c00c  0001 0001 0000003c 0004 01020304`)

// The root's NS records: the second NS name in RDATA points into the first (offset 0x1e,
// "root-servers.net"); RDATA is framed by RDLENGTH and not read.
const ROOT_NS_RESPONSE = hex(`
  1234 8180 0001 0002 0000 0000
  00 0002 0001
  00 0002 0001 0007e900 0014 01 61 0c 726f6f742d73657276657273 03 6e6574 00
  00 0002 0001 0007e900 0004 01 62 c01e`)


/** A header with the given flags and counts, then `rest`. */
function message(flags: number, qd: number, an: number, rest: string): Buffer {
  const h = Buffer.alloc(12)
  h.writeUInt16BE(0x4242, 0)
  h.writeUInt16BE(flags, 2)
  h.writeUInt16BE(qd, 4)
  h.writeUInt16BE(an, 6)
  return Buffer.concat([h, hex(rest)])
}

t.test('queries: byte-exact vectors', async (t) => {
  t.equal(encodeQuery(0x1234).toString('hex'), hex(ROOT_NS_QUERY).toString('hex'), "'.' NS is the default question")
  t.equal(encodeQuery(0x1234, '.', DNS_TYPE_NS).toString('hex'), hex(ROOT_NS_QUERY).toString('hex'))
  t.equal(encodeQuery(0xabcd, 'example.com', DNS_TYPE_A).toString('hex'), hex(EXAMPLE_A_QUERY).toString('hex'))
  t.equal(encodeQuery(0xabcd, 'example.com.', DNS_TYPE_A).toString('hex'), hex(EXAMPLE_A_QUERY).toString('hex'), 'a trailing dot is the same name')
  t.equal(encodeQuery(0x1234, '', DNS_TYPE_NS).toString('hex'), hex(ROOT_NS_QUERY).toString('hex'), "'' is the root")
  t.equal(encodeQuery(0).length, 17)
  t.equal(encodeQuery(0xffff).readUInt16BE(0), 0xffff)
})

t.test('queries: values that cannot be sent throw a coded error', async (t) => {
  const code = (fn: () => unknown): string => {
    try {
      fn()
      return 'none'
    } catch (err) {
      return err instanceof DnsEncodeError ? err.code : 'other'
    }
  }
  t.equal(code(() => encodeQuery(-1)), 'badId')
  t.equal(code(() => encodeQuery(0x10000)), 'badId')
  t.equal(code(() => encodeQuery(1.5)), 'badId')
  t.equal(code(() => encodeQuery(1, '.', -1)), 'badType')
  t.equal(code(() => encodeQuery(1, '.', 0x10000)), 'badType')
  for (const name of ['a..b', '.a', 'a b', 'a\\b', 'é.com', 'x'.repeat(64), '..']) t.equal(code(() => encodeQuery(1, name)), 'badName', JSON.stringify(name))
  // 255 bytes on the wire is the most a name may take (RFC 1035 2.3.4).
  const l63 = 'x'.repeat(63)
  const longest = `${l63}.${l63}.${l63}.${'y'.repeat(61)}`
  t.equal(code(() => encodeQuery(1, longest)), 'none')
  t.equal(encodeQuery(1, longest).length, 12 + 255 + 4)
  t.equal(code(() => encodeQuery(1, longest + 'y')), 'badName', '256 bytes')
})

t.test('responses: compressed answers', async (t) => {
  t.same(decodeResponse(EXAMPLE_A_RESPONSE), { ok: true, id: 0xabcd, rcode: 0, qname: 'example.com', qtype: DNS_TYPE_A, answers: 2 })
  t.same(decodeResponse(ROOT_NS_RESPONSE), { ok: true, id: 0x1234, rcode: 0, qname: '.', qtype: DNS_TYPE_NS, answers: 2 })
})

t.test('responses: any rcode is an answer', async (t) => {
  // REFUSED (5): a resolver that does not recurse for us still answered over this path.
  const refused = Buffer.from(encodeQuery(0x1234))
  refused.writeUInt16BE(0x8105, 2)
  t.same(decodeResponse(refused), { ok: true, id: 0x1234, rcode: 5, qname: '.', qtype: DNS_TYPE_NS, answers: 0 })
  const servfail = Buffer.from(encodeQuery(7, 'example.com', DNS_TYPE_A))
  servfail.writeUInt16BE(0x8182, 2)
  t.same(decodeResponse(servfail), { ok: true, id: 7, rcode: 2, qname: 'example.com', qtype: DNS_TYPE_A, answers: 0 })
})

t.test('responses: a compressed question, forward pointer included', async (t) => {
  // "www" then a pointer to "example.com" stored after the question (ancount 0, so
  // those bytes are not read as answers).
  const buf = message(0x8180, 1, 0, '03 777777 c016  0001 0001  07 6578616d706c65 03 636f6d 00')
  t.same(decodeResponse(buf), { ok: true, id: 0x4242, rcode: 0, qname: 'www.example.com', qtype: 1, answers: 0 })
})

t.test('responses: odd label bytes come out escaped, so names stay distinct', async (t) => {
  const buf = message(0x8180, 1, 0, '03 612e62  03 00205c  00 0001 0001')
  const r = decodeResponse(buf)
  t.ok(r.ok)
  if (r.ok) t.equal(r.qname, 'a\\.b.\\000\\032\\\\')
})

t.test('responses: malformed ones are typed errors', async (t) => {
  t.same(decodeResponse(Buffer.alloc(0)), { ok: false, error: 'short' })
  t.same(decodeResponse(Buffer.alloc(11)), { ok: false, error: 'short' })
  t.same(decodeResponse(encodeQuery(1)), { ok: false, error: 'notResponse' }, 'a query (our own, looped back)')
  t.same(decodeResponse(message(0x9000, 1, 0, '00 0001 0001')), { ok: false, error: 'notResponse' }, 'opcode STATUS')
  t.same(decodeResponse(message(0x8180, 0, 0, '')), { ok: false, error: 'badQuestion' }, 'no question')
  t.same(decodeResponse(message(0x8180, 2, 0, '00 0001 0001 00 0001 0001')), { ok: false, error: 'badQuestion' }, 'two questions')
  t.same(decodeResponse(message(0x8180, 1, 0, '00 0001 0003')), { ok: false, error: 'badQuestion' }, 'class CH')
  t.same(decodeResponse(message(0x8180, 1, 0, 'c00c 0001 0001')), { ok: false, error: 'badName' }, 'a pointer to itself')
  t.same(decodeResponse(message(0x8180, 1, 0, 'c00e c00c 0001 0001')), { ok: false, error: 'badName' }, 'two pointers in a cycle')
  t.same(decodeResponse(message(0x8180, 1, 0, 'c0ff 0001 0001')), { ok: false, error: 'badName' }, 'a pointer past the end')
  t.same(decodeResponse(message(0x8180, 1, 0, '41 00 0001 0001')), { ok: false, error: 'badName' }, 'label type 01 (RFC 6891 retired it)')
  t.same(decodeResponse(message(0x8180, 1, 0, '80 00 0001 0001')), { ok: false, error: 'badName' }, 'label type 10')
  t.same(decodeResponse(message(0x8180, 1, 1, '00 0001 0001  c0ff 0001 0001 00000000 0000')), { ok: false, error: 'badName' }, 'in an answer')
  // 63+63+63+62 label bytes with their length bytes and the root: 256 > 255.
  const label = (n: number): string => n.toString(16).padStart(2, '0') + '78'.repeat(n)
  const tooLong = label(63) + label(63) + label(63) + label(62) + '00'
  t.same(decodeResponse(message(0x8180, 1, 0, `${tooLong} 0001 0001`)), { ok: false, error: 'badName' }, 'a 256-byte name')
  const longest = label(63) + label(63) + label(63) + label(61) + '00'
  t.ok(decodeResponse(message(0x8180, 1, 0, `${longest} 0001 0001`)).ok, 'a 255-byte name')
})

t.test('responses: pointer chains up to the loop limit', async (t) => {
  // The question's name is a pointer to a chain of pointers, each to the next, the
  // last one to the root label: `jumps` pointers followed in all.
  const chain = (jumps: number): Buffer => {
    const start = 18 // after the header, the 2-byte pointer and QTYPE/QCLASS
    const parts = [`c0${start.toString(16).padStart(2, '0')} 0001 0001`]
    for (let i = 1; i < jumps; i++) {
      const to = start + 2 * i
      parts.push(`${(0xc000 | to).toString(16)}`)
    }
    parts.push('00')
    return message(0x8180, 1, 0, parts.join(' '))
  }
  t.same(decodeResponse(chain(DNS_POINTER_JUMPS_MAX)), { ok: true, id: 0x4242, rcode: 0, qname: '.', qtype: 1, answers: 0 })
  t.same(decodeResponse(chain(DNS_POINTER_JUMPS_MAX + 1)), { ok: false, error: 'badName' })
})

t.test('responses: every truncation of a good response is short', async (t) => {
  for (const full of [EXAMPLE_A_RESPONSE, ROOT_NS_RESPONSE]) {
    t.ok(decodeResponse(full).ok)
    const errors = new Set<string>()
    for (let len = 0; len < full.length; len++) {
      const r = decodeResponse(full.subarray(0, len))
      errors.add(r.ok ? `ok at ${len}` : r.error)
    }
    t.same([...errors], ['short'])
  }
  // A pointer whose second byte is cut off, in the question and in an answer.
  t.same(decodeResponse(message(0x8180, 1, 0, 'c0')), { ok: false, error: 'short' })
})

t.test('10,000 random buffers and 10,000 mutated responses never throw', async (t) => {
  const rand = prng(53)
  const seen = new Map<string, number>()
  const tally = (buf: Buffer): void => {
    const r = decodeResponse(buf)
    const key = r.ok ? 'ok' : r.error
    seen.set(key, (seen.get(key) ?? 0) + 1)
  }
  let threw = 0
  for (let i = 0; i < 10_000; i++) {
    const buf = Buffer.from(Array.from({ length: Math.floor(rand() * 80) }, () => Math.floor(rand() * 256)))
    // Half of them look like responses with one question, to reach the name reader.
    if (buf.length >= 12 && i % 2 === 0) buf.writeUInt16BE(0x8180, 2), buf.writeUInt16BE(1, 4)
    try {
      tally(buf)
    } catch {
      threw++
    }
  }
  const bases = [EXAMPLE_A_RESPONSE, ROOT_NS_RESPONSE]
  for (let i = 0; i < 10_000; i++) {
    const buf = Buffer.from(bases[i % 2]!)
    for (let k = 0; k < 1 + Math.floor(rand() * 4); k++) buf[Math.floor(rand() * buf.length)] = Math.floor(rand() * 256)
    try {
      tally(buf.subarray(0, Math.floor(rand() * (buf.length + 1))))
    } catch {
      threw++
    }
  }
  t.equal(threw, 0)
  for (const key of ['ok', 'short', 'notResponse', 'badQuestion', 'badName']) t.ok((seen.get(key) ?? 0) > 0, `some ${key}`)
})
