// Ids shared by every wire format between the boards and the witness: a node's
// sender id (sync frames, votes, heartbeats) and how console lines print ids and
// boot epochs. Pure.
import { createHash } from 'node:crypto'

/** A node's id in the headers: the first 4 bytes of sha256(name), as a u32. */
export function senderId(node: string): number {
  return createHash('sha256').update(node).digest().readUInt32BE(0)
}

/** A sender id or an epoch (u32) as console lines print it: 8 hex digits. */
export function idHex(id: number): string {
  return (id >>> 0).toString(16).padStart(8, '0')
}
