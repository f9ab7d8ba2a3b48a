// Shared inputs for the config tests (not a test file itself: no .test suffix).
import { BOARDS } from '../../src/config/boards.gen.js'
import { loadConfig } from '../../src/config/load.js'
import type { ConfigError, LoadResult } from '../../src/config/types.js'

export const FILE = '/cf/carpd.conf'

/** The smallest file that loads: a node name and one complete carp block. */
export const MINIMAL = ['node = fw-a', 'carp.1.interface = lan0', 'carp.1.vip = 192.0.2.1/24', 'carp.1.pass = s3cret'].join('\n')

export interface LoadOptions {
  files?: Record<string, string>
  boards?: Record<string, string>
}

/** loadConfig with an in-memory file system; a missing file throws like fs does (ENOENT). */
export function load(text: string, options: LoadOptions = {}): LoadResult {
  const files = options.files ?? {}
  return loadConfig(text, FILE, {
    readFile: (path) => {
      const content = files[path]
      if (content === undefined) throw Object.assign(new Error(`ENOENT: no such file or directory, open '${path}'`), { code: 'ENOENT' })
      return content
    },
    boards: options.boards ?? BOARDS,
  })
}

/** The errors of a load that must fail (an empty list when it unexpectedly succeeded). */
export function errorsOf(result: LoadResult): ConfigError[] {
  return result.ok ? [] : result.errors
}

/** MINIMAL with more lines. */
export function withLines(...lines: string[]): string {
  return [MINIMAL, ...lines].join('\n')
}
