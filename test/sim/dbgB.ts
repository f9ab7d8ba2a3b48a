import { World, drawScenario } from './world.js'
import { readFileSync } from 'node:fs'
const seeds = readFileSync('/tmp/failseeds', 'utf8').trim().split(/\s+/).map(Number)
for (const seed of seeds) {
  const r = await new World(drawScenario(seed, 60_000)).run()
  if (r.violations.length) console.log(seed, r.violations[0].what)
}
console.log('done')
