// A datagram transport over node:dgram: one UDP socket, bound to an address and port,
// that sends from that same port. CARP binds 0.0.0.0:carp.port so one socket hears
// unicast adverts and its multicast group (unicast peers name the port in
// carp.N.peer); state sync binds the board's sync address; the witness and the WAN
// probes take any port. The caller says the TTL and the group; this file knows no
// protocol.

import { createSocket, type Socket } from 'node:dgram'
import type { Endpoint } from '../config/types.js'
import type { Transport } from './transport.js'

export interface UdpOptions {
  port: number
  /** Address to bind; '0.0.0.0' to receive multicast ('::' for an IPv6 socket). */
  bindAddress: string
  /** An IPv6 socket (IPv6 only: an IPv4 socket may have the same port); IPv4 by default. */
  ipv6?: boolean
  /**
   * Interface name → its IPv4 address, for each interface that joins `multicastGroup`
   * (for IPv6, `::%name`: the interface is the address's scope).
   */
  multicastInterfaces: ReadonlyMap<string, string>
  /**
   * More interfaces multicast may be sent from (name → an IPv4 address it holds when
   * it sends, or `::%name`), without joining the group on them: a vhid's macvlan.
   */
  sendInterfaces?: ReadonlyMap<string, string>
  /** The group joined on `multicastInterfaces` (needed when there are any). */
  multicastGroup?: string
  /** TTL of unicast and multicast datagrams sent; the system's default when unset. */
  ttl?: number
  /** Asks for a larger socket receive buffer (the kernel caps it at net.core.rmem_max). */
  recvBufferBytes?: number
}

export async function openUdpTransport(opts: UdpOptions): Promise<Transport> {
  const group = opts.multicastGroup
  if (opts.multicastInterfaces.size > 0 && group === undefined) throw new Error('multicast interfaces without a group')
  const sock = opts.ipv6 ? createSocket({ type: 'udp6', ipv6Only: true }) : createSocket({ type: 'udp4' })
  await new Promise<void>((resolve, reject) => {
    sock.once('error', reject)
    sock.bind(opts.port, opts.bindAddress, () => {
      sock.off('error', reject)
      resolve()
    })
  })
  // After bind, a socket error must not crash the agent: each send reports its own.
  sock.on('error', () => {})
  if (opts.ttl !== undefined) sock.setTTL(opts.ttl)
  if (opts.recvBufferBytes !== undefined) sock.setRecvBufferSize(opts.recvBufferBytes)
  if (group !== undefined && opts.multicastInterfaces.size > 0) {
    if (opts.ttl !== undefined) sock.setMulticastTTL(opts.ttl)
    sock.setMulticastLoopback(false)
    for (const address of opts.multicastInterfaces.values()) sock.addMembership(group, address)
  }
  return udpTransport(sock, new Map([...opts.multicastInterfaces, ...(opts.sendInterfaces ?? [])]), group)
}

/** The transport over an open socket (exported for tests with a recording socket). */
export function udpTransport(sock: Socket, ifaces: ReadonlyMap<string, string>, group?: string): Transport {
  // The outgoing multicast interface is a socket option, so multicast sends are
  // chained: each one sets it only after the previous datagram has left.
  let multicastChain: Promise<unknown> = Promise.resolve()
  const sendNow = (payload: Buffer, to: Endpoint): Promise<void> =>
    new Promise((resolve, reject) => sock.send(payload, to.port, to.address, (err) => (err ? reject(err) : resolve())))
  return {
    send(payload, to, iface) {
      const ifaceAddr = iface === undefined ? undefined : ifaces.get(iface)
      // A link-local unicast peer is reached through the named interface (its zone).
      if (iface !== undefined && /^fe[89ab]/i.test(to.address)) return sendNow(payload, { address: `${to.address}%${iface}`, port: to.port })
      if (to.address !== group || ifaceAddr === undefined) return sendNow(payload, to)
      const sent = multicastChain.then(() => {
        sock.setMulticastInterface(ifaceAddr)
        return sendNow(payload, to)
      })
      multicastChain = sent.catch(() => {})
      return sent
    },
    onPacket(handler) {
      sock.removeAllListeners('message')
      // A link-local IPv6 source comes with the zone it arrived in ("fe80::1%eth0"):
      // the address alone is what the configuration and the checks name; the zone
      // says which interface it came in on.
      sock.on('message', (msg, rinfo) => {
        const zone = rinfo.address.indexOf('%')
        if (zone < 0) handler(msg, { address: rinfo.address, port: rinfo.port })
        else handler(msg, { address: rinfo.address.slice(0, zone), port: rinfo.port }, rinfo.address.slice(zone + 1))
      })
    },
    close: () => new Promise((resolve) => sock.close(() => resolve())),
  }
}
