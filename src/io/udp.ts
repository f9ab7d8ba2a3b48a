// The CARP transport over node:dgram: one socket bound to carp.port, so it receives
// both unicast adverts and the 224.0.0.18 group, and sends from that same port
// (unicast peers name it, address and port, in carp.N.peer).

import { createSocket, type Socket } from 'node:dgram'
import { CARP_MULTICAST_GROUP, CARP_TTL } from '../carp/constants.js'
import type { Endpoint } from '../config/types.js'
import type { Transport } from './transport.js'

export interface UdpOptions {
  port: number
  /** Address to bind; '0.0.0.0' to receive multicast. */
  bindAddress: string
  /** Interface name → its IPv4 address, for each interface that carries a multicast vhid. */
  multicastInterfaces: ReadonlyMap<string, string>
  /** Asks for a larger socket receive buffer (the kernel caps it at net.core.rmem_max). */
  recvBufferBytes?: number
}

export async function openUdpTransport(opts: UdpOptions): Promise<Transport> {
  const sock = createSocket({ type: 'udp4' })
  await new Promise<void>((resolve, reject) => {
    sock.once('error', reject)
    sock.bind(opts.port, opts.bindAddress, () => {
      sock.off('error', reject)
      resolve()
    })
  })
  // After bind, a socket error must not crash the agent: each send reports its own.
  sock.on('error', () => {})
  sock.setTTL(CARP_TTL)
  if (opts.recvBufferBytes !== undefined) sock.setRecvBufferSize(opts.recvBufferBytes)
  if (opts.multicastInterfaces.size > 0) {
    sock.setMulticastTTL(CARP_TTL)
    sock.setMulticastLoopback(false)
    for (const address of opts.multicastInterfaces.values()) sock.addMembership(CARP_MULTICAST_GROUP, address)
  }
  return udpTransport(sock, opts.multicastInterfaces)
}

/** The transport over an open socket (exported for tests with a recording socket). */
export function udpTransport(sock: Socket, ifaces: ReadonlyMap<string, string>): Transport {
  // The outgoing multicast interface is a socket option, so multicast sends are
  // chained: each one sets it only after the previous datagram has left.
  let multicastChain: Promise<unknown> = Promise.resolve()
  const sendNow = (payload: Buffer, to: Endpoint): Promise<void> =>
    new Promise((resolve, reject) => sock.send(payload, to.port, to.address, (err) => (err ? reject(err) : resolve())))
  return {
    send(payload, to, iface) {
      const ifaceAddr = iface === undefined ? undefined : ifaces.get(iface)
      if (to.address !== CARP_MULTICAST_GROUP || ifaceAddr === undefined) return sendNow(payload, to)
      const sent = multicastChain.then(() => {
        sock.setMulticastInterface(ifaceAddr)
        return sendNow(payload, to)
      })
      multicastChain = sent.catch(() => {})
      return sent
    },
    onPacket(handler) {
      sock.removeAllListeners('message')
      sock.on('message', (msg, rinfo) => handler(msg, { address: rinfo.address, port: rinfo.port }))
    },
    close: () => new Promise((resolve) => sock.close(() => resolve())),
  }
}
