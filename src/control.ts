// The control protocol, pure: JSON requests and replies for `carpd status` and
// `carpd ctl` (the sockets are in io/control.ts).
//
// Any local process can ask for the status. Changing failover (maint, demote) needs
// a token derived from the CARP passwords, so only someone who can read the
// configuration's secrets (root, on a router) can do it: a local user cannot force
// a failover by sending one datagram to 127.0.0.1.

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
export type ControlRequest =
  | { cmd: 'status' }
  | { cmd: 'maint'; on: boolean; token?: string }
  | { cmd: 'demote'; value: number; token?: string }
  | { cmd: 'resync'; token?: string }

export type ControlReply = { ok: true; status: AgentStatus } | { ok: false; error: string }

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
    case 'maint':
      if (typeof req.on !== 'boolean') return { error: 'maint needs on: true|false' }
      return { cmd: 'maint', on: req.on, ...tokenOf(req) }
    case 'demote':
      if (typeof req.value !== 'number') return { error: 'demote needs a number' }
      return { cmd: 'demote', value: req.value, ...tokenOf(req) }
    case 'resync':
      return { cmd: 'resync', ...tokenOf(req) }
    default:
      return { error: `unknown command ${JSON.stringify(req.cmd)}` }
  }
}

function tokenOf(req: Record<string, unknown>): { token?: string } {
  return typeof req.token === 'string' ? { token: req.token } : {}
}

/** HMAC-SHA256 over the node name, keyed by every vhid's password in vhid order. */
export function controlToken(config: Config): string {
  const key = config.carp.vhids.map((v) => `${v.vhid}=${v.pass}`).join('\0')
  return createHmac('sha256', key).update(`carpd control ${config.node}`).digest('hex')
}

export function tokenValid(config: Config, token: string | undefined): boolean {
  if (token === undefined) return false
  const want = Buffer.from(controlToken(config))
  const got = Buffer.from(token)
  return got.length === want.length && timingSafeEqual(got, want)
}
