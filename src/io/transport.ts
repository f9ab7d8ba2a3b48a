// How the agent sends and receives CARP datagrams. io/udp.ts is the node:dgram one;
// tests wire several agents together with an in-memory one (test/helpers/net.ts).

import type { Endpoint } from '../config/types.js'

export interface Transport {
  /**
   * Sends one datagram; rejects when the OS refuses it (counted as a send error).
   * `iface` names the interface a multicast datagram must leave by.
   */
  send(payload: Buffer, to: Endpoint, iface?: string): Promise<void>
  /**
   * Registers the single receiver of incoming datagrams. `iface`: the interface a
   * link-local IPv6 datagram came in on (its zone), where the socket says.
   */
  onPacket(handler: (payload: Buffer, from: Endpoint, iface?: string) => void): void
  close(): Promise<void>
}

/**
 * One transport over an IPv4 and an IPv6 one: a datagram leaves by the one of its
 * destination's family; both deliver to the one receiver. (IPv6 addresses are the
 * ones with a colon: wire/ip.ts.)
 */
export function dualTransport(v4: Transport, v6: Transport): Transport {
  return {
    send: (payload, to, iface) => (to.address.includes(':') ? v6 : v4).send(payload, to, iface),
    onPacket(handler) {
      v4.onPacket(handler)
      v6.onPacket(handler)
    },
    close: async () => {
      await v4.close()
      await v6.close()
    },
  }
}
