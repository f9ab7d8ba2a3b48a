import t from 'tap'
import * as zlib from 'node:zlib'
import {
  crc32,
  decodeLine,
  encodeBlob,
  encodeHeartbeat,
  HEARTBEAT_BLOB_MAX_BYTES,
  HEARTBEAT_MAX_LINE_BYTES,
  HEARTBEAT_MAX_TEXT_BYTES,
  HeartbeatEncodeError,
  LineReader,
  type Heartbeat,
  type SerialFrame,
} from '../../src/wire/heartbeat.js'
import { prng } from '../helpers/prng.js'

// CRCs computed independently with Python: zlib.crc32(b'...').
const V1 = {
  hb: { node: 'fw-a', epoch: 0x1a2b3c4d, seq: 42, demote: 0, vhids: [{ vhid: 1, state: 'M' }, { vhid: 2, state: 'B' }] } as Heartbeat,
  line: 'HB fw-a e=1a2b3c4d s=42 d=0 v=1:M,2:B *821636E2\r\n',
}
const V2 = {
  hb: { node: 'fw-b', epoch: 0, seq: 0xffffffff, demote: 255, vhids: [] } as Heartbeat,
  line: 'HB fw-b e=00000000 s=4294967295 d=255 v=- *887A2467\r\n',
}
const V3 = { bytes: Buffer.from('00ff10', 'hex'), line: 'V 00ff10 *2E1E8BCC\r\n' }

/** A 512-byte line (the maximum): 94 vhids, node "nnnn", every number at its largest. */
const MAX_HB: Heartbeat = {
  node: 'nnnn',
  epoch: 0xffffffff,
  seq: 0xffffffff,
  demote: 255,
  vhids: Array.from({ length: 94 }, (_, i) => ({ vhid: i + 1, state: (['M', 'B', 'I'] as const)[(i + 1) % 3]! })),
}
const MAX_HB_CRC = '6C4F72BA' // Python, as above

const strip = (line: string): string => line.slice(0, -2)
/** A body with its correct trailer: to reach the field checks behind the CRC. */
const withCrc = (body: string): string => `${body} *${crc32(body).toString(16).toUpperCase().padStart(8, '0')}`


t.test('CRC-32 is the zlib one', async (t) => {
  t.equal(crc32('123456789'), 0xcbf43926, 'the standard check value')
  t.equal(crc32(''), 0)
  t.equal(crc32(Buffer.from('HB fw-a e=1a2b3c4d s=42 d=0 v=1:M,2:B')), 0x821636e2)
  t.equal(crc32('é'), crc32(Buffer.from('é', 'utf8')), 'a string counts as its UTF-8 bytes')
  // Node 20.15+ has zlib.crc32 (carpd must not depend on it): a cross-check on random data.
  const zcrc = (zlib as unknown as { crc32?: (b: Buffer) => number }).crc32
  if (typeof zcrc !== 'function') return
  const rand = prng(7)
  for (let i = 0; i < 200; i++) {
    const b = Buffer.from(Array.from({ length: Math.floor(rand() * 300) }, () => Math.floor(rand() * 256)))
    t.equal(crc32(b), zcrc(b), `random ${b.length} bytes`)
  }
})

t.test('byte-exact vectors both ways', async (t) => {
  for (const v of [V1, V2]) {
    t.equal(encodeHeartbeat(v.hb), v.line)
    t.same(decodeLine(strip(v.line)), { ok: true, frame: { kind: 'heartbeat', hb: v.hb } })
  }
  t.equal(encodeBlob(V3.bytes), V3.line)
  const back = decodeLine(strip(V3.line))
  t.ok(back.ok && back.frame.kind === 'blob' && back.frame.bytes.equals(V3.bytes))
})

