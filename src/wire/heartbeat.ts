// Serial-line heartbeat codec (issue 5, split-brain protection): the frames two
// routers exchange over a null-modem cable, a path that shares no switch, NIC or IP
// stack with the LAN. Frames are text, one per line, so an operator can watch the
// line with `screen /dev/ttyS0 19200` and read it.
//
//   HB <node> e=<epoch> s=<seq> d=<demote> v=<vhids>[ w=<wans>] *<CRC32>\r\n
//   |  |        |         |       |          |        |
//   |  |        |         |       |          |        CRC-32 (IEEE 802.3, as zlib) of every
//   |  |        |         |       |          |        byte before " *", 8 uppercase hex
//   |  |        |         |       |          "-" or vhid:state,... ; vhid 1..255 decimal,
//   |  |        |         |       |          state M (MASTER) | B (BACKUP) | I (INIT) |
//   |  |        |         |       |          P (MASTER, taken at its start before the peer
//   |  |        |         |       |          was seen MASTER: the preferred board may take it)
//   |  |        |         |       demote counter, decimal 0..255
//   |  |        |         sequence within the epoch, decimal u32
//   |  |        boot epoch, 8 lowercase hex (u32)
//   |  sender's node name, [A-Za-z0-9._-]{1,32}
//   frame kind
//   w= (only on a board with multi-WAN): wan:state,... ; wan 1..32, state U (online),
//   G (degraded), D (offline), so the pair knows each other's uplinks
//
//   V <hex> *<CRC32>\r\n
//     |
//     a binary message of 1..200 bytes as lowercase hex (an authenticated vote: its
//     HMAC is checked by its own codec; this one only carries the bytes)
//
//   HB fw-a e=1a2b3c4d s=42 d=0 v=1:M,2:B *821636E2\r\n
//
// Every number has one spelling (no leading zeros, no upper-case hex in fields), so
// decode(encode(x)) is x and encode(decode(line)) is the line. A line is at most
// HEARTBEAT_MAX_LINE_BYTES with its "\r\n". The CRC is there because a serial line
// corrupts bytes without telling anyone; RS-232 has no checksum of its own.

/** Longest line, "\r\n" included. A board with a handful of vhids uses under 100. */
export const HEARTBEAT_MAX_LINE_BYTES = 512
/** Longest line without its line end: what decodeLine accepts. */
export const HEARTBEAT_MAX_TEXT_BYTES = HEARTBEAT_MAX_LINE_BYTES - 2
/** Largest binary message a "V" frame carries (400 hex digits: the line stays under the maximum). */
export const HEARTBEAT_BLOB_MAX_BYTES = 200

const LINE_END = '\r\n'
const HEARTBEAT_PREFIX = 'HB '
const BLOB_PREFIX = 'V '
/** " *" and 8 hex digits. */
const CRC_TRAILER_LEN = 10
const U32_MAX = 0xffffffff
const DEMOTE_MAX = 255
const VHID_MIN = 1
const VHID_MAX = 255

const VHID_LETTERS: ReadonlySet<string> = new Set<VhidLetter>(['M', 'B', 'I'])

const NODE_RE = /^[A-Za-z0-9._-]{1,32}$/
// The fields in their one order; the vhid list is taken apart by VHID_ITEM_RE.
const HEARTBEAT_RE = /^HB ([A-Za-z0-9._-]{1,32}) e=([0-9a-f]{8}) s=(0|[1-9][0-9]{0,9}) d=(0|[1-9][0-9]{0,2}) v=(-|[0-9MBIP:,]+)(?: w=([0-9UGD:,]+))?$/
const VHID_ITEM_RE = /^([1-9][0-9]{0,2}):([MBIP])$/
/** On the wire, a boot master is a MASTER spelt P. */
const BOOT_MASTER_LETTER = 'P'
const WAN_ITEM_RE = /^([1-9][0-9]?):([UGD])$/
const WAN_MAX = 32
const BLOB_RE = /^V ((?:[0-9a-f]{2})+)$/
const CRC_TRAILER_RE = /^ \*[0-9A-F]{8}$/
/** Printable ASCII only: a control byte or a byte above 0x7e is line noise. */
const PRINTABLE_RE = /^[\x20-\x7e]*$/

