// Text for people: the effective configuration (`carpd check`), the key reference
// (`carpd help config`, README) and error lists. Secrets are masked here and only here
// is a value printed, so this is where "secrets are never printed" is kept.
import { SECRET_MASK } from './constants.js'
import { SCHEMA, allowedText, type KeyRow } from './schema.js'
import type { ConfigError, EffectiveEntry, ValueSource } from './types.js'

/**
 * One `key = value  # source` line per entry, keys and comments aligned, ready to be
 * read back as a config file (apart from masked secrets).
 */
export function renderEffective(effective: EffectiveEntry[]): string {
  const rows = effective.map((e) => ({ key: e.key, value: shownValue(e), source: sourceText(e.source) }))
  const keyWidth = Math.max(0, ...rows.map((r) => r.key.length))
  const assignments = rows.map((r) => `${r.key.padEnd(keyWidth)} = ${r.value}`)
  const width = Math.max(0, ...assignments.map((a) => a.length))
  return rows.map((r, i) => `${assignments[i].padEnd(width)}  # ${r.source}\n`).join('')
}

function shownValue(entry: EffectiveEntry): string {
  if (!entry.secret) return entry.value
  return entry.source.kind === 'secretFile' ? `${SECRET_MASK} (from ${entry.source.path})` : SECRET_MASK
}

function sourceText(source: ValueSource): string {
  switch (source.kind) {
    case 'default':
      return 'default'
    case 'derived':
      return `derived: ${source.why}`
    case 'board':
      return `board ${source.board} (boards/${source.board}.conf:${source.line})`
    case 'file':
    case 'secretFile':
      return `${source.file}:${source.line}`
  }
}

/** The README's key reference: one Markdown table row per schema row. */
export function renderReference(): string {
  const header = ['| Key | Type / allowed | Default | Description |', '| --- | --- | --- | --- |']
  const rows = SCHEMA.map((row) => {
    const cells = [`\`${row.key}\``, `${row.type}: ${allowedText(row)}`, defaultCell(row), helpCell(row)]
    return `| ${cells.map(escapeCell).join(' | ')} |`
  })
  return `${[...header, ...rows].join('\n')}\n`
}

function defaultCell(row: KeyRow): string {
  if (row.required === true) return '*required*'
  if (row.default === undefined) return '—'
  return row.default === '' ? '(none)' : `\`${row.default}\``
}

function helpCell(row: KeyRow): string {
  return row.secret === true ? `${row.help} Secret: never printed.` : row.help
}

/** A `|` inside a cell would end it (enum lists use `a | b`). */
function escapeCell(text: string): string {
  return text.replaceAll('|', '\\|')
}

/** One message per line, in the order given (loadConfig sorts them by line). */
/** Errors shown before the rest is summed up: a console is no place for 6,000 lines. */
export const ERRORS_SHOWN_MAX = 50

/** The messages, one per line; past ERRORS_SHOWN_MAX, one line says how many more. */
export function errorLines(errors: readonly ConfigError[]): string[] {
  const lines = errors.slice(0, ERRORS_SHOWN_MAX).map((e) => e.message)
  if (errors.length > ERRORS_SHOWN_MAX) lines.push(`... and ${errors.length - ERRORS_SHOWN_MAX} more errors`)
  return lines
}

export function formatErrors(errors: readonly ConfigError[]): string {
  return errorLines(errors).map((line) => `${line}\n`).join('')
}
