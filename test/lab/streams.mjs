// Long-lived TCP streams for the state-sync lab (a test tool, run by node inside a
// namespace; carpd itself never opens TCP).
//
//   node streams.mjs server ADDR PORT          every connection gets an endless byte
//                                              pattern, CHUNK bytes every TICK ms
//   node streams.mjs client ADDR PORT COUNT    opens COUNT connections, checks every
//                                              byte, prints a JSON report every 250 ms
//
// Byte n of every stream is n % 251, so a lost, repeated or corrupted byte shows as
// a mismatch, and a reset as an error: the lab asserts there are none.
import { createConnection, createServer } from 'node:net'

const [mode, addr, portText, countText] = process.argv.slice(2)
const port = Number(portText)
const CHUNK = 1024
const TICK_MS = 20
const REPORT_MS = 250
const pattern = Buffer.alloc(251 * CHUNK)
for (let i = 0; i < pattern.length; i++) pattern[i] = i % 251

if (mode === 'server') {
  const server = createServer((sock) => {
    let offset = 0
    sock.setNoDelay(true)
    const timer = setInterval(() => {
      // Keep the pattern going without queueing megabytes while the path is down.
      if (sock.writableLength > 64 * CHUNK) return
      const start = offset % 251
      sock.write(pattern.subarray(start, start + CHUNK))
      offset += CHUNK
    }, TICK_MS)
    sock.on('error', () => {})
    sock.on('close', () => clearInterval(timer))
  })
  server.listen(port, addr, () => process.stdout.write(`listening ${addr}:${port}\n`))
} else if (mode === 'client') {
  const count = Number(countText)
  const conns = []
  const errors = []
  for (let i = 0; i < count; i++) {
    const c = { bytes: 0, lastMs: 0, connected: false, closed: false, bad: 0 }
    conns.push(c)
    const sock = createConnection({ host: addr, port })
    sock.on('connect', () => (c.connected = true))
    sock.on('data', (data) => {
      for (let j = 0; j < data.length; j++) {
        if (data[j] !== (c.bytes + j) % 251) c.bad++
      }
      c.bytes += data.length
      c.lastMs = Date.now()
    })
    sock.on('error', (err) => errors.push(`conn ${i}: ${err.code ?? err.message}`))
    sock.on('close', () => (c.closed = true))
  }
  setInterval(() => {
    const report = {
      t: Date.now(),
      connected: conns.filter((c) => c.connected).length,
      closed: conns.filter((c) => c.closed).length,
      bad: conns.reduce((n, c) => n + c.bad, 0),
      bytes: conns.map((c) => c.bytes),
      last: conns.map((c) => c.lastMs),
      errors: errors.slice(0, 10),
      errorCount: errors.length,
    }
    process.stdout.write(`${JSON.stringify(report)}\n`)
  }, REPORT_MS)
} else {
  process.stderr.write('usage: streams.mjs server ADDR PORT | client ADDR PORT COUNT\n')
  process.exit(1)
}
