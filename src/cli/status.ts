// `carpd status` and `carpd ctl ...`: one request to the running board over the
// control socket (io/control.ts), signed for ctl (control/protocol.ts), and the
// reply printed.

import { EXIT_OK, EXIT_RUNTIME, EXIT_USAGE } from '../config/constants.js'
import { type ControlReply, type ControlRequest, requestMac } from '../control/protocol.js'
import { renderStatus } from '../control/render.js'
import { controlRequest } from '../io/control.js'

/** One request to the board on 127.0.0.1:port; its reply. */
const request = async (port: number, req: ControlRequest): Promise<ControlReply> => (await controlRequest(port, req)) as ControlReply
import { type Args, DEFAULT_CONFIG, DEFAULT_CONTROL_PORT } from './args.js'
import { configFor } from './config-file.js'

const RESYNC_POLL_MS = 200

/** `carpd ctl` words to a request, or what is wrong with them. */
export function ctlRequest(positional: readonly string[]): ControlRequest | string {
  const [what, arg] = positional
  if (what === 'maint' && (arg === 'on' || arg === 'off') && positional.length === 2) return { cmd: 'maint', on: arg === 'on' }
  if (what === 'demote' && arg !== undefined && /^\d+$/.test(arg) && positional.length === 2) {
    const value = Number(arg)
    if (value <= 255) return { cmd: 'demote', value }
    return `demote ${arg}: out of range (allowed: 0..255)`
  }
  if (what === 'resync' && positional.length === 1) return { cmd: 'resync' }
  return `ctl ${positional.join(' ')}: expected maint on|off, demote N or resync`
}

export async function ask(args: Args, req: ControlRequest): Promise<number> {
  const needsToken = req.cmd !== 'status'
  const config = configFor(args, needsToken)
  if (needsToken && config === null) {
    process.stderr.write(`carpd: ${DEFAULT_CONFIG} not found: ctl needs the configuration (-c FILE) to prove it may act\n`)
    return EXIT_USAGE
  }
  const port = config?.controlPort ?? DEFAULT_CONTROL_PORT
  try {
    let signed = req
    if (needsToken) {
      // The board's challenge, answered for this request only (control/protocol.ts).
      const challenge = await request(port, { cmd: 'challenge' })
      if (!challenge.ok || !('nonce' in challenge)) {
        const older = !challenge.ok && /unknown command "challenge"/.test(challenge.error)
        const why = older ? 'the running agent is older than this carpd (it knows no challenge): restart it with this version first' : challenge.ok ? 'the agent sent no challenge' : challenge.error
        process.stderr.write(`carpd: ${why}\n`)
        return EXIT_RUNTIME
      }
      signed = { ...req, nonce: challenge.nonce, mac: requestMac(config!, challenge.nonce, req) } as ControlRequest
    }
    const sentAt = Date.now()
    const reply = await request(port, signed)
    if (!reply.ok || !('status' in reply)) {
      process.stderr.write(`carpd: ${reply.ok ? 'the agent sent no status' : reply.error}\n`)
      return EXIT_RUNTIME
    }
    if (req.cmd === 'resync') return await followResync(port, config!.sync.bulkTimeoutMs, sentAt)
    process.stdout.write(args.json ? `${JSON.stringify(reply.status, null, 2)}\n` : renderStatus(reply.status))
    return EXIT_OK
  } catch (err) {
    process.stderr.write(`carpd: ${(err as Error).message}\n`)
    return EXIT_RUNTIME
  }
}

/** Polls the board until the resync it was asked for is done, printing progress. */
async function followResync(port: number, timeoutMs: number, requestedAt: number): Promise<number> {
  const deadline = Date.now() + timeoutMs + RESYNC_POLL_MS
  let said = ''
  const say = (line: string): void => {
    if (line !== said) process.stdout.write(`${line}\n`)
    said = line
  }
  say('resync: asked the peer for its whole table and sending ours')
  while (Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, RESYNC_POLL_MS))
    const reply = await request(port, { cmd: 'status' })
    const sync = reply.ok && 'status' in reply ? reply.status.sync : null
    if (!sync) break
    const { receiving, sending, lastIn, wanted } = sync.bulk
    if (receiving) say(`resync: received ${receiving.done} of ${receiving.total} states`)
    else if (sending) say(`resync: sent ${sending.done} of ${sending.total} states`)
    // A bulk transfer that ended after the request (it is younger than the request).
    const fresh = lastIn !== null && lastIn.agoMs < Date.now() - requestedAt
    if (wanted === null && fresh && sending === null) {
      say(`resync: done, ${lastIn.done} states from the peer in ${lastIn.ms} ms; peer table ${sync.states.peer}, own ${sync.states.local}`)
      return EXIT_OK
    }
    if (wanted === null && !fresh) break
  }
  process.stderr.write('carpd: resync: no bulk transfer from the peer (is it up? see carpd status)\n')
  return EXIT_RUNTIME
}
