// The Internet checksum (RFC 1071): the ones' complement of the ones' complement sum
// of the 16-bit words. carp(4) puts it over the whole CARP header.

/** Ones' complement checksum of `bytes`; a buffer holding a correct checksum sums to 0. */
export function internetChecksum(bytes: Uint8Array): number {
  let sum = 0
  for (let i = 0; i + 1 < bytes.length; i += 2) sum += (bytes[i]! << 8) | bytes[i + 1]!
  if (bytes.length % 2 === 1) sum += bytes[bytes.length - 1]! << 8
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16)
  return ~sum & 0xffff
}
