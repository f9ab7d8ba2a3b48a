// The control protocol, pure: JSON requests and replies for `carpd status` and
// `carpd ctl` (the socket is io/control.ts).
//
// Any local process can ask for the status. Changing failover (maint, demote,
// resync) needs a challenge answered with a key derived from the CARP passwords, so
// only someone who can read the configuration's secrets (root, on a router) can do
// it: a local user cannot force a failover by sending one datagram to 127.0.0.1.
// The answer is an HMAC over a nonce the board issued for this one request, so a
// request captured (by a user who bound the control port while carpd was down) is
// worth nothing later: the key itself never crosses the socket.

import { createHmac, timingSafeEqual } from 'node:crypto'
import type { Config } from '../config/types.js'
import type { BoardStatus } from './status.js'

/** Requests are tiny; anything larger is not ours. */
export const CONTROL_MAX_REQUEST_BYTES = 512

/**
 * Requests over the control socket. `status` is open to any local process; the
 * commands that change failover carry `token`, which proves the caller could read the
 * configuration's secrets (see controlToken).
 */
export interface Signature {
  nonce?: string // the agent's challenge, hex
  mac?: string // requestMac() over it, hex
}

export type ControlRequest =
  | { cmd: 'status' }
  | { cmd: 'challenge' }
  | ({ cmd: 'maint'; on: boolean } & Signature)
  | ({ cmd: 'demote'; value: number } & Signature)
  | ({ cmd: 'resync' } & Signature)

export type ControlReply = { ok: true; status: BoardStatus } | { ok: true; nonce: string } | { ok: false; error: string }

/**
 * Parses a request datagram; returns a message for the sender when it is not valid,
 * `silent` when it must get no answer at all (it is a reply: answering replies lets
 * two control sockets talk to each other forever).
 */
export function parseControlRequest(bytes: Buffer): ControlRequest | { error: string; silent?: true } {
  if (bytes.length > CONTROL_MAX_REQUEST_BYTES) return { error: 'request too large' }
  let obj: unknown
  try {
    obj = JSON.parse(bytes.toString('utf8'))
  } catch {
    return { error: 'request is not JSON' }
  }
  if (typeof obj !== 'object' || obj === null) return { error: 'request is not an object' }
  const req = obj as Record<string, unknown>
  if (Object.hasOwn(req, 'ok')) return { error: 'a reply, not a request', silent: true }
  switch (req.cmd) {
    case 'status':
      return { cmd: 'status' }
    case 'challenge':
      return { cmd: 'challenge' }
    case 'maint':
      if (typeof req.on !== 'boolean') return { error: 'maint needs on: true|false' }
      return { cmd: 'maint', on: req.on, ...signatureOf(req) }
    case 'demote':
      if (typeof req.value !== 'number') return { error: 'demote needs a number' }
      return { cmd: 'demote', value: req.value, ...signatureOf(req) }
    case 'resync':
      return { cmd: 'resync', ...signatureOf(req) }
    default:
      // Cut: the name comes from whoever sent the datagram (the fuzzer found a 480-character error).
      return { error: `unknown command ${JSON.stringify(String(req.cmd).slice(0, 40))}` }
  }
}

/**
 * The reply to one request datagram, as JSON text; null when it must get no answer
 * (it is a reply: answering replies lets two control sockets talk to each other forever).
 */
export function answerRequest(bytes: Buffer, handle: (req: ControlRequest) => ControlReply): string | null {
  const req = parseControlRequest(bytes)
  if ('error' in req && req.silent) return null
  const reply: ControlReply = 'error' in req ? { ok: false, error: req.error } : handle(req)
  return JSON.stringify(reply)
}

function signatureOf(req: Record<string, unknown>): Signature {
  const sig: Signature = {}
  if (typeof req.nonce === 'string' && NONCE_RE.test(req.nonce)) sig.nonce = req.nonce
  if (typeof req.mac === 'string') sig.mac = req.mac
  return sig
}

