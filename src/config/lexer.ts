// Splits a carpd.conf text into `key = value` entries with their line numbers.
// The lexer knows nothing about keys; schema.ts and load.ts judge them.
import { configError, shownKey } from './errors.js'
import type { ConfigError } from './types.js'

/** One `key = value` line. Lines are 1-based. */
export interface Entry {
  key: string
  value: string
  line: number
  file: string
}

export interface LexResult {
  entries: Entry[]
  errors: ConfigError[]
}

const BYTE_ORDER_MARK = '\uFEFF'

export function lex(text: string, file: string): LexResult {
  const entries: Entry[] = []
  const errors: ConfigError[] = []
  // Files edited on Windows may start with a BOM and end lines with CRLF; old Mac
  // editors end them with CR alone. Read as one line, a CR-only file put every key
  // (secrets too) into the first key's value, and its error message showed them.
  const body = text.startsWith(BYTE_ORDER_MARK) ? text.slice(BYTE_ORDER_MARK.length) : text
  const lines = body.split(/\r\n|\r|\n/)

  lines.forEach((raw, index) => {
    const line = index + 1
    const content = stripComment(raw).trim()
    if (content === '') return

    const eq = content.indexOf('=')
    if (eq < 0) {
      // The line itself is not echoed: it may well be a secret pasted on its own.
      errors.push(syntaxError(file, line, 'expected "key = value"'))
      return
    }
    const key = content.slice(0, eq).trim()
    const value = content.slice(eq + 1).trim()
    if (key === '') {
      errors.push(syntaxError(file, line, 'missing key before "="'))
    } else if (/\s/.test(key)) {
      errors.push(syntaxError(file, line, `key "${shownKey(key)}" contains white space`))
    } else {
      entries.push({ key, value, line, file })
    }
  })
  return { entries, errors }
}

/**
 * A `#` starts a comment at the start of a line or after white space, so that values
 * such as `pass = a#b` keep their `#` while `vip = 192.0.2.1/24 # lan` loses the note.
 */
function stripComment(raw: string): string {
  const match = /(^|\s)#/.exec(raw)
  return match === null ? raw : raw.slice(0, match.index)
}

function syntaxError(file: string, line: number, what: string): ConfigError {
  return configError({ code: 'syntax', file, line, what })
}
