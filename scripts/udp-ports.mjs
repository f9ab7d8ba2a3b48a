// UDP helpers shared by the scripts (demo, bench): a socket bound to a free loopback
// port, and a free port number.
import { createSocket } from 'node:dgram'

/** A UDP socket bound to a free port on 127.0.0.1. */
export async function listener() {
  const sock = createSocket('udp4')
  await new Promise((resolve) => sock.bind(0, '127.0.0.1', resolve))
  return sock
}

/** A port that was free a moment ago (bound, read, closed). */
export async function freePort() {
  const sock = await listener()
  const { port } = sock.address()
  await new Promise((resolve) => sock.close(resolve))
  return port
}