const NONCE_BYTES = 16
/** Expiry (12 hex digits of ms), 16 random bytes, a 16-byte tag. */
const NONCE_BODY_CHARS = 12 + 2 * NONCE_BYTES
const NONCE_TAG_CHARS = 32
const NONCE_RE = /^[0-9a-f]{76}$/

/** HMAC-SHA256 over the node name, keyed by every vhid's password in vhid order: the key of the challenges. */
export function controlKey(config: Config): string {
  const key = config.carp.vhids.map((v) => `${v.vhid}=${v.pass}`).join('\0')
  return createHmac('sha256', key).update(`carpd control ${config.node}`).digest('hex')
}

/** The answer to the agent's challenge `nonce` for this very request (its command and argument). */
export function requestMac(config: Config, nonce: string, req: ControlRequest): string {
  const what = req.cmd === 'maint' ? `maint ${req.on ? 'on' : 'off'}` : req.cmd === 'demote' ? `demote ${req.value}` : req.cmd
  return createHmac('sha256', controlKey(config)).update(`carpd ctl ${nonce} ${what}`).digest('hex')
}

export function macValid(config: Config, req: ControlRequest & Signature): boolean {
  if (req.nonce === undefined || req.mac === undefined) return false
  const want = Buffer.from(requestMac(config, req.nonce, req))
  const got = Buffer.from(req.mac)
  return got.length === want.length && timingSafeEqual(got, want)
}

/** A challenge is answered within this long, or not at all. */
export const NONCE_TTL_MS = 5000
/** Spent challenges remembered at once (only requests with the key spend one). */
export const NONCES_MAX = 64

/**
 * The agent's challenges, kept nowhere until used: a nonce is its expiry, random
 * bytes and a tag under a secret of this agent's, so any number of them can be
 * issued (a local user asking for challenges in a loop crowds nobody out) and only
 * the agent's own, in time, are good. A nonce is spent when a request with a valid
 * answer uses it; spent ones are remembered until they expire, which only requests
 * with the key can fill (at most NONCES_MAX at once, the oldest forgotten first).
 * Pure: the caller passes the time and the randomness.
 */
export class ControlNonces {
  private readonly secret: Buffer
  private readonly spent = new Map<string, number>() // nonce → expiry

  constructor(private readonly random: (bytes: number) => Buffer) {
    this.secret = random(32)
  }

  issue(nowMs: number): string {
    const body = `${Math.ceil(nowMs + NONCE_TTL_MS).toString(16).padStart(12, '0')}${this.random(NONCE_BYTES).toString('hex')}`
    return `${body}${this.tag(body)}`
  }

  /** Why a nonce is no good now, or null when it is: the agent's, in time, unspent. */
  refuse(nonce: string | undefined, nowMs: number): string | null {
    if (nonce === undefined || !NONCE_RE.test(nonce)) return 'no challenge answered (ask the agent for one first)'
    const body = nonce.slice(0, NONCE_BODY_CHARS)
    const tag = Buffer.from(nonce.slice(NONCE_BODY_CHARS), 'hex')
    const want = Buffer.from(this.tag(body), 'hex')
    if (!timingSafeEqual(tag, want)) return 'a challenge this agent never issued'
    const expiry = parseInt(body.slice(0, 12), 16)
    if (nowMs > expiry) return 'the challenge expired'
    for (const [n, e] of this.spent) if (e < nowMs) this.spent.delete(n)
    if (this.spent.has(nonce)) return 'the challenge was used already'
    return null
  }

  /** A request with a valid answer used `nonce`: never again. */
  spend(nonce: string, nowMs: number): void {
    if (this.spent.size >= NONCES_MAX) this.spent.delete(this.spent.keys().next().value!)
    this.spent.set(nonce, parseInt(nonce.slice(0, 12), 16) || nowMs + NONCE_TTL_MS)
  }

  private tag(body: string): string {
    return createHmac('sha256', this.secret).update(body).digest('hex').slice(0, NONCE_TAG_CHARS)
  }
}
