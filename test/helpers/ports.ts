// Free UDP ports on loopback for tests that open real sockets.
import { createSocket } from 'node:dgram'

export async function freeUdpPort(): Promise<number> {
  const sock = createSocket('udp4')
  await new Promise<void>((resolve) => sock.bind(0, '127.0.0.1', resolve))
  const { port } = sock.address()
  await new Promise<void>((resolve) => sock.close(() => resolve()))
  return port
}
