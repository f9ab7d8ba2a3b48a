// npm run docs: writes the configuration reference (carpd help config, generated from
// src/config/schema.ts) into README.md between the config-reference markers.
import { execFileSync } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'

const root = new URL('..', import.meta.url).pathname
const README = join(root, 'README.md')
const START = '<!-- config-reference:start -->'
const END = '<!-- config-reference:end -->'

const reference = execFileSync(process.execPath, [join(root, 'build/carpd.js'), 'help', 'config'], { encoding: 'utf8' })
const text = readFileSync(README, 'utf8')
const from = text.indexOf(START)
const to = text.indexOf(END)
if (from < 0 || to < from) throw new Error(`README.md: markers ${START} ... ${END} not found`)
const next = `${text.slice(0, from + START.length)}\n${reference}${END}${text.slice(to + END.length)}`
if (next !== text) writeFileSync(README, next)
process.stdout.write(next === text ? 'README.md reference up to date\n' : 'README.md reference updated\n')
