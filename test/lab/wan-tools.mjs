// Test tools for the multi-WAN lab, run by node inside a namespace (carpd itself never
// opens TCP and answers no DNS).
//
//   node wan-tools.mjs dns ADDR                  answers every DNS query on ADDR:53 with
//                                                an empty NOERROR response (the question
//                                                echoed): an ISP's resolver
//   node wan-tools.mjs whoami ADDR PORT          TCP server: tells every connection the
//                                                address it came from, then keeps it open
//                                                and sends a line every 100 ms
//   node wan-tools.mjs connect ADDR PORT COUNT [HOLD]
//                                                opens COUNT connections one after another
//                                                (HOLD: keeps them open and reports the
//                                                bytes each received every 250 ms); prints
//                                                one JSON line per connection: {i, from}
import { createSocket } from 'node:dgram'
import { createConnection, createServer } from 'node:net'

const [mode, addr, portText, countText, holdText] = process.argv.slice(2)

if (mode === 'dns') {
  const sock = createSocket('udp4')
  sock.on('message', (msg, rinfo) => {
    if (msg.length < 12) return
    const reply = Buffer.from(msg)
    reply[2] = 0x81 // QR, RD
    reply[3] = 0x80 // RA, NOERROR
    reply.writeUInt16BE(0, 6) // no answers
    reply.writeUInt16BE(0, 8)
    reply.writeUInt16BE(0, 10)
    sock.send(reply, rinfo.port, rinfo.address)
  })
  sock.bind(53, addr, () => process.stdout.write(`dns listening ${addr}:53\n`))
} else if (mode === 'whoami') {
  const server = createServer((c) => {
    c.write(`${c.remoteAddress}\n`)
    const timer = setInterval(() => c.write('.'.repeat(99) + '\n'), 100)
    c.on('error', () => {})
    c.on('close', () => clearInterval(timer))
  })
  server.listen(Number(portText), addr, () => process.stdout.write(`whoami listening ${addr}:${portText}\n`))
} else if (mode === 'connect') {
  const count = Number(countText)
  const hold = holdText === 'hold'
  const conns = []
  for (let i = 0; i < count; i++) {
    const from = await new Promise((resolve) => {
      const c = createConnection({ host: addr, port: Number(portText) })
      let buf = ''
      const state = { i, from: null, bytes: 0, error: null, closed: false }
      c.setTimeout(5000, () => c.destroy(new Error('timeout')))
      c.on('data', (d) => {
        state.bytes += d.length
        if (state.from === null) {
          buf += d.toString()
          const nl = buf.indexOf('\n')
          if (nl >= 0) {
            state.from = buf.slice(0, nl)
            c.setTimeout(0)
            if (!hold) c.destroy()
            resolve(state.from)
          }
        }
      })
      c.on('error', (err) => {
        state.error = err.message
        resolve(null)
      })
      c.on('close', () => (state.closed = true))
      if (hold) conns.push(state)
    })
    process.stdout.write(`${JSON.stringify({ i, from })}\n`)
  }
  process.stdout.write('connected\n')
  if (hold) {
    setInterval(() => {
      process.stdout.write(`${JSON.stringify({ t: Date.now(), conns: conns.map((s) => ({ from: s.from, bytes: s.bytes, error: s.error, closed: s.closed })) })}\n`)
    }, 250)
  } else {
    process.exit(0)
  }
}