t.test('a line of exactly the maximum length, and one byte over', async (t) => {
  const line = encodeHeartbeat(MAX_HB)
  t.equal(line.length, HEARTBEAT_MAX_LINE_BYTES)
  t.equal(line.slice(-12), ` *${MAX_HB_CRC}\r\n`)
  t.same(decodeLine(strip(line)), { ok: true, frame: { kind: 'heartbeat', hb: MAX_HB } })
  t.throws(() => encodeHeartbeat({ ...MAX_HB, node: 'nnnnn' }), { code: 'tooLong' })
  t.same(decodeLine(strip(line) + 'x'), { ok: false, error: 'tooLong' })
  t.equal(HEARTBEAT_MAX_TEXT_BYTES, HEARTBEAT_MAX_LINE_BYTES - 2)
})

t.test('round trips', async (t) => {
  const rand = prng(1)
  const int = (n: number) => Math.floor(rand() * n)
  const nodeChars = 'ABCXYZabcxyz0189._-'
  for (let i = 0; i < 500; i++) {
    const vhidSet = new Set(Array.from({ length: int(12) }, () => 1 + int(255)))
    const hb: Heartbeat = {
      node: Array.from({ length: 1 + int(32) }, () => nodeChars[int(nodeChars.length)]).join(''),
      epoch: int(2 ** 32),
      seq: int(2 ** 32),
      demote: int(256),
      vhids: [...vhidSet].map((vhid) => {
        const k = int(4)
        return k === 3 ? { vhid, state: 'M' as const, boot: true as const } : { vhid, state: (['M', 'B', 'I'] as const)[k]! }
      }),
    }
    const line = encodeHeartbeat(hb)
    t.ok(line.endsWith('\r\n') && line.length <= HEARTBEAT_MAX_LINE_BYTES)
    const back = decodeLine(strip(line))
    if (!back.ok || back.frame.kind !== 'heartbeat') {
      t.fail(`${line} did not decode: ${JSON.stringify(back)}`)
      continue
    }
    t.same(back.frame.hb, hb)
    t.equal(encodeHeartbeat(back.frame.hb), line, 'one spelling per value')
  }
  for (const n of [1, 2, 17, HEARTBEAT_BLOB_MAX_BYTES]) {
    const bytes = Buffer.from(Array.from({ length: n }, () => int(256)))
    const line = encodeBlob(bytes)
    const back = decodeLine(strip(line))
    t.ok(back.ok && back.frame.kind === 'blob' && back.frame.bytes.equals(bytes), `blob of ${n} bytes`)
  }
})

t.test('encoders refuse values they cannot send', async (t) => {
  const bad: [Partial<Heartbeat>, string][] = [
    [{ node: '' }, 'badNode'],
    [{ node: 'x'.repeat(33) }, 'badNode'],
    [{ node: 'fw a' }, 'badNode'],
    [{ epoch: -1 }, 'badEpoch'],
    [{ epoch: 2 ** 32 }, 'badEpoch'],
    [{ epoch: 1.5 }, 'badEpoch'],
    [{ seq: 2 ** 32 }, 'badSeq'],
    [{ seq: NaN }, 'badSeq'],
    [{ demote: 256 }, 'badDemote'],
    [{ demote: -1 }, 'badDemote'],
    [{ demote: 0.5 }, 'badDemote'],
    [{ vhids: [{ vhid: 0, state: 'M' }] }, 'badVhid'],
    [{ vhids: [{ vhid: 256, state: 'M' }] }, 'badVhid'],
    [{ vhids: [{ vhid: 1.5, state: 'M' }] }, 'badVhid'],
    [{ vhids: [{ vhid: 3, state: 'M' }, { vhid: 3, state: 'B' }] }, 'badVhid'],
    [{ vhids: [{ vhid: 3, state: 'X' as 'M' }] }, 'badVhid'],
    [{ vhids: [{ vhid: 3, state: 'MB' as 'M' }] }, 'badVhid'],
  ]
  for (const [change, code] of bad) {
    t.throws(() => encodeHeartbeat({ ...V1.hb, ...change }), { code }, JSON.stringify(change))
  }
  t.throws(() => encodeBlob(Buffer.alloc(0)), { code: 'badBlob' })
  t.throws(() => encodeBlob(Buffer.alloc(HEARTBEAT_BLOB_MAX_BYTES + 1)), { code: 'badBlob' })
  try {
    encodeBlob(Buffer.alloc(0))
  } catch (err) {
    t.ok(err instanceof HeartbeatEncodeError && err instanceof Error)
  }
})

