import { World, drawScenario } from './world.js'
const from = Number(process.argv[2]); const n = Number(process.argv[3])
let commits = 0; let failed = 0
for (let seed = from; seed < from + n; seed++) {
  const w = new World(drawScenario(seed, 60_000))
  const r = await w.run()
  commits += w.commitsChecked
  if (r.violations.length) { failed++; console.log(seed, r.violations.map((v) => `${v.atMs} ${v.what}`).join(' | ')) }
}
console.log('commits checked', commits, 'failed', failed)
