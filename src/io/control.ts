// The control socket: JSON requests and replies over UDP on loopback (SPEC: network
// I/O only through node:dgram; `carpd status` and `carpd ctl` are its clients).
// Bound to 127.0.0.1 only, so only processes on the board itself can reach it. What
// the requests mean is control/protocol.ts's; this file moves the bytes.
//
// A reply larger than one datagram (255 vhids with several VIPs make a status of
// more than 64 KB) goes in parts, each `carpd-part I/N\n` and then a slice of the
// reply's bytes; the client puts them together.

import { createSocket } from 'node:dgram'

export const CONTROL_ADDRESS = '127.0.0.1'
export const CONTROL_TIMEOUT_MS = 2000
/** Bytes of a reply per datagram (a UDP datagram holds at most 65,507 bytes). */
export const CONTROL_PART_BYTES = 60_000
/** More parts than this is not a reply of ours (16 x 60 KB: far beyond 255 vhids). */
export const CONTROL_MAX_PARTS = 16
const PART_PREFIX = 'carpd-part '
/**
 * Answers per second, with a burst of as many: each status is built and serialised
 * whole, and a local user flooding the socket must not starve the advert timers
 * (and so force the failover that ctl's key guards). `carpd status` needs one.
 */
export const CONTROL_ANSWERS_PER_S = 20

export interface ControlServer {
  close(): Promise<void>
}

/**
 * Serves `answer`: a request's bytes in, the reply's text out, or null for no reply
 * at all (control/protocol.ts answerRequest).
 */
export async function startControlServer(port: number, answer: (request: Buffer) => string | null): Promise<ControlServer> {
  const sock = createSocket('udp4')
  let bound = port
  const budget = answerBudget(CONTROL_ANSWERS_PER_S, () => performance.now())
  sock.on('message', (msg, rinfo) => {
    if (!budget()) return
    for (const part of replyTo(msg, rinfo, bound, answer)) sock.send(part, rinfo.port, rinfo.address)
  })
  await new Promise<void>((resolve, reject) => {
    sock.once('error', reject)
    sock.bind(port, CONTROL_ADDRESS, () => {
      sock.off('error', reject)
      bound = sock.address().port
      resolve()
    })
  })
  sock.on('error', () => {})
  return { close: () => new Promise((resolve) => sock.close(() => resolve())) }
}

/** A token bucket: true while this second's answers last (refilled continuously). */
export function answerBudget(perS: number, nowMs: () => number): () => boolean {
  let tokens = perS
  let lastMs = nowMs()
  return () => {
    const now = nowMs()
    tokens = Math.min(perS, tokens + ((now - lastMs) * perS) / 1000)
    lastMs = now
    if (tokens < 1) return false
    tokens--
    return true
  }
}

/** The datagrams that answer one datagram `from` a sender, to the socket bound to `ownPort`. */
export function replyTo(msg: Buffer, from: { address: string; port: number }, ownPort: number, answer: (request: Buffer) => string | null): Buffer[] {
  // Never answer our own address and port: one forged datagram from it would have
  // the board answer itself forever.
  if (from.port === ownPort && from.address === CONTROL_ADDRESS) return []
  const reply = answer(msg)
  return reply === null ? [] : replyParts(reply)
}

/** The datagrams of one reply: the JSON itself when it fits, else numbered parts. */
export function replyParts(text: string): Buffer[] {
  const bytes = Buffer.from(text, 'utf8')
  if (bytes.length <= CONTROL_PART_BYTES) return [bytes]
  const count = Math.ceil(bytes.length / CONTROL_PART_BYTES)
  const parts: Buffer[] = []
  for (let i = 0; i < count; i++) {
    const slice = bytes.subarray(i * CONTROL_PART_BYTES, (i + 1) * CONTROL_PART_BYTES)
    parts.push(Buffer.concat([Buffer.from(`${PART_PREFIX}${i + 1}/${count}\n`), slice]))
  }
  return parts
}

/**
 * Puts parts together: call with each datagram; returns the whole reply's text once
 * every part is in, null while parts are missing. Throws on a datagram that is not
 * a part of the reply begun.
 */
export function partAssembler(): (datagram: Buffer) => string | null {
  let slices: (Buffer | undefined)[] | null = null
  let have = 0
  return (datagram) => {
    const head = datagram.subarray(0, PART_PREFIX.length + 12).toString('latin1')
    if (!head.startsWith(PART_PREFIX)) {
      if (slices !== null) throw new Error('carpd mixed a whole reply into a reply in parts')
      return datagram.toString('utf8')
    }
    const nl = datagram.indexOf(0x0a)
    const m = /^(\d+)\/(\d+)$/.exec(datagram.subarray(PART_PREFIX.length, nl).toString('latin1'))
    const index = m ? Number(m[1]) : 0
    const count = m ? Number(m[2]) : 0
    if (nl < 0 || count < 2 || count > CONTROL_MAX_PARTS || index < 1 || index > count) throw new Error('carpd sent a reply part that cannot be read')
    slices ??= new Array<Buffer | undefined>(count)
    if (slices.length !== count) throw new Error('carpd sent parts of two replies')
    if (slices[index - 1] === undefined) have++
    slices[index - 1] = datagram.subarray(nl + 1)
    return have === count ? Buffer.concat(slices as Buffer[]).toString('utf8') : null
  }
}

/** Sends one request (as JSON) to the board and waits for its reply (all its parts), parsed. */
export function controlRequest(port: number, req: object, timeoutMs = CONTROL_TIMEOUT_MS): Promise<unknown> {
  // Room for every part at once (the default buffer holds about three).
  const sock = createSocket({ type: 'udp4', recvBufferSize: CONTROL_MAX_PARTS * (CONTROL_PART_BYTES + 4096) })
  const assemble = partAssembler()
  return new Promise<unknown>((resolve, reject) => {
    const timer = setTimeout(() => {
      reject(new Error(`no answer from carpd on ${CONTROL_ADDRESS}:${port} within ${timeoutMs} ms (is it running? is control.port right?)`))
    }, timeoutMs)
    sock.on('error', (err) => {
      clearTimeout(timer)
      reject(err)
    })
    sock.on('message', (msg, rinfo) => {
      if (rinfo.port !== port || rinfo.address !== CONTROL_ADDRESS) return // not the agent
      let text: string | null
      try {
        text = assemble(msg)
      } catch (err) {
        clearTimeout(timer)
        return reject(err)
      }
      if (text === null) return
      clearTimeout(timer)
      try {
        resolve(JSON.parse(text))
      } catch {
        reject(new Error('carpd sent a reply that is not JSON'))
      }
    })
    sock.send(JSON.stringify(req), port, CONTROL_ADDRESS)
  }).finally(() => sock.close())
}
