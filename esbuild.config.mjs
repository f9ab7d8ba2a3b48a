// Bundles src/main.ts into build/carpd.js: one minified file, Node built-ins only,
// with a #! line so the file can be copied to a CF card and run as it is.
import { build } from 'esbuild'
import { chmod, stat, writeFile } from 'node:fs/promises'
import { builtinModules } from 'node:module'
import { genBoards } from './scripts/gen-boards.mjs'

const root = new URL('.', import.meta.url).pathname
const OUT = `${root}build/carpd.js`

// Board profiles are plain files in boards/; they are turned into a module so that
// the bundle carries them (SPEC: "boards/NAME.conf defaults bundled into the file").
await genBoards(root)

await build({
  entryPoints: [`${root}src/main.ts`],
  outfile: OUT,
  bundle: true,
  minify: true,
  platform: 'node',
  target: 'node20',
  // CommonJS: a copied file has no package.json beside it, and Node 20 reads a
  // lone .js file as CommonJS.
  format: 'cjs',
  banner: { js: '#!/usr/bin/env node' },
  // Only node: built-ins may stay external; anything else would be bundled, and a
  // test (test/build/imports.test.ts) fails if src/ imports anything but node:.
  external: builtinModules.flatMap((m) => [m, `node:${m}`]),
  legalComments: 'none',
  logLevel: 'warning',
})
await chmod(OUT, 0o755)
// This repository's package.json says "type": "module" (for the TypeScript sources);
// the bundle is CommonJS, as it is when copied alone to a CF card.
await writeFile(`${root}build/package.json`, '{ "type": "commonjs" }\n')
const { size } = await stat(OUT)
if (!process.env.CARPD_QUIET_BUILD) console.log(`build/carpd.js ${size} bytes`)
