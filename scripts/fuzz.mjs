// npm run fuzz -- [--inputs N] [--seed S] [--target NAME]: fuzzes every decoder and
// parser (test/fuzz/), bundled so it runs on plain node.
import { spawnSync } from 'node:child_process'
import { bundleTs } from './bench-lib.mjs'

const file = await bundleTs('test/fuzz/run.ts', 'fuzz-run.mjs')
const r = spawnSync(process.execPath, [file, ...process.argv.slice(2)], { stdio: 'inherit' })
process.exit(r.status ?? 1)
