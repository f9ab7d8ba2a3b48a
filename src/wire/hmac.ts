// HMAC (RFC 2104) with the key's pads worked out once. createHmac() sets up an
// OpenSSL MAC context, a JS object and its streams for every message; an idle
// master at 11.7 ms adverts runs cold code at each one, and the fewer functions an
// advert touches the less it costs. A prepared key costs two one-shot hashes per
// message, over buffers kept between messages:
//
//   HMAC(K, m) = H((K' xor opad) || H((K' xor ipad) || m))
//
// where K' is K padded with zeros to the hash's block (or H(K) first, when K is
// longer than the block). Byte-exact with createHmac (test/wire/hmac.test.ts).

import { createHash, hash } from 'node:crypto'

export type HmacAlgorithm = 'sha1' | 'sha256'

/** Both hashes work on 64-byte blocks. */
const BLOCK_BYTES = 64
const DIGEST_BYTES: Record<HmacAlgorithm, number> = { sha1: 20, sha256: 32 }
const IPAD = 0x36
const OPAD = 0x5c

/** One-shot hash where Node has it (20.12 and later), else a hash object. */
const digest: (algorithm: HmacAlgorithm, data: Uint8Array) => Buffer =
  typeof hash === 'function' ? (algorithm, data) => hash(algorithm, data, 'buffer') : (algorithm, data) => createHash(algorithm).update(data).digest()

export class PreparedHmac {
  /** K' xor ipad, then the message being signed (grown when a longer one comes). */
  private inner: Buffer
  /** K' xor opad, then the inner hash. */
  private readonly outer: Buffer

  constructor(
    private readonly algorithm: HmacAlgorithm,
    key: string | Uint8Array,
  ) {
    let k: Buffer = typeof key === 'string' ? Buffer.from(key, 'utf8') : Buffer.from(key)
    if (k.length > BLOCK_BYTES) k = digest(algorithm, k)
    this.inner = Buffer.alloc(BLOCK_BYTES + 64)
    this.outer = Buffer.alloc(BLOCK_BYTES + DIGEST_BYTES[algorithm])
    for (let i = 0; i < BLOCK_BYTES; i++) {
      const byte = k[i] ?? 0
      this.inner[i] = byte ^ IPAD
      this.outer[i] = byte ^ OPAD
    }
  }

  /** The HMAC of the message `head` then `tail` (a new buffer, the digest's length). */
  sign(head: Uint8Array, tail?: Uint8Array): Buffer {
    const length = BLOCK_BYTES + head.length + (tail?.length ?? 0)
    if (length > this.inner.length) {
      const grown = Buffer.alloc(length)
      this.inner.copy(grown, 0, 0, BLOCK_BYTES)
      this.inner = grown
    }
    this.inner.set(head, BLOCK_BYTES)
    if (tail) this.inner.set(tail, BLOCK_BYTES + head.length)
    this.outer.set(digest(this.algorithm, this.inner.subarray(0, length)), BLOCK_BYTES)
    return digest(this.algorithm, this.outer)
  }
}

/** Prepared keys of hmacOf(), by algorithm and key; a config has a handful of keys. */
const prepared = new Map<string, PreparedHmac>()
const MAX_PREPARED_KEYS = 16

/**
 * The HMAC of `data` under `key`, with the key's pads worked out once per key (votes
 * and sync frames sign with the same few configured keys all the time). A reload that
 * changes keys makes new entries; past MAX_PREPARED_KEYS the cache starts again.
 */
export function hmacOf(algorithm: HmacAlgorithm, key: string, data: Uint8Array): Buffer {
  const id = `${algorithm}\0${key}`
  let h = prepared.get(id)
  if (h === undefined) {
    if (prepared.size >= MAX_PREPARED_KEYS) prepared.clear()
    h = new PreparedHmac(algorithm, key)
    prepared.set(id, h)
  }
  return h.sign(data)
}
