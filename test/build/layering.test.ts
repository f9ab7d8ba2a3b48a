// The layering of src/ (issue 12): nothing but the entry point at the top, each
// folder imports only the folders below it, node: modules only at the edges, and no
// import circle between files or between folders. test/helpers/layering.ts has the rules.
import t from 'tap'
import { importGraph } from '../helpers/imports.js'
import { MAY_IMPORT, fileCycles, folderCycles, folderOf, layeringViolations } from '../helpers/layering.js'

const graph = importGraph()

t.test('src/ keeps its layering', async (t) => {
  t.ok(graph.length > 50, `${graph.length} source files read`)
  t.same(layeringViolations(graph), [], 'no folder imports one it may not, no node: module off the edges')
  t.same(graph.filter((g) => folderOf(g.file) === '.').map((g) => g.file), ['main.ts'], 'only main.ts at the top of src/')
  t.same(Object.keys(MAY_IMPORT).filter((f) => f !== '.' && !graph.some((g) => folderOf(g.file) === f)), [], 'every folder with a rule exists')
})

t.test('no import circle between files or folders', async (t) => {
  t.same(fileCycles(graph), [])
  t.same(folderCycles(graph), [])
})

t.test('the checks find what they look for', async (t) => {
  const bad = [
    { file: 'agent.ts', files: [], builtins: [] },
    { file: 'wire/a.ts', files: ['sync/b.ts'], builtins: ['node:fs'] },
    { file: 'sync/b.ts', files: ['wire/a.ts'], builtins: ['node:crypto'] },
    { file: 'control/r.ts', files: ['sync/runtime.ts', 'sync/status.ts'], builtins: [] },
    { file: 'extra/x.ts', files: [], builtins: [] },
  ]
  t.same(layeringViolations(bad), [
    'agent.ts: only the entry point sits at the top of src/',
    'wire/a.ts imports sync/b.ts: wire/ may not import sync/',
    'wire/a.ts imports node:fs: only io/, platform/, cli/ touch the OS',
    'sync/b.ts imports node:crypto: only io/, platform/, cli/ touch the OS',
    "control/r.ts imports sync/runtime.ts: control/ reads only the subsystems' status.ts",
    'extra/x.ts: folder extra/ has no layering rule (add it to MAY_IMPORT)',
  ])
  t.same(fileCycles(bad), ['wire/a.ts -> sync/b.ts -> wire/a.ts'])
  t.same(folderCycles(bad), ['wire -> sync -> wire'])
  t.same(fileCycles([{ file: 'a.ts', files: ['a.ts'], builtins: [] }]), ['a.ts -> a.ts'], 'a file importing itself')
})
