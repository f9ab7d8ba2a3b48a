// One UDP socket, two protocols: the sync link carries state-sync frames (first byte
// SYNC_VERSION) and heartbeats/votes (first byte VOTE_VERSION). demux() gives each its
// own Transport over the shared socket, so neither module knows of the other.

import type { Transport } from './transport.js'

/** Splits `t` by the datagram's first byte: `[matching, others]`. Closing either closes the socket once. */
export function demux(t: Transport, firstByte: number): [Transport, Transport] {
  type Handler = Parameters<Transport['onPacket']>[0]
  const handlers: [Handler | null, Handler | null] = [null, null]
  t.onPacket((payload, from, iface) => handlers[payload.length > 0 && payload[0] === firstByte ? 0 : 1]?.(payload, from, iface))
  let closed: Promise<void> | null = null
  const side = (i: 0 | 1): Transport => ({
    send: (payload, to, iface) => t.send(payload, to, iface),
    onPacket: (h) => {
      handlers[i] = h
    },
    close: () => (closed ??= t.close()),
  })
  return [side(0), side(1)]
}
