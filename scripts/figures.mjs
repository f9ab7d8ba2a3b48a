// The README's figures table, generated from the bench's own output
// (bench/figures.json, written by `npm run bench`), so no figure is copied by hand.
// `npm run docs` writes it into README.md; test/readme.test.ts checks it is there.
import { readFileSync } from 'node:fs'
import { join } from 'node:path'

const root = new URL('..', import.meta.url).pathname
export const FIGURES_JSON = join(root, 'bench/figures.json')
export const FIGURES_START = '<!-- figures:start -->'
export const FIGURES_END = '<!-- figures:end -->'

/** The rows the bench printed, as it wrote them: { date, node, rows: [{ measure, result, goal, met }] }. */
export function readFigures(path = FIGURES_JSON) {
  return JSON.parse(readFileSync(path, 'utf8'))
}

const cell = (text) => String(text).replace(/\|/g, '\\|').trim()

/** The Markdown between the figures markers. */
export function renderFigures(figures) {
  const lines = [
    `Bench run of ${figures.date.slice(0, 10)}, Node ${figures.node}${figures.skipped?.length ? `; not run this time: ${figures.skipped.join(', ')}` : ''}.`,
    '',
    '| measure | result | goal | |',
    '| --- | --- | --- | --- |',
    ...figures.rows.map((r) => `| ${cell(r.measure)} | ${cell(r.result)} | ${cell(r.goal)} | ${r.met === null ? '' : r.met ? 'met' : '**missed**'} |`),
  ]
  return `${lines.join('\n')}\n`
}
