// Builds ConfigError values with their one-line message, so that every error reads
// the same way: "FILE:LINE: KEY = VALUE: what is wrong (allowed: ...) (did you mean KEY?)".
import { SECRET_MASK } from './constants.js'
import type { ConfigError, ConfigErrorCode } from './types.js'

export interface ErrorFields {
  code: ConfigErrorCode
  file: string
  line?: number // 0 or absent: not tied to a line
  key?: string
  /** The value as written; absent when the message should not show one. */
  value?: string
  /** The value belongs to a secret: it is masked in both message and `value`. */
  secret?: boolean
  what: string
  allowed?: string
  suggestion?: string
}

export function configError(f: ErrorFields): ConfigError {
  const line = f.line ?? 0
  const key = f.key ?? ''
  const value = f.value === undefined ? '' : f.secret ? SECRET_MASK : f.value
  const allowed = f.allowed ?? ''
  const suggestion = f.suggestion ?? ''

  const where = line > 0 ? `${f.file}:${line}` : f.file
  const parts = [where]
  if (key !== '') parts.push(f.value === undefined ? key : `${key} = ${quoteEmpty(value)}`)
  parts.push(f.what)
  let message = parts.join(': ')
  if (allowed !== '') message += ` (allowed: ${allowed})`
  if (suggestion !== '') message += ` (did you mean ${suggestion}?)`

  return { code: f.code, file: f.file, line, key, value, allowed, suggestion, message }
}

/** An empty value would vanish from "key = : ..."; show it as "". */
function quoteEmpty(value: string): string {
  return value === '' ? '""' : value
}

/**
 * For the caller that reads the config file itself (main.ts): the one error that
 * loadConfig cannot produce, because it is given the text, not the file.
 */
export function ioError(file: string, reason: string): ConfigError {
  return configError({ code: 'io', file, what: `cannot read the configuration file: ${reason}` })
}
