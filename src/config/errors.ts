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

/** Longest key or value an error message shows; the rest is cut (a line may be megabytes). */
export const SHOWN_MAX_CHARS = 64

export function configError(f: ErrorFields): ConfigError {
  const line = f.line ?? 0
  const key = f.key ?? ''
  // A value with a "=" in it swallowed the next line (a missing line break, or CR
  // line ends): what follows may be a secret, so it is not shown either.
  const ranOn = f.value !== undefined && !f.secret && f.value.includes('=')
  const value = f.value === undefined ? '' : f.secret || ranOn ? SECRET_MASK : f.value
  const allowed = f.allowed ?? ''
  const suggestion = f.suggestion ?? ''

  const where = line > 0 ? `${f.file}:${line}` : f.file
  const parts = [where]
  if (key !== '') parts.push(f.value === undefined ? shownKey(key) : `${shownKey(key)} = ${quoteEmpty(shown(value))}`)
  // The checks' own words may quote the value (or a piece of it): not when it is hidden.
  parts.push(ranOn ? 'not valid (the value, not shown, holds a "=": a line break missing?)' : escaped(cut(f.what, WHAT_MAX_CHARS)))
  let message = parts.join(': ')
  if (allowed !== '') message += ` (allowed: ${allowed})`
  if (suggestion !== '') message += ` (did you mean ${suggestion}?)`

  return { code: f.code, file: f.file, line, key, value, allowed, suggestion, message }
}

/**
 * Text from the file as an error message may show it on a serial console: control
 * bytes and escape sequences as \xNN, and at most SHOWN_MAX_CHARS of it.
 */
export function shown(text: string): string {
  return escaped(cut(text, SHOWN_MAX_CHARS))
}

/** The checks' own words are short; one that quotes a value is cut like the value. */
const WHAT_MAX_CHARS = 160

function cut(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, max)}… (${text.length} characters)` : text
}

/**
 * A key as an error shows it: only up to its first character that no key has. A
 * line without its "=" (`sync.key Zm9v...=`, `carp.1.pass:hunter2`) makes the secret
 * part of the key.
 */
export function shownKey(key: string): string {
  const clean = /^[A-Za-z0-9._-]*/.exec(key)![0]
  return shown(clean.length < key.length ? `${clean}…` : key)
}

function escaped(text: string): string {
  return text.replace(/[\x00-\x1f\x7f-\x9f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`)
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
