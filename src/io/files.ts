// Reading the files an operator names (the configuration, secret files, the
// witness's state): bounded in size and only regular files, read without blocking;
// and replacing a small state file so that a power cut never leaves it torn.
// A FIFO named as a config or a secret once blocked `check`, `run` and a reload
// until someone wrote to it; /dev/zero or /dev/urandom grew memory past 4 GB.

import { closeSync, constants, fstatSync, fsyncSync, openSync, readSync, renameSync, statSync, type Stats, writeSync } from 'node:fs'
import { dirname } from 'node:path'

/**
 * The configuration: 255 vhids with a few VIPs and peers each take about 60 KB. A
 * file this large of nothing but errors loads in ~25 ms here, so a reload (on the
 * event loop) stays under 50 ms.
 */
export const CONFIG_MAX_BYTES = 128 * 1024
/** A secret file holds one secret. */
export const SECRET_FILE_MAX_BYTES = 4096

/**
 * A read refused or failed: `code` is the errno (ENOENT, EACCES...) or, for ours,
 * 'not a regular file' / 'too large'; the message adds what it was and its size.
 * Neither ever quotes the file's content (it may be a secret).
 */
export class FileReadError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message)
  }
}

/**
 * The text of a regular file of at most `maxBytes`. Opened with O_NONBLOCK, so a FIFO
 * (or a device) is seen for what it is at once instead of blocking the caller.
 */
export function readBoundedFile(path: string, maxBytes: number): string {
  // A look before opening: opening some devices does something (/dev/watchdog arms
  // the watchdog). The fstat below still judges what was opened.
  let before: Stats
  try {
    before = statSync(path)
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'EIO'
    throw new FileReadError(code, code)
  }
  if (!before.isFile()) throw new FileReadError('not a regular file', `not a regular file (${kindOf(before)})`)
  let fd: number
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY)
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'EIO'
    throw new FileReadError(code, code)
  }
  try {
    const st = fstatSync(fd)
    if (!st.isFile()) throw new FileReadError('not a regular file', `not a regular file (${kindOf(st)})`)
    if (st.size > maxBytes) throw new FileReadError('too large', `${st.size} bytes, more than the ${maxBytes} allowed`)
    // The size may grow while we read: one byte more than allowed says so.
    const buf = Buffer.alloc(maxBytes + 1)
    let n = 0
    for (let got = -1; got !== 0 && n < buf.length; n += got) got = readSync(fd, buf, n, buf.length - n, n)
    if (n > maxBytes) throw new FileReadError('too large', `more than the ${maxBytes} bytes allowed`)
    return buf.subarray(0, n).toString('utf8')
  } catch (err) {
    if (err instanceof FileReadError) throw err
    const code = (err as NodeJS.ErrnoException).code ?? 'EIO'
    throw new FileReadError(code, code)
  } finally {
    closeSync(fd)
  }
}

function kindOf(st: Stats): string {
  if (st.isFIFO()) return 'a FIFO'
  if (st.isCharacterDevice()) return 'a character device'
  if (st.isBlockDevice()) return 'a block device'
  if (st.isDirectory()) return 'a directory'
  if (st.isSocket()) return 'a socket'
  return 'not a file'
}

/**
 * Replaces a file atomically: a temporary file, flushed, renamed over it, and the
 * directory flushed, so a power cut leaves the old content or the new, never a torn
 * file (CF cards are written without a UPS).
 */
export function replaceFile(path: string, text: string, mode: number): void {
  const tmp = `${path}.tmp`
  const fd = openSync(tmp, 'w', mode)
  try {
    writeSync(fd, text)
    fsyncSync(fd)
  } finally {
    closeSync(fd)
  }
  renameSync(tmp, path)
  try {
    const dir = openSync(dirname(path), 'r')
    try {
      fsyncSync(dir)
    } finally {
      closeSync(dir)
    }
  } catch {
    // Some file systems refuse fsync on a directory; the rename itself is atomic.
  }
}
