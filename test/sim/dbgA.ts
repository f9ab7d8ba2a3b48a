import { World, drawScenario } from './world.js'
const seed = Number(process.argv[2]); const secs = Number(process.argv[3] ?? 60)
const w = new World(drawScenario(seed, secs * 1000))
const r = await w.run()
console.log(r.violations.map((v) => `${v.atMs} ${v.what}`))
const pat = new RegExp(process.argv[4] ?? 'carp|fence|quorum|heartbeat')
console.log(r.lines.filter((l) => pat.test(l)).join('\n'))
console.log('holders', w.holding(), 'changes', w.holderChanges.map(c=>JSON.stringify(c)).slice(-10))
