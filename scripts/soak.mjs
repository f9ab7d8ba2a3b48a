// npm run soak -- [--minutes N]: the lab soak (test/lab/soak.ts); root only. Writes
// build/soak.json and exits 1 when RSS grows more than 1 MB/h after the warm-up or
// descriptors or children do not stay constant.
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { ROOT, importTs } from './bench-lib.mjs'

const i = process.argv.indexOf('--minutes')
const minutes = i > 0 ? Number(process.argv[i + 1]) : 60
if (!(minutes >= 1 && minutes <= 24 * 60)) {
  process.stderr.write('soak: --minutes needs a number from 1 to 1440\n')
  process.exit(1)
}
if (process.getuid?.() !== 0) {
  process.stderr.write('soak: needs root (network namespaces)\n')
  process.exit(1)
}
const { soak } = await importTs('test/lab/soak.ts', 'soak.mjs')
const report = await soak(minutes, join(ROOT, 'build/carpd.js'), (line) => process.stdout.write(`${line}\n`))
writeFileSync(join(ROOT, 'build/soak.json'), JSON.stringify(report, null, 2) + '\n')
process.stdout.write(`${JSON.stringify({ ...report, samples: report.samples })}\n`)
process.stdout.write(report.ok ? 'soak: ok\n' : `soak: FAILED: ${report.why.join('; ')}\n`)
process.exit(report.ok ? 0 : 1)
