// The built bundle as an operator runs it: build once per test file, then run
// build/carpd.js as a child process; files for it in a temporary directory.
import type { Test } from 'tap'
import { spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'

export const ROOT = resolve(import.meta.dirname, '../..')
export const CARPD = join(ROOT, 'build/carpd.js')

export interface BundleRunner {
  dir: string
  carpd(...args: string[]): { code: number | null; out: string; err: string }
  file(name: string, text: string): string
}

/** Builds the bundle (so the test runs the current sources) and a scratch directory. */
export function bundleRunner(t: Test, prefix: string): BundleRunner {
  const dir = mkdtempSync(join(tmpdir(), prefix))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const built = spawnSync(process.execPath, [join(ROOT, 'esbuild.config.mjs')], { env: { ...process.env, CARPD_QUIET_BUILD: '1' } })
  if (built.status !== 0) throw new Error(`build failed: ${built.stderr}`)
  return {
    dir,
    carpd(...args) {
      const r = spawnSync(process.execPath, [CARPD, ...args], { encoding: 'utf8', timeout: 10_000 })
      return { code: r.status, out: r.stdout, err: r.stderr }
    },
    file(name, text) {
      const path = join(dir, name)
      writeFileSync(path, text)
      return path
    },
  }
}
