// How the agent sends and receives CARP datagrams. io/udp.ts is the node:dgram one;
// tests wire several agents together with an in-memory one (test/helpers/net.ts).

import type { Endpoint } from '../config/types.js'

export interface Transport {
  /**
   * Sends one datagram; rejects when the OS refuses it (counted as a send error).
   * `iface` names the interface a multicast datagram must leave by.
   */
  send(payload: Buffer, to: Endpoint, iface?: string): Promise<void>
  /** Registers the single receiver of incoming datagrams. */
  onPacket(handler: (payload: Buffer, from: Endpoint) => void): void
  close(): Promise<void>
}
