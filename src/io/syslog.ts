// Remote syslog (log.syslog): every event as one RFC 5424 message in one UDP datagram
// (RFC 5426), through node:dgram. Fire and forget: a server that is down or a name
// that does not resolve loses messages, never blocks or stops carpd; what could not be
// sent is counted and said once on the console (not per message, which would repeat).

import { createSocket } from 'node:dgram'
import { type Logger, syslogMessage } from './log.js'

/** RFC 5426: every receiver takes 480 bytes over IPv4, and should take 2048. */
const MAX_DATAGRAM_BYTES = 2048
export const SYSLOG_PORT = 514

export interface SyslogSender extends Logger {
  /** Datagrams that could not be sent. */
  readonly failed: number
  close(): void
}

export interface SyslogOptions {
  host: string
  port: number // 0 = 514
  facility: string
  node: string
  wall: () => Date
  /** Where the first failure is said (the console logger). */
  console: Logger
}

export function openSyslog(opts: SyslogOptions): SyslogSender {
  const socket = createSocket('udp4')
  socket.unref()
  const port = opts.port === 0 ? SYSLOG_PORT : opts.port
  let failed = 0
  let said = false
  const onError = (err: Error | null): void => {
    if (err === null) return
    failed++
    if (said) return
    said = true
    opts.console.event('log', `syslog to ${opts.host}:${port} failed (${err.message}); carpd goes on, and says this once`)
  }
  socket.on('error', onError)
  return {
    get failed() {
      return failed
    },
    event(subsystem, message) {
      let data = Buffer.from(syslogMessage(opts.facility, opts.node, process.pid, opts.wall(), subsystem, message))
      if (data.length > MAX_DATAGRAM_BYTES) {
        // Cut on a character's first byte, never inside a UTF-8 sequence.
        let end = MAX_DATAGRAM_BYTES
        while (end > 0 && (data[end]! & 0xc0) === 0x80) end--
        data = data.subarray(0, end)
      }
      try {
        socket.send(data, port, opts.host, onError)
      } catch (err) {
        onError(err as Error)
      }
    },
    close() {
      socket.close()
    },
  }
}
