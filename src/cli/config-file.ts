// Reading the configuration file for a command: bounded reads of the file and its
// secret files, errors to stderr.

import { existsSync } from 'node:fs'
import { EXIT_USAGE } from '../config/constants.js'
import { BOARDS } from '../config/boards.gen.js'
import { ioError } from '../config/errors.js'
import { loadConfig } from '../config/load.js'
import { formatErrors } from '../config/render.js'
import type { Config, LoadResult } from '../config/types.js'
import { CONFIG_MAX_BYTES, SECRET_FILE_MAX_BYTES, readBoundedFile } from '../io/files.js'
import { type Args, DEFAULT_CONFIG } from './args.js'

/**
 * Reads and validates a configuration file. `secrets: false` skips reading the secret
 * files (`carpd status` needs only control.port, and may run as a user who cannot
 * read them).
 */
export function readConfig(file: string, secrets = true): LoadResult {
  if (file === '') return { ok: false, warnings: [], errors: [ioError('-c ""', 'no file named')] }
  let text: string
  try {
    text = readBoundedFile(file, CONFIG_MAX_BYTES)
  } catch (err) {
    return { ok: false, warnings: [], errors: [ioError(file, (err as Error).message)] }
  }
  const readFile = secrets ? (path: string) => readBoundedFile(path, SECRET_FILE_MAX_BYTES) : () => 'not read'
  return loadConfig(text, file, { readFile, boards: BOARDS })
}

/** The configuration, or the process exits 1 with the errors on stderr. */
export function loadOrExit(file: string, secrets = true): Config {
  const result = readConfig(file, secrets)
  for (const w of result.warnings) process.stderr.write(`carpd: warning: ${w}\n`)
  if (!result.ok) {
    process.stderr.write(formatErrors(result.errors))
    process.exit(EXIT_USAGE)
  }
  return result.config
}

/**
 * The configuration `status` and `ctl` talk about: -c FILE, else the default file if
 * there is one (none at all: the default control port, no secrets).
 */
export function configFor(args: Args, secrets: boolean): Config | null {
  if (args.config !== undefined) return loadOrExit(args.config, secrets)
  if (!existsSync(DEFAULT_CONFIG)) return null
  return loadOrExit(DEFAULT_CONFIG, secrets)
}
