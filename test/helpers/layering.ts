// carpd's layering, as data, and the checks that find violations in an import graph.
// Pure, so the test can show each check failing on a graph made to break it.
import type { FileImports } from './imports.js'

/**
 * Which folders each folder may import (besides itself). The cores and their
 * runtimes share a folder; the edges (io/, platform/) implement what the cores ask
 * for; daemon/ composes everything; cli/ runs commands; main.ts only dispatches.
 */
export const MAY_IMPORT: Record<string, readonly string[]> = {
  // config/ parses addresses with wire/ip.ts (pure, and wire/ imports nothing).
  config: ['wire'],
  wire: [],
  io: ['config'],
  sync: ['config', 'io', 'wire'],
  wan: ['config', 'io', 'wire'],
  platform: ['config', 'io', 'wire', 'sync', 'wan'],
  carp: ['config', 'io', 'wire', 'platform'],
  quorum: ['config', 'io', 'wire', 'carp', 'wan', 'platform'],
  control: ['config', 'carp', 'sync', 'quorum', 'wan'],
  daemon: ['config', 'io', 'wire', 'sync', 'wan', 'platform', 'carp', 'quorum', 'control'],
  cli: ['config', 'io', 'wire', 'sync', 'wan', 'platform', 'carp', 'quorum', 'control', 'daemon'],
  '.': ['cli', 'config'],
}

/** Folders that may import node: modules: the edges to the OS and the command line. */
export const NODE_EDGES = new Set(['io', 'platform', 'cli'])
/** node:crypto (HMAC, hashing: computation, no I/O) is allowed in the codecs and the control protocol as well. */
export const CRYPTO_USERS = new Set(['wire', 'control'])

/** control/ renders the subsystems' status without reaching into a runtime: only their status.ts. */
export const CONTROL_MAY_READ = /^(config\/.*|(carp|sync|quorum|wan)\/status\.ts|control\/.*)$/

export function folderOf(file: string): string {
  const slash = file.indexOf('/')
  return slash < 0 ? '.' : file.slice(0, slash)
}

/** Every rule broken, one line each: folder rules, node: modules, control's reach, top-level files. */
export function layeringViolations(graph: readonly FileImports[]): string[] {
  const out: string[] = []
  for (const { file, files, builtins } of graph) {
    const from = folderOf(file)
    if (from === '.' && file !== 'main.ts') out.push(`${file}: only the entry point sits at the top of src/`)
    const allowed = MAY_IMPORT[from]
    if (allowed === undefined) {
      out.push(`${file}: folder ${from}/ has no layering rule (add it to MAY_IMPORT)`)
      continue
    }
    for (const target of files) {
      const to = folderOf(target)
      if (to !== from && !allowed.includes(to)) out.push(`${file} imports ${target}: ${from}/ may not import ${to}/`)
      if (from === 'control' && !CONTROL_MAY_READ.test(target)) out.push(`${file} imports ${target}: control/ reads only the subsystems' status.ts`)
    }
    for (const b of builtins) {
      if (NODE_EDGES.has(from)) continue
      if (b === 'node:crypto' && CRYPTO_USERS.has(from)) continue
      out.push(`${file} imports ${b}: only ${[...NODE_EDGES].join('/, ')}/ touch the OS`)
    }
  }
  return out
}

/** Import circles between files, each as a path a -> b -> ... -> a. */
export function fileCycles(graph: readonly FileImports[]): string[] {
  const edges = new Map(graph.map((g) => [g.file, g.files]))
  return cycles(edges)
}

/** Import circles between folders (a file of x imports y/ and a file of y imports x/). */
export function folderCycles(graph: readonly FileImports[]): string[] {
  const edges = new Map<string, string[]>()
  for (const { file, files } of graph) {
    const from = folderOf(file)
    const list = edges.get(from) ?? []
    for (const target of files) if (folderOf(target) !== from) list.push(folderOf(target))
    edges.set(from, list)
  }
  return cycles(edges)
}

/** Strongly connected components with more than one node (or a self-loop), as readable paths. */
function cycles(edges: ReadonlyMap<string, readonly string[]>): string[] {
  const index = new Map<string, number>()
  const low = new Map<string, number>()
  const stack: string[] = []
  const onStack = new Set<string>()
  const found: string[] = []
  let next = 0
  const visit = (v: string): void => {
    index.set(v, next)
    low.set(v, next)
    next++
    stack.push(v)
    onStack.add(v)
    for (const w of edges.get(v) ?? []) {
      if (!index.has(w)) {
        visit(w)
        low.set(v, Math.min(low.get(v)!, low.get(w)!))
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!))
    }
    if (low.get(v) !== index.get(v)) return
    const scc: string[] = []
    let w: string
    do {
      w = stack.pop()!
      onStack.delete(w)
      scc.push(w)
    } while (w !== v)
    if (scc.length > 1 || (edges.get(v) ?? []).includes(v)) found.push(`${scc.reverse().join(' -> ')} -> ${scc[0]}`)
  }
  for (const v of edges.keys()) if (!index.has(v)) visit(v)
  return found
}
