// SPEC runtime rule: the bundle uses Node built-ins only. Every import in src/ must be
// a node: module or another file of src/.
import t from 'tap'
import { readdirSync, readFileSync, statSync } from 'node:fs'
import { join, relative, resolve, dirname } from 'node:path'

const root = resolve(import.meta.dirname, '../..')
const src = join(root, 'src')

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name)
    return statSync(path).isDirectory() ? files(path) : path.endsWith('.ts') ? [path] : []
  })
}

/** Module specifiers of static imports, re-exports and dynamic imports. */
export function specifiers(text: string): string[] {
  const found: string[] = []
  const patterns = [
    /^\s*(?:import|export)\s[^'"]*?\sfrom\s+['"]([^'"]+)['"]/gm, // import x from '...', export { y } from '...'
    /^\s*import\s+['"]([^'"]+)['"]/gm, // import '...'
    /\bimport\(\s*['"]([^'"]+)['"]\s*\)/g,
    /\brequire\(\s*['"]([^'"]+)['"]\s*\)/g,
  ]
  for (const re of patterns) for (const m of text.matchAll(re)) found.push(m[1]!)
  return found
}

t.test('the scanner finds every kind of import', async (t) => {
  const text = `import a from 'x'\nimport {\n  c,\n  d,\n} from './multi.js'\nexport { b } from "./y.js"\nimport 'z'\nawait import('w')\nrequire('v')\nconst s = 'text from "not-an-import"'`
  t.same(specifiers(text).sort(), ['./multi.js', './y.js', 'v', 'w', 'x', 'z'])
})

t.test('src/ imports only node: built-ins and src/ files', async (t) => {
  const all = files(src)
  t.ok(all.length > 10, `${all.length} source files`)
  for (const file of all) {
    for (const spec of specifiers(readFileSync(file, 'utf8'))) {
      if (spec.startsWith('node:')) continue
      const target = resolve(dirname(file), spec)
      t.ok(spec.startsWith('.') && target.startsWith(src + '/'), `${relative(root, file)} imports ${spec}`)
    }
  }
})
