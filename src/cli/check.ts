// `carpd check -c FILE [--system]`: validate, print the effective configuration, warn
// about secrets other users may read; with --system, the board's preflight too
// (preflight.ts).

import { existsSync, readFileSync, statSync } from 'node:fs'
import { release } from 'node:os'
import { gunzipSync } from 'node:zlib'
import { EXIT_OK, EXIT_USAGE } from '../config/constants.js'
import { formatErrors, renderEffective } from '../config/render.js'
import type { EffectiveEntry } from '../config/types.js'
import { type Args, DEFAULT_CONFIG } from './args.js'
import { execRunner } from '../platform/exec.js'
import { readConfig } from './config-file.js'
import { type PreflightDeps, preflight, renderFindings } from './preflight.js'

/** The real board: its commands, /proc and /sys. */
const SYSTEM: PreflightDeps = {
  run: execRunner,
  readText: (path) => {
    try {
      return readFileSync(path, 'utf8')
    } catch {
      return null
    }
  },
  exists: existsSync,
  kernelConfig: () => {
    try {
      return gunzipSync(readFileSync('/proc/config.gz')).toString('utf8')
    } catch {
      try {
        return readFileSync(`/boot/config-${release()}`, 'utf8')
      } catch {
        return null
      }
    }
  },
  nodeVersion: process.versions.node,
  isRoot: process.getuid?.() === 0,
}

export async function check(args: Args, system: PreflightDeps = SYSTEM): Promise<number> {
  const file = args.config ?? DEFAULT_CONFIG
  const result = readConfig(file)
  for (const w of result.warnings) process.stderr.write(`warning: ${w}\n`)
  if (!result.ok) {
    process.stderr.write(formatErrors(result.errors))
    process.stderr.write(`${file}: ${result.errors.length} error(s)\n`)
    return EXIT_USAGE
  }
  for (const w of exposedSecrets(result.effective)) process.stderr.write(`warning: ${w}\n`)
  process.stdout.write(`# ${file}: OK\n`)
  process.stdout.write(renderEffective(result.effective))
  if (!args.system) return EXIT_OK
  const findings = await preflight(result.config, system)
  process.stdout.write(`# this system, for ${file}\n${renderFindings(findings)}`)
  return findings.some((f) => f.level === 'fail') ? EXIT_USAGE : EXIT_OK
}

/**
 * Files holding a secret that other users may read: the CARP passwords authenticate
 * adverts and derive the key of `carpd ctl`, so anyone who can read them can take
 * the VIP or force a failover.
 */
export function exposedSecrets(effective: readonly EffectiveEntry[]): string[] {
  const files = new Map<string, string>() // path → a secret key it holds
  for (const e of effective) {
    if (!e.secret) continue
    if (e.source.kind === 'file') files.set(e.source.file, e.key)
    if (e.source.kind === 'secretFile') files.set(e.source.path, e.key)
  }
  const warnings: string[] = []
  for (const [path, key] of files) {
    let mode: number
    try {
      mode = statSync(path).mode & 0o777
    } catch {
      continue
    }
    if ((mode & 0o077) === 0) continue
    warnings.push(`${path} holds ${key} and other users may read it (mode ${mode.toString(8).padStart(4, '0')}): chmod 600 ${path}`)
  }
  return warnings
}
