// SPEC runtime rule: the bundle uses Node built-ins only. Every import in src/ must be
// a node: module or another file of src/.
import t from 'tap'
import { readFileSync } from 'node:fs'
import { dirname, relative, resolve } from 'node:path'
import { ROOT as root, SRC as src, sourceFiles as files, specifiers } from '../helpers/imports.js'

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
