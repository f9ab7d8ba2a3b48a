// The control socket: JSON requests and replies over UDP on loopback (SPEC: network
// I/O only through node:dgram; `carpd status` and `carpd ctl` are its clients).
// Bound to 127.0.0.1 only, so only processes on the board itself can reach it.

import { createSocket } from 'node:dgram'
import { type ControlReply, type ControlRequest, parseControlRequest } from '../control.js'

export const CONTROL_ADDRESS = '127.0.0.1'
export const CONTROL_TIMEOUT_MS = 2000

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