export type VhidLetter = 'M' | 'B' | 'I'
/** A WAN's health on the wire: U online, G degraded, D offline. */
export type WanLetter = 'U' | 'G' | 'D'

/** One heartbeat: who sends it, when in its life, how demoted it is, and what it holds. */
export interface Heartbeat {
  node: string // [A-Za-z0-9._-]{1,32}
  epoch: number // u32, changes on every start of the sender
  seq: number // u32, counts up within an epoch
  demote: number // 0..255, the sender's demotion counter
  /**
   * Each vhid (1..255) once, in the sender's order. `boot`: only with M, the sender took
   * this vhid at its start before it saw this board MASTER (a power-on race, which the
   * preferred board may still win: quorum/README.md "Power-on").
   */
  vhids: { vhid: number; state: VhidLetter; boot?: true }[]
  wans?: { wan: number; state: WanLetter }[] // each WAN (1..32) once; absent without multi-WAN
}

export type SerialFrame = { kind: 'heartbeat'; hb: Heartbeat } | { kind: 'blob'; bytes: Buffer }

/**
 * Why a line is not a frame; each one is a named counter of LineReader.
 * tooLong: longer than the maximum. garbage: not printable ASCII, or not an "HB "/"V "
 * line (another program on the port, a login prompt, noise). badCrc: the trailer is
 * missing or does not match (bytes lost or changed on the wire). badField: the CRC
 * is right but a field is not in its one allowed form (a sender with another version).
 */
export type HeartbeatDecodeError = 'tooLong' | 'garbage' | 'badCrc' | 'badField'

export type HeartbeatDecodeResult = { ok: true; frame: SerialFrame } | { ok: false; error: HeartbeatDecodeError }

export type HeartbeatEncodeErrorCode = 'badNode' | 'badEpoch' | 'badSeq' | 'badDemote' | 'badVhid' | 'badBlob' | 'tooLong'

/** Thrown by the encoders on values that cannot be sent: a bug in the caller, not line noise. */
export class HeartbeatEncodeError extends Error {
  constructor(
    readonly code: HeartbeatEncodeErrorCode,
    message: string,
  ) {
    super(message)
  }
}

// CRC-32 as IEEE 802.3 and zlib define it: reflected polynomial 0xEDB88320, initial
// value and final xor all ones. One table of 256 entries, built once.
const CRC32_POLY_REFLECTED = 0xedb88320
const CRC32_TABLE = (() => {
  const table = new Uint32Array(256)
  for (let n = 0; n < 256; n++) {
    let c = n
    for (let k = 0; k < 8; k++) c = c & 1 ? CRC32_POLY_REFLECTED ^ (c >>> 1) : c >>> 1
    table[n] = c >>> 0
  }
  return table
})()

/** CRC-32 of the bytes (a string counts as its UTF-8 bytes); the zlib value, unsigned. */
export function crc32(bytes: Buffer | string): number {
  const buf = typeof bytes === 'string' ? Buffer.from(bytes, 'utf8') : bytes
  let crc = 0xffffffff
  for (let i = 0; i < buf.length; i++) crc = CRC32_TABLE[(crc ^ buf[i]!) & 0xff]! ^ (crc >>> 8)
  return (crc ^ 0xffffffff) >>> 0
}

const crcHex = (text: string): string => crc32(text).toString(16).toUpperCase().padStart(8, '0')

/** Appends the trailer and the line end, and checks the length: both encoders end here. */
function finishLine(body: string): string {
  const line = `${body} *${crcHex(body)}${LINE_END}`
  if (line.length > HEARTBEAT_MAX_LINE_BYTES) {
    throw new HeartbeatEncodeError('tooLong', `frame of ${line.length} bytes is over the ${HEARTBEAT_MAX_LINE_BYTES}-byte line limit`)
  }
  return line
}

const isU32 = (n: number): boolean => Number.isInteger(n) && n >= 0 && n <= U32_MAX

