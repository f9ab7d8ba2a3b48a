// What every bench shares: bundling a TypeScript entry (the lab harness of test/lab/,
// a peer script, a core of src/) into build/ so plain node can run or import it, and
// the median of a run's samples.
import { build } from 'esbuild'
import { join } from 'node:path'

export const ROOT = new URL('..', import.meta.url).pathname

/**
 * Bundles `entry` (a path under the repository, or `{ contents, resolveDir }` for a
 * few lines of TypeScript) into `outDir/name` (default build/); returns the file.
 * tap stays outside: the lab files import it only for their own tests.
 */
export async function bundleTs(entry, name, outDir = join(ROOT, 'build')) {
  const outfile = join(outDir, name)
  const input = typeof entry === 'string' ? { entryPoints: [join(ROOT, entry)] } : { stdin: { ...entry, loader: 'ts' } }
  await build({ ...input, bundle: true, platform: 'node', format: 'esm', target: 'node20', outfile, logLevel: 'warning', external: ['tap'] })
  return outfile
}

/** bundleTs, then import it. */
export async function importTs(entry, name) {
  return import(await bundleTs(entry, name))
}

/** The median of the finite samples (the lower middle one of an even count); NaN when none. */
export function median(xs) {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b)
  return s.length ? s[Math.floor((s.length - 1) / 2)] : NaN
}
