// Small helpers the codecs share: a Buffer view of any byte array, and an integer
// check that throws the codec's own error.

export function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
}

/** `value` when it is an integer in min..max; else throws `fail(message)`. */
export function checkedInteger(value: number, min: number, max: number, what: string, fail: new (message: string) => Error): number {
  if (!Number.isInteger(value) || value < min || value > max) throw new fail(`${what} ${value} is not an integer in ${min}..${max}`)
  return value
}