/** The whole line, "\r\n" included. Throws HeartbeatEncodeError on a value out of range. */
export function encodeHeartbeat(hb: Heartbeat): string {
  if (!NODE_RE.test(hb.node)) throw new HeartbeatEncodeError('badNode', `node ${JSON.stringify(hb.node)}: 1..32 of A-Z a-z 0-9 . _ -`)
  if (!isU32(hb.epoch)) throw new HeartbeatEncodeError('badEpoch', `epoch ${hb.epoch}: an integer 0..${U32_MAX}`)
  if (!isU32(hb.seq)) throw new HeartbeatEncodeError('badSeq', `seq ${hb.seq}: an integer 0..${U32_MAX}`)
  if (!Number.isInteger(hb.demote) || hb.demote < 0 || hb.demote > DEMOTE_MAX) {
    throw new HeartbeatEncodeError('badDemote', `demote ${hb.demote}: an integer 0..${DEMOTE_MAX}`)
  }
  const seen = new Set<number>()
  for (const { vhid, state, boot } of hb.vhids) {
    if (!Number.isInteger(vhid) || vhid < VHID_MIN || vhid > VHID_MAX || seen.has(vhid) || !VHID_LETTERS.has(state) || (boot !== undefined && (boot !== true || state !== 'M'))) {
      throw new HeartbeatEncodeError('badVhid', `vhid ${vhid}:${state}${boot ? ' (boot)' : ''}: each vhid ${VHID_MIN}..${VHID_MAX} once, state M, B or I, boot only with M`)
    }
    seen.add(vhid)
  }
  const wanSeen = new Set<number>()
  for (const { wan, state } of hb.wans ?? []) {
    if (!Number.isInteger(wan) || wan < 1 || wan > WAN_MAX || wanSeen.has(wan) || !['U', 'G', 'D'].includes(state)) {
      throw new HeartbeatEncodeError('badVhid', `wan ${wan}:${state}: each WAN 1..${WAN_MAX} once, state U, G or D`)
    }
    wanSeen.add(wan)
  }
  const vhids = hb.vhids.length === 0 ? '-' : hb.vhids.map((v) => `${v.vhid}:${v.boot ? BOOT_MASTER_LETTER : v.state}`).join(',')
  const wans = hb.wans && hb.wans.length > 0 ? ` w=${hb.wans.map((w) => `${w.wan}:${w.state}`).join(',')}` : ''
  const epoch = hb.epoch.toString(16).padStart(8, '0')
  return finishLine(`${HEARTBEAT_PREFIX}${hb.node} e=${epoch} s=${hb.seq} d=${hb.demote} v=${vhids}${wans}`)
}

/** A "V" line carrying 1..HEARTBEAT_BLOB_MAX_BYTES bytes. Throws HeartbeatEncodeError otherwise. */
export function encodeBlob(bytes: Buffer): string {
  if (bytes.length < 1 || bytes.length > HEARTBEAT_BLOB_MAX_BYTES) {
    throw new HeartbeatEncodeError('badBlob', `blob of ${bytes.length} bytes: 1..${HEARTBEAT_BLOB_MAX_BYTES}`)
  }
  return finishLine(`${BLOB_PREFIX}${bytes.toString('hex')}`)
}

/** Decodes one line given without its line end. Never throws. */
export function decodeLine(line: string): HeartbeatDecodeResult {
  if (line.length > HEARTBEAT_MAX_TEXT_BYTES) return { ok: false, error: 'tooLong' }
  if (!PRINTABLE_RE.test(line)) return { ok: false, error: 'garbage' }
  const isHeartbeat = line.startsWith(HEARTBEAT_PREFIX)
  if (!isHeartbeat && !line.startsWith(BLOB_PREFIX)) return { ok: false, error: 'garbage' }
  // A frame without a well-formed trailer is most often one cut short on the wire,
  // so it counts with the frames whose CRC does not match.
  const body = line.slice(0, -CRC_TRAILER_LEN)
  const trailer = line.slice(-CRC_TRAILER_LEN)
  if (!CRC_TRAILER_RE.test(trailer)) return { ok: false, error: 'badCrc' }
  if (trailer.slice(2) !== crcHex(body)) return { ok: false, error: 'badCrc' }
  const frame = isHeartbeat ? parseHeartbeat(body) : parseBlob(body)
  return frame === null ? { ok: false, error: 'badField' } : { ok: true, frame }
}