t.test('every decode error', async (t) => {
  const good = strip(V1.line)
  const body = good.slice(0, -10)
  const cases: [string, string, string][] = [
    ['HB ' + 'x'.repeat(HEARTBEAT_MAX_TEXT_BYTES), 'tooLong', 'over the maximum'],
    ['hello world', 'garbage', 'another talker'],
    ['login: ', 'garbage', 'a getty'],
    ['hb' + good.slice(2), 'garbage', 'lower-case kind'],
    ['HB' + good.slice(3), 'garbage', 'kind without its space'],
    ['\x00' + good, 'garbage', 'a NUL in front'],
    [good.replace('fw-a', 'fw-ä'), 'garbage', 'not ASCII'],
    [good.replace(' ', '\t'), 'garbage', 'control byte'],
    [good + '\r', 'garbage', 'a line end left on'],
    ['V', 'garbage', 'kind alone'],
    [good.replace('s=42', 's=43'), 'badCrc', 'a changed digit'],
    [body, 'badCrc', 'no trailer'],
    [good.slice(0, -1), 'badCrc', 'trailer cut short'],
    [good.toLowerCase().replace('hb', 'HB'), 'badCrc', 'lower-case CRC hex'],
    [body + '  821636E2', 'badCrc', 'no star'],
    ['V ', 'badCrc', 'blob kind alone'],
    [withCrc(body + ' x=1'), 'badField', 'an unknown field'],
    [withCrc('HB fw-a s=42 e=1a2b3c4d d=0 v=1:M,2:B'), 'badField', 'fields out of order'],
    [withCrc('HB fw-a  e=1a2b3c4d s=42 d=0 v=1:M'), 'badField', 'two spaces'],
    [withCrc('HB fw-a e=1a2b3c4d s=42 d=0'), 'badField', 'missing field'],
    [withCrc('HB ' + 'n'.repeat(33) + ' e=1a2b3c4d s=42 d=0 v=-'), 'badField', 'node of 33'],
    [withCrc('HB fw/a e=1a2b3c4d s=42 d=0 v=-'), 'badField', 'node with a slash'],
    [withCrc('HB fw-a e=1A2B3C4D s=42 d=0 v=-'), 'badField', 'upper-case epoch'],
    [withCrc('HB fw-a e=1a2b3c4 s=42 d=0 v=-'), 'badField', 'epoch of 7 digits'],
    [withCrc('HB fw-a e=1a2b3c4d s=042 d=0 v=-'), 'badField', 'seq with a leading zero'],
    [withCrc('HB fw-a e=1a2b3c4d s=4294967296 d=0 v=-'), 'badField', 'seq over u32'],
    [withCrc('HB fw-a e=1a2b3c4d s=-1 d=0 v=-'), 'badField', 'negative seq'],
    [withCrc('HB fw-a e=1a2b3c4d s=42 d=256 v=-'), 'badField', 'demote 256'],
    [withCrc('HB fw-a e=1a2b3c4d s=42 d=00 v=-'), 'badField', 'demote 00'],
    [withCrc('HB fw-a e=1a2b3c4d s=42 d=0 v='), 'badField', 'empty vhid list'],
    [withCrc('HB fw-a e=1a2b3c4d s=42 d=0 v=0:M'), 'badField', 'vhid 0'],
    [withCrc('HB fw-a e=1a2b3c4d s=42 d=0 v=256:M'), 'badField', 'vhid 256'],
    [withCrc('HB fw-a e=1a2b3c4d s=42 d=0 v=01:M'), 'badField', 'vhid 01'],
    [withCrc('HB fw-a e=1a2b3c4d s=42 d=0 v=1:M,1:B'), 'badField', 'vhid twice'],
    [withCrc('HB fw-a e=1a2b3c4d s=42 d=0 v=1:X'), 'badField', 'state X'],
    [withCrc('HB fw-a e=1a2b3c4d s=42 d=0 v=1:M,'), 'badField', 'trailing comma'],
    [withCrc('HB fw-a e=1a2b3c4d s=42 d=0 v=1M'), 'badField', 'no colon'],
    [withCrc('HB fw-a e=1a2b3c4d s=42 d=0 v=-,1:M'), 'badField', 'dash and vhids'],
    [withCrc('V '), 'badField', 'empty blob'],
    [withCrc('V 0'), 'badField', 'odd hex digits'],
    [withCrc('V 0A'), 'badField', 'upper-case blob hex'],
    [withCrc('V 0g'), 'badField', 'not hex'],
    [withCrc('V ' + '00'.repeat(HEARTBEAT_BLOB_MAX_BYTES + 1)), 'badField', 'blob over the maximum'],
    [withCrc('V 00 01'), 'badField', 'two blobs'],
  ]
  for (const [line, error, why] of cases) t.same(decodeLine(line), { ok: false, error }, why)
})

