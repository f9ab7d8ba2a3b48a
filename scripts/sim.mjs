// npm run sim -- --seeds N [--seed S] [--seconds T]: the deterministic simulation of
// the pair (test/sim/), bundled so it runs on plain node.
import { spawnSync } from 'node:child_process'
import { bundleTs } from './bench-lib.mjs'

const file = await bundleTs('test/sim/run.ts', 'sim-run.mjs')
const r = spawnSync(process.execPath, [file, ...process.argv.slice(2)], { stdio: 'inherit' })
process.exit(r.status ?? 1)
