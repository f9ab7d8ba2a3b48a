import { World, drawScenario } from './world.js'
import { decodeSyncFrame } from '../../src/wire/sync.js'
const seed = Number(process.argv[2]); const secs = Number(process.argv[3] ?? 60)
const w = new World(drawScenario(seed, secs * 1000))
const watch = Number(process.argv[4])
const origStart = w.boards[0].constructor.prototype
void origStart
const patched = new Set<unknown>()
const timer = setInterval(() => {
  for (const b of w.boards) {
    const e = (b.board as any)?.sync?.engine
    if (!e || patched.has(e)) continue
    patched.add(e)
    const recv = e.receive.bind(e)
    e.receive = (bytes: Buffer, fromPeer: boolean, now: number) => {
      const d = decodeSyncFrame(bytes, e.opts.key)
      const before = { exp: e.expected, pe: e.peerEpoch?.toString(16), lost: e.lostPeerEpoch?.toString(16), un: e.unacked.has(watch) }
      const out = recv(bytes, fromPeer, now)
      if (d.ok) {
        const f = d.frame
        const interesting = (f.seq >= watch - 2 && f.seq <= watch + 1) || (before.un && !e.unacked.has(watch))
        if (interesting) console.log((now/1000).toFixed(3), b.name, 'got', f.epoch.toString(16), 'seq', f.seq, f.ackOnly ? 'ackOnly' : '', 'ack', f.ackEpoch?.toString(16), f.ack, JSON.stringify(f.sections.filter((s: any) => s.type === 'ack')), 'before', JSON.stringify(before), 'after exp', e.expected, 'unackedWatch', e.unacked.has(watch))
      }
      return out
    }
  }
}, 0)
await w.run()
clearInterval(timer)