t.test('decodeLine never throws on random text', async (t) => {
  const rand = prng(3)
  const alphabet = 'HBV e=sdv:,*-0123456789abcdefABCDEFMI \x00\x7f\u00ff\u20ac'
  let frames = 0
  for (let i = 0; i < 20_000; i++) {
    const len = Math.floor(rand() * 80)
    let s = rand() < 0.5 ? 'HB ' : 'V '
    for (let j = 0; j < len; j++) s += alphabet[Math.floor(rand() * alphabet.length)]
    if (decodeLine(rand() < 0.3 ? withCrc(s) : s).ok) frames++
  }
  t.pass(`no throw (${frames} random lines happened to be frames)`)
})

/** Feeds `stream` in pieces of the given sizes (cycled); returns the frames and the reader. */
function feed(stream: Buffer, sizes: () => number): { frames: SerialFrame[]; reader: LineReader } {
  const reader = new LineReader()
  const frames: SerialFrame[] = []
  for (let at = 0; at < stream.length; ) {
    const n = Math.max(1, sizes())
    frames.push(...reader.push(stream.subarray(at, at + n)))
    at += n
  }
  return { frames, reader }
}

t.test('LineReader: every error with its counter, blank lines ignored', async (t) => {
  const lines = [
    V1.line,
    '\r\n', // blank lines say nothing
    '\n',
    'hello\r\n', // garbage
    'HB \xff\r\n', // garbage (not ASCII: fed as latin1 bytes)
    V1.line.replace('s=42', 's=43'), // badCrc
    withCrc('HB fw-a e=1a2b3c4d s=42 d=0 v=0:M') + '\r\n', // badField
    'x'.repeat(2000) + '\r\n', // tooLong
    V2.line,
    V3.line,
  ]
  const { frames, reader } = feed(Buffer.from(lines.join(''), 'latin1'), () => 1000)
  t.same(reader.counters, { tooLong: 1, garbage: 2, badCrc: 1, badField: 1, frames: 3 })
  t.same(
    frames.map((f) => f.kind),
    ['heartbeat', 'heartbeat', 'blob'],
  )
  t.same(new LineReader().push(Buffer.alloc(0)), [], 'an empty chunk')
})

t.test('LineReader: lines end with "\\n" alone too; the length limit is exact', async (t) => {
  const reader = new LineReader()
  t.same(reader.push(Buffer.from(strip(V1.line) + '\n')).length, 1, 'no "\\r"')
  // 511 bytes + "\n" fits the buffer but is over the 510 a line may have without its end.
  t.same(reader.push(Buffer.from('V' + 'x'.repeat(510) + '\n')), [])
  t.equal(reader.counters.tooLong, 1)
  // 512 bytes before the "\n": cut off in the reader itself.
  t.same(reader.push(Buffer.from('V' + 'x'.repeat(511) + '\n')), [])
  t.equal(reader.counters.tooLong, 2)
  const max = encodeHeartbeat(MAX_HB)
  t.equal(reader.push(Buffer.from(max)).length, 1, 'a line of exactly the maximum')
  t.equal(reader.counters.frames, 2)
})

