// npm run docs: writes the configuration reference (carpd help config, generated from
// src/config/schema.ts) and the figures table (bench/figures.json, written by npm run
// bench) into README.md, each between its markers.
import { execFileSync } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { FIGURES_END, FIGURES_START, readFigures, renderFigures } from './figures.mjs'

const root = new URL('..', import.meta.url).pathname
const README = join(root, 'README.md')
const START = '<!-- config-reference:start -->'
const END = '<!-- config-reference:end -->'

const reference = execFileSync(process.execPath, [join(root, 'build/carpd.js'), 'help', 'config'], { encoding: 'utf8' })
const text = readFileSync(README, 'utf8')
const from = text.indexOf(START)
const to = text.indexOf(END)
if (from < 0 || to < from) throw new Error(`README.md: markers ${START} ... ${END} not found`)
const withReference = `${text.slice(0, from + START.length)}\n${reference}${END}${text.slice(to + END.length)}`
const f0 = withReference.indexOf(FIGURES_START)
const f1 = withReference.indexOf(FIGURES_END)
if (f0 < 0 || f1 < f0) throw new Error(`README.md: markers ${FIGURES_START} ... ${FIGURES_END} not found`)
const next = `${withReference.slice(0, f0 + FIGURES_START.length)}\n${renderFigures(readFigures())}${FIGURES_END}${withReference.slice(f1 + FIGURES_END.length)}`
if (next !== text) writeFileSync(README, next)
process.stdout.write(next === text ? 'README.md reference and figures up to date\n' : 'README.md reference and figures updated\n')
