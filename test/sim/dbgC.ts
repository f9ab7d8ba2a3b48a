import { World, drawScenario } from './world.js'
const seed = Number(process.argv[2]); const secs = Number(process.argv[3] ?? 60)
const w = new World(drawScenario(seed, secs * 1000))
await w.run()
for (const b of w.boards) {
  const st = b.board?.status() as any
  const e = (b.board as any)?.sync?.engine ?? (b.board as any)?.syncRuntime?.engine
  console.log(b.name, JSON.stringify(st?.sync?.counters), JSON.stringify(st?.sync?.drops), JSON.stringify(st?.sync?.peer), JSON.stringify(st?.sync?.lag))
  if (e) console.log(' expected', e.expected, 'early', e.early.size, 'peerEpoch', e.peerEpoch?.toString(16), 'epoch', e.epoch.toString(16), 'nextSeq', e.nextSeq, 'unacked', [...e.unacked.keys()].slice(0,5))
}