t.test('LineReader: any chunk boundary, byte by byte', async (t) => {
  const stream = Buffer.from([V1.line, V2.line, 'junk\r\n', V3.line, V1.line].join(''))
  const whole = feed(stream, () => stream.length)
  const bytewise = feed(stream, () => 1)
  t.equal(whole.frames.length, 4)
  t.same(bytewise.frames, whole.frames)
  t.same(bytewise.reader.counters, whole.reader.counters)
  // Every split point into two pieces.
  for (let cut = 0; cut <= stream.length; cut++) {
    const reader = new LineReader()
    const frames = [...reader.push(stream.subarray(0, cut)), ...reader.push(stream.subarray(cut))]
    if (frames.length !== 4) t.fail(`split at ${cut}: ${frames.length} frames`)
  }
  t.pass('every split point gives the same 4 frames')
})

t.test('LineReader: an endless line is dropped without growing memory', async (t) => {
  const reader = new LineReader()
  const noise = Buffer.alloc(64 * 1024, 0x41) // no "\n" anywhere
  const before = process.memoryUsage()
  let frames = 0
  for (let i = 0; i < 1024; i++) frames += reader.push(noise).length
  t.equal(frames, 0)
  const after = process.memoryUsage()
  const grown = after.heapUsed + after.arrayBuffers - (before.heapUsed + before.arrayBuffers)
  t.ok(grown < 16 * 1024 * 1024, `64 MiB of one line: memory grew ${Math.round(grown / 1024)} KiB`)
  t.equal(reader.counters.tooLong, 0, 'counted when its end comes')
  t.equal(reader.push(Buffer.from('AAAA\r\n' + V1.line)).length, 1, 'the next line decodes')
  t.same(reader.counters, { tooLong: 1, garbage: 0, badCrc: 0, badField: 0, frames: 1 })
})

t.test('LineReader: random line noise between frames', async (t) => {
  const rand = prng(20261122)
  const int = (n: number) => Math.floor(rand() * n)
  const goodLines = [V1.line, V2.line, V3.line, encodeHeartbeat(MAX_HB)]
  const noiseKinds: (() => Buffer)[] = [
    // any bytes at all, "\n" and "\r" included
    () => Buffer.from(Array.from({ length: 1 + int(200) }, () => int(256))),
    // printable text: a talker on the wrong port
    () => Buffer.from(Array.from({ length: 1 + int(100) }, () => 0x20 + int(95))),
    // a frame with one byte changed: CRC-32 catches every single-byte error
    () => {
      const b = Buffer.from(goodLines[int(goodLines.length)]!)
      const at = int(b.length - 2)
      b[at] = (b[at]! + 1 + int(255)) & 0xff
      return b
    },
    // a frame cut short: at least its last CRC digit is missing
    () => {
      const line = goodLines[int(goodLines.length)]!
      return Buffer.from(line.slice(0, 1 + int(line.length - 3)))
    },
    // a burst with no line end for longer than a line
    () => Buffer.alloc(HEARTBEAT_MAX_LINE_BYTES + int(2000), 0x20 + int(95)),
  ]
  const parts: Buffer[] = []
  const expected: string[] = []
  let cleanStart = true // the frame that comes next starts its own line
  for (let i = 0; i < 1000; i++) {
    let noise = noiseKinds[int(noiseKinds.length)]!()
    if (rand() < 0.6) noise = Buffer.concat([noise, Buffer.from(rand() < 0.5 ? '\r\n' : '\n')])
    parts.push(noise)
    if (noise.length > 0) cleanStart = noise[noise.length - 1] === 0x0a
    const line = goodLines[int(goodLines.length)]!
    parts.push(Buffer.from(line))
    if (cleanStart) expected.push(strip(line))
    cleanStart = true
  }
  const stream = Buffer.concat(parts)
  const describe = (f: SerialFrame): string => strip(f.kind === 'heartbeat' ? encodeHeartbeat(f.hb) : encodeBlob(f.bytes))
  const chunked = feed(stream, () => 1 + int(300))
  t.same(chunked.frames.map(describe), expected, `${expected.length} of 1000 frames on lines of their own decode, and nothing else`)
  t.ok(expected.length > 400 && expected.length < 1000)
  const c = chunked.reader.counters
  t.ok(c.garbage > 0 && c.badCrc > 0 && c.tooLong > 0, `noise counted: ${JSON.stringify(c)}`)
  t.equal(c.frames, expected.length)
  const bytewise = feed(stream, () => 1)
  t.same(bytewise.frames.map(describe), expected, 'the same byte by byte')
  t.same(bytewise.reader.counters, c)
})

