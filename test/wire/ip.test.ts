import t from 'tap'
import { inSubnet, ipv4ToUint32, ipv6Bytes, ipv6Groups, ipv6Text, isIpv6, isIpv6LinkLocal, parseIpv6 } from '../../src/wire/ip.js'
import { prng } from '../helpers/sync-pair.js'

/** An independent canonical form: the WHATWG URL parser's IPv6 serializer (RFC 5952's rules). */
const oracle = (text: string) => new URL(`http://[${text}]/`).hostname.slice(1, -1)

t.test('IPv6 text to the canonical form ip(8) prints: fixed cases', async (t) => {
  const cases: [string, string][] = [
    ['2001:DB8:0:0:0:0:0:1', '2001:db8::1'],
    ['2001:0db8:0000:0000:0001:0000:0000:0001', '2001:db8::1:0:0:1'], // the first of equal runs
    ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'], // one zero group stays
    ['2001:db8:0:0:1:0:0:0', '2001:db8:0:0:1::'], // the longest run wins
    ['::', '::'],
    ['::1', '::1'],
    ['fe80::', 'fe80::'],
    ['1::', '1::'],
    ['0:0:0:0:0:0:0:0', '::'],
    ['64:ff9b::192.0.2.33', '64:ff9b::c000:221'],
  ]
  for (const [text, want] of cases) t.equal(parseIpv6(text), want, text)
  for (const bad of ['', ':', ':::', '1:2:3:4:5:6:7', '1:2:3:4:5:6:7:8:9', '1::2::3', '12345::', 'g::1', 'fe80::1%eth0', '::1.2.3', '::256.1.1.1', '1:2:3:4:5:6:7:8::', '[::1]', '::01.2.3.4', '1.2.3.4::', '1.2.3.4::5', '1:1.2.3.4::', '1.2.3.4:1::']) {
    t.equal(parseIpv6(bad), null, `refused: ${JSON.stringify(bad)}`)
  }
})

t.test('IPv6 canonical form: 20,000 random addresses written every way agree with the URL parser', async (t) => {
  const rng = prng(6)
  let checked = 0
  for (let i = 0; i < 20_000; i++) {
    // Zero groups often, in runs, so "::" placement is exercised.
    const groups = Array.from({ length: 8 }, () => (rng() < 0.45 ? 0 : Math.floor(rng() * 0x10000)))
    const full = groups.map((g) => g.toString(16).padStart(rng() < 0.5 ? 4 : 1, '0')).join(':')
    const text = rng() < 0.3 ? full.toUpperCase() : full
    const got = parseIpv6(text)
    if (got !== oracle(text)) t.fail(`${text}: ${got} vs ${oracle(text)}`)
    // Parsing the canonical text gives the same groups back.
    if (JSON.stringify(ipv6Groups(got!)) !== JSON.stringify(groups)) t.fail(`${text}: groups`)
    checked++
  }
  t.equal(checked, 20_000)
})

t.test('bytes, subnets and families', async (t) => {
  t.same([...ipv6Bytes('2001:db8::1')], [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1])
  t.equal(ipv6Text(ipv6Groups('2001:db8::1')!), '2001:db8::1')
  t.equal(isIpv6('2001:db8::1'), true)
  t.equal(isIpv6('192.0.2.1'), false)
  t.equal(ipv4ToUint32('192.0.2.1'), 0xc0000201)
  t.equal(inSubnet({ address: '2001:db8::', prefix: 64 }, '2001:db8::ffff:1'), true)
  t.equal(inSubnet({ address: '2001:db8::', prefix: 64 }, '2001:db8:0:1::1'), false)
  t.equal(inSubnet({ address: '2001:db8::', prefix: 61 }, '2001:db8:0:7::1'), true, 'a prefix inside a byte')
  t.equal(inSubnet({ address: '2001:db8::', prefix: 61 }, '2001:db8:0:8::1'), false)
  t.equal(inSubnet({ address: '::', prefix: 0 }, '2001:db8::1'), true)
  t.equal(inSubnet({ address: '192.0.2.0', prefix: 24 }, '192.0.2.200'), true)
  t.equal(inSubnet({ address: '192.0.2.0', prefix: 24 }, '192.0.3.1'), false)
  t.equal(inSubnet({ address: '0.0.0.0', prefix: 0 }, '192.0.3.1'), true)
  t.equal(inSubnet({ address: '192.0.2.0', prefix: 24 }, '2001:db8::1'), false, 'another family is never inside')
  t.equal(inSubnet({ address: '2001:db8::', prefix: 32 }, '192.0.2.1'), false)
  t.equal(isIpv6LinkLocal('fe80::1'), true)
  t.equal(isIpv6LinkLocal('febf::1'), true)
  t.equal(isIpv6LinkLocal('fec0::1'), false)
  t.equal(isIpv6LinkLocal('192.0.2.1'), false)
})
