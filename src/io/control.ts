// The control socket: JSON requests and replies over UDP on loopback (SPEC: network
// I/O only through node:dgram; `carpd status` and `carpd ctl` are its clients).
// Bound to 127.0.0.1 only, so only processes on the board itself can reach it.

import { createSocket } from 'node:dgram'
import type { ControlReply, ControlRequest } from '../agent.js'

export const CONTROL_ADDRESS = '127.0.0.1'
/** Requests are tiny; anything larger is not ours. */
export const CONTROL_MAX_REQUEST_BYTES = 512
export const CONTROL_TIMEOUT_MS = 2000

/** Parses a request datagram; returns a message for the sender when it is not valid. */
export function parseControlRequest(bytes: Buffer): ControlRequest | { error: string } {
  if (bytes.length > CONTROL_MAX_REQUEST_BYTES) return { error: 'request too large' }
  let obj: unknown
  try {
    obj = JSON.parse(bytes.toString('utf8'))
  } catch {
    return { error: 'request is not JSON' }
  }
  if (typeof obj !== 'object' || obj === null) return { error: 'request is not an object' }
  const req = obj as Record<string, unknown>
  switch (req.cmd) {
    case 'status':
      return { cmd: 'status' }
    case 'maint':
      return typeof req.on === 'boolean' ? { cmd: 'maint', on: req.on } : { error: 'maint needs on: true|false' }
    case 'demote':
      return typeof req.value === 'number' ? { cmd: 'demote', value: req.value } : { error: 'demote needs a number' }
    default:
      return { error: `unknown command ${JSON.stringify(req.cmd)}` }
  }
}

export interface ControlServer {
  close(): Promise<void>
}

export async function startControlServer(port: number, handle: (req: ControlRequest) => ControlReply): Promise<ControlServer> {
  const sock = createSocket('udp4')
  sock.on('message', (msg, rinfo) => {
    const req = parseControlRequest(msg)
    const reply: ControlReply = 'error' in req ? { ok: false, error: req.error } : handle(req)
    sock.send(JSON.stringify(reply), rinfo.port, rinfo.address)
  })
  await new Promise<void>((resolve, reject) => {
    sock.once('error', reject)
    sock.bind(port, CONTROL_ADDRESS, () => {
      sock.off('error', reject)
      resolve()
    })
  })
  sock.on('error', () => {})
  return { close: () => new Promise((resolve) => sock.close(() => resolve())) }
}

/** Sends one request to the agent and waits for its reply. */
export function controlRequest(port: number, req: ControlRequest, timeoutMs = CONTROL_TIMEOUT_MS): Promise<ControlReply> {
  const sock = createSocket('udp4')
  return new Promise<ControlReply>((resolve, reject) => {
    const timer = setTimeout(() => {
      reject(new Error(`no answer from carpd on ${CONTROL_ADDRESS}:${port} within ${timeoutMs} ms (is it running? is control.port right?)`))
    }, timeoutMs)
    sock.on('error', (err) => {
      clearTimeout(timer)
      reject(err)
    })
    sock.on('message', (msg) => {
      clearTimeout(timer)
      try {
        resolve(JSON.parse(msg.toString('utf8')) as ControlReply)
      } catch {
        reject(new Error('carpd sent a reply that is not JSON'))
      }
    })
    sock.send(JSON.stringify(req), port, CONTROL_ADDRESS)
  }).finally(() => sock.close())
}
