// Bundles src/main.ts into build/carpd.js: one plain minified file, Node built-ins only,
// with a #! line so the file can be copied to a CF card and run as it is (SPEC: "the
// shipped file is the plain minified bundle, readable enough for a stack trace on the
// board"). It was brotli-packed behind a loader once: that relied on Node's private
// module._compile, cost 0.8 MB of RSS and left an unreadable file on the board.
import { build } from 'esbuild'
import { chmod, mkdir, rm, stat, writeFile } from 'node:fs/promises'
import { builtinModules } from 'node:module'
import { genBoards } from './scripts/gen-boards.mjs'

const root = new URL('.', import.meta.url).pathname
const OUT = `${root}build/carpd.js`
/** The goal for the file an operator copies (issue 12: plain, at most 250 KB). */
export const BUNDLE_MAX_BYTES = 250 * 1024

// Board profiles are plain files in boards/; they are turned into a module so that
// the bundle carries them (SPEC: "boards/NAME.conf defaults bundled into the file").
await genBoards(root)

const result = await build({
  entryPoints: [`${root}src/main.ts`],
  write: false,
  outfile: OUT,
  bundle: true,
  minify: true,
  platform: 'node',
  target: 'node20',
  // CommonJS: a copied file has no package.json beside it, and Node 20 reads a
  // lone .js file as CommonJS.
  format: 'cjs',
  // Only node: built-ins may stay external; anything else would be bundled, and a
  // test (test/build/imports.test.ts) fails if src/ imports anything but node:.
  external: builtinModules.flatMap((m) => [m, `node:${m}`]),
  legalComments: 'none',
  logLevel: 'warning',
})
const code = result.outputFiles[0].text
// esbuild writes nothing itself here (write: false), so on a fresh clone build/ is not there yet.
await mkdir(`${root}build`, { recursive: true })
await writeFile(OUT, `#!/usr/bin/env node\n${code}`)
await chmod(OUT, 0o755)
// The packed build's readable twin is gone with it.
await rm(`${root}build/carpd.plain.js`, { force: true })
// This repository's package.json says "type": "module" (for the TypeScript sources);
// the bundle is CommonJS, as it is when copied alone to a CF card.
await writeFile(`${root}build/package.json`, '{ "type": "commonjs" }\n')
const { size } = await stat(OUT)
if (!process.env.CARPD_QUIET_BUILD) console.log(`build/carpd.js ${size} bytes, plain minified (goal <= ${BUNDLE_MAX_BYTES})`)
