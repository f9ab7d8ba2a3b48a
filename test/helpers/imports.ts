// The imports of carpd's sources, read as text (no compiler): what test/build/
// checks (Node built-ins only; the layering between folders) is computed from here.
import { readdirSync, readFileSync, statSync } from 'node:fs'
import { dirname, join, relative, resolve } from 'node:path'

export const ROOT = resolve(import.meta.dirname, '../..')
export const SRC = join(ROOT, 'src')

export function sourceFiles(dir = SRC): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name)
    return statSync(path).isDirectory() ? sourceFiles(path) : path.endsWith('.ts') ? [path] : []
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

/** One file's imports: `files` are src-relative paths (a/b.ts), `builtins` node: modules. */
export interface FileImports {
  file: string
  files: string[]
  builtins: string[]
}

/** The import graph of src/, every path relative to src/. */
export function importGraph(): FileImports[] {
  return sourceFiles().map((path) => {
    const file = relative(SRC, path)
    const imports: FileImports = { file, files: [], builtins: [] }
    for (const spec of specifiers(readFileSync(path, 'utf8'))) {
      if (spec.startsWith('node:')) imports.builtins.push(spec)
      else imports.files.push(relative(SRC, resolve(dirname(path), spec)).replace(/\.js$/, '.ts'))
    }
    return imports
  })
}
