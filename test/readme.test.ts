// The README is part of the product: its reference must match the schema and its
// quick start must name the commands CI runs.
import t from 'tap'
import { readFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { renderReference } from '../src/config/render.js'

const root = resolve(import.meta.dirname, '..')
const readme = readFileSync(join(root, 'README.md'), 'utf8')

t.test('the configuration reference is the one generated from the schema', async (t) => {
  const m = /<!-- config-reference:start -->\n([\s\S]*?)<!-- config-reference:end -->/.exec(readme)
  t.ok(m, 'markers present')
  t.equal(m?.[1], renderReference(), 'run `npm run docs` after changing the schema')
})

t.test('quick start: exactly two commands, and CI runs the test one', async (t) => {
  const m = /## Quick start\n\n```sh\n([\s\S]*?)```/.exec(readme)
  const lines = (m?.[1] ?? '').trim().split('\n')
  t.equal(lines.length, 2)
  t.match(lines[0], /^npm ci && npm run demo\s+#/)
  t.match(lines[1], /^npm test\s+#/)
  const ci = readFileSync(join(root, '.ci/run'), 'utf8')
  t.match(ci, /\bnpm ci\b/)
  t.match(ci, /^npm test\b/m)
})

t.test('the figures table is the one the last bench wrote, and every folder of src/ has its README', async (t) => {
  const { FIGURES_END, FIGURES_START, readFigures, renderFigures } = await import('../scripts/figures.mjs')
  const from = readme.indexOf(FIGURES_START)
  const to = readme.indexOf(FIGURES_END)
  t.ok(from >= 0 && to > from, 'markers present')
  const figures = readFigures()
  t.ok(figures.rows.length >= 5, `${figures.rows.length} rows from the bench`)
  t.equal(readme.slice(from + FIGURES_START.length + 1, to), renderFigures(figures), 'run `npm run docs` after `npm run bench`')
  const { readdirSync, statSync } = await import('node:fs')
  const folders = readdirSync(join(root, 'src')).filter((name) => statSync(join(root, 'src', name)).isDirectory())
  t.same(folders.filter((name) => !readdirSync(join(root, 'src', name)).includes('README.md')), [], 'a README.md in every folder')
})