function parseHeartbeat(body: string): SerialFrame | null {
  const m = HEARTBEAT_RE.exec(body)
  if (m === null) return null
  // The regex bounds the digits; the values still need their ranges checked.
  const seq = Number(m[3])
  const demote = Number(m[4])
  if (seq > U32_MAX || demote > DEMOTE_MAX) return null
  const vhids: Heartbeat['vhids'] = []
  if (m[5] !== '-') {
    const seen = new Set<number>()
    for (const item of m[5]!.split(',')) {
      const v = VHID_ITEM_RE.exec(item)
      if (v === null) return null
      const vhid = Number(v[1])
      // A repeated vhid would say two things about one group: not from an honest encoder.
      if (vhid > VHID_MAX || seen.has(vhid)) return null
      seen.add(vhid)
      vhids.push(v[2] === BOOT_MASTER_LETTER ? { vhid, state: 'M', boot: true } : { vhid, state: v[2] as VhidLetter })
    }
  }
  const hb: Heartbeat = { node: m[1]!, epoch: parseInt(m[2]!, 16), seq, demote, vhids }
  if (m[6] !== undefined) {
    const wans: NonNullable<Heartbeat['wans']> = []
    for (const item of m[6].split(',')) {
      const w = WAN_ITEM_RE.exec(item)
      if (w === null || Number(w[1]) > WAN_MAX || wans.some((x) => x.wan === Number(w[1]))) return null
      wans.push({ wan: Number(w[1]), state: w[2] as WanLetter })
    }
    hb.wans = wans
  }
  return { kind: 'heartbeat', hb }
}

function parseBlob(body: string): SerialFrame | null {
  const m = BLOB_RE.exec(body)
  if (m === null || m[1]!.length > HEARTBEAT_BLOB_MAX_BYTES * 2) return null
  return { kind: 'blob', bytes: Buffer.from(m[1]!, 'hex') }
}

export type LineReaderCounters = Record<HeartbeatDecodeError, number> & { frames: number }

/**
 * Cuts a byte stream into lines and decodes them. Holds at most one line's worth of
 * bytes: a longer line is dropped up to its "\n" and counted once as tooLong, so
 * noise without newlines cannot grow the buffer. Every "\n" starts afresh, which is
 * how the reader finds its feet again after noise, a cut frame or a cable plugged in
 * mid-line.
 */
export class LineReader {
  readonly counters: LineReaderCounters = { tooLong: 0, garbage: 0, badCrc: 0, badField: 0, frames: 0 }
  // The line end's "\n" is never stored, its "\r" is: one byte less than a whole line.
  private readonly pending = Buffer.alloc(HEARTBEAT_MAX_LINE_BYTES - 1)
  private pendingLen = 0
  private discarding = false

  /** Feeds bytes as they came off the wire; returns the frames completed by them. */
  push(chunk: Buffer): SerialFrame[] {
    const frames: SerialFrame[] = []
    let start = 0
    while (start < chunk.length) {
      const nl = chunk.indexOf(0x0a, start)
      const end = nl < 0 ? chunk.length : nl
      if (!this.discarding) {
        if (this.pendingLen + (end - start) > this.pending.length) {
          this.discarding = true
          this.pendingLen = 0
        } else {
          this.pendingLen += chunk.copy(this.pending, this.pendingLen, start, end)
        }
      }
      if (nl < 0) break
      if (this.discarding) this.counters.tooLong++
      else this.endLine(frames)
      this.discarding = false
      this.pendingLen = 0
      start = nl + 1
    }
    return frames
  }

  private endLine(frames: SerialFrame[]): void {
    let len = this.pendingLen
    if (len > 0 && this.pending[len - 1] === 0x0d) len--
    // Blank lines are what an operator's Enter key or a modem's line end sends: not noise.
    if (len === 0) return
    // latin1: one char per byte, so a byte above 0x7e stays visible to the printable check.
    const result = decodeLine(this.pending.toString('latin1', 0, len))
    if (result.ok) {
      this.counters.frames++
      frames.push(result.frame)
    } else {
      this.counters[result.error]++
    }
  }
}