t.test('the optional w= field carries the WAN health of a multi-WAN board', async (t) => {
  const hb = { node: 'fw-a', epoch: 0x1a2b3c4d, seq: 42, demote: 0, vhids: [{ vhid: 1, state: 'M' as const }], wans: [{ wan: 1, state: 'U' as const }, { wan: 2, state: 'D' as const }, { wan: 3, state: 'G' as const }] }
  const line = encodeHeartbeat(hb)
  t.match(line, /^HB fw-a e=1a2b3c4d s=42 d=0 v=1:M w=1:U,2:D,3:G \*[0-9A-F]{8}\r\n$/)
  t.same(decodeLine(line.trimEnd()), { ok: true, frame: { kind: 'heartbeat', hb } })
  t.notMatch(encodeHeartbeat({ ...hb, wans: [] }), / w=/, 'no WANs, no field')
  t.throws(() => encodeHeartbeat({ ...hb, wans: [{ wan: 33, state: 'U' }] }))
  t.throws(() => encodeHeartbeat({ ...hb, wans: [{ wan: 1, state: 'U' }, { wan: 1, state: 'D' }] }))
  const bad = (body: string) => decodeLine(`${body} *${crc32(body).toString(16).toUpperCase().padStart(8, '0')}`)
  t.same(bad('HB fw-a e=1a2b3c4d s=1 d=0 v=- w=1:X'), { ok: false, error: 'badField' })
  t.same(bad('HB fw-a e=1a2b3c4d s=1 d=0 v=- w=33:U'), { ok: false, error: 'badField' })
  t.same(bad('HB fw-a e=1a2b3c4d s=1 d=0 v=- w=1:U,1:D'), { ok: false, error: 'badField' })
})

t.test('P: a MASTER taken at its start before the peer was seen MASTER (power-on race)', async (t) => {
  const hb: Heartbeat = { node: 'fw-b', epoch: 0xbeef, seq: 7, demote: 0, vhids: [{ vhid: 1, state: 'M', boot: true }, { vhid: 2, state: 'B' }] }
  const line = 'HB fw-b e=0000beef s=7 d=0 v=1:P,2:B *2CF3F94B\r\n' // CRC from Python's zlib.crc32
  t.equal(encodeHeartbeat(hb), line)
  t.same(decodeLine(strip(line)), { ok: true, frame: { kind: 'heartbeat', hb } })
  const plain = decodeLine(withCrc('HB fw-b e=0000beef s=7 d=0 v=1:M'))
  t.ok(plain.ok && plain.frame.kind === 'heartbeat' && !('boot' in plain.frame.hb.vhids[0]!), 'M carries no boot key: one spelling each')
  t.throws(() => encodeHeartbeat({ ...hb, vhids: [{ vhid: 1, state: 'B', boot: true }] }), { code: 'badVhid' }, 'boot only with M')
  t.throws(() => encodeHeartbeat({ ...hb, vhids: [{ vhid: 1, state: 'M', boot: false as unknown as true }] }), { code: 'badVhid' })
  t.same(decodeLine(withCrc('HB fw-b e=0000beef s=7 d=0 v=1:p')), { ok: false, error: 'badField' }, 'upper case only')
})
