// The control protocol, pure: JSON requests and replies for `carpd status` and
// `carpd ctl` (the sockets are in io/control.ts).
//
// Any local process can ask for the status. Changing failover (maint, demote,
// resync) needs a challenge answered with a key derived from the CARP passwords, so
// only someone who can read the configuration's secrets (root, on a router) can do
// it: a local user cannot force a failover by sending one datagram to 127.0.0.1.
// The answer is an HMAC over a nonce the agent issued for this one request, so a
// request captured (by a user who bound the control port while carpd was down) is
// worth nothing later: the key itself never crosses the socket.

import { createHmac, timingSafeEqual } from 'node:crypto'
import type { AgentStatus } from './agent.js'
import type { Config } from './config/types.js'

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

export type ControlReply = { ok: true; status: AgentStatus } | { ok: true; nonce: string } | { ok: false; error: string }

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
      return { error: `unknown command ${JSON.stringify(req.cmd)}` }
  }
}

function signatureOf(req: Record<string, unknown>): Signature {
  const sig: Signature = {}
  if (typeof req.nonce === 'string' && NONCE_RE.test(req.nonce)) sig.nonce = req.nonce
  if (typeof req.mac === 'string') sig.mac = req.mac
  return sig
}

const NONCE_BYTES = 16
const NONCE_RE = /^[0-9a-f]{32}$/

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
/** Challenges outstanding at once; the oldest goes first (a flood cannot grow memory). */
export const NONCES_MAX = 32

/**
 * The agent's challenges: each issued nonce is good for one request within
 * NONCE_TTL_MS. Pure: the caller passes the time and the randomness.
 */
export class ControlNonces {
  private readonly issued = new Map<string, number>() // nonce → expiry

  constructor(private readonly random: (bytes: number) => Buffer) {}

  issue(nowMs: number): string {
    const nonce = this.random(NONCE_BYTES).toString('hex')
    if (this.issued.size >= NONCES_MAX) this.issued.delete(this.issued.keys().next().value!)
    this.issued.set(nonce, nowMs + NONCE_TTL_MS)
    return nonce
  }

  /** Uses up a nonce: true when it was issued, unused and still in time. */
  take(nonce: string | undefined, nowMs: number): boolean {
    if (nonce === undefined) return false
    const expiry = this.issued.get(nonce)
    if (expiry === undefined) return false
    this.issued.delete(nonce)
    return nowMs <= expiry
  }
}
