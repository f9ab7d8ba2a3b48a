// `carpd fence NODE`: the child that guards a master's VIPs (platform/fence.ts). It
// ignores the signals a terminal sends to the whole process group, so carpd drops its
// holds first; it ends when carpd's end of the pipe closes and its watch after that is
// over.

import { EXIT_OK } from '../config/constants.js'
import { realClock } from '../io/clock.js'
import { lineLogger } from '../io/log.js'
import { execRunner } from '../platform/exec.js'
import { FenceCore } from '../platform/fence.js'
import { linuxPlatform } from '../platform/linux.js'

export function fence(node: string): Promise<number> {
  const clock = realClock()
  const log = lineLogger(node, (line) => process.stderr.write(line), clock.wall)
  const platform = linuxPlatform({ run: execRunner, log })
  const core = new FenceCore({
    clock,
    log,
    removeVip: (iface, vip) => platform.removeVip(iface, vip),
    addresses: (iface) => platform.addresses(iface),
    reply: (line) => process.stdout.write(`${line}\n`),
  })
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, () => {})
  return new Promise((resolve) => {
    process.stdin.setEncoding('utf8').on('data', (chunk: string) => core.push(chunk))
    process.stdin.on('end', () => void core.end().then(() => resolve(EXIT_OK)))
  })
}
