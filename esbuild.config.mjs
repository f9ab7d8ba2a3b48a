// Bundles src/main.ts into build/carpd.js: one minified, brotli-packed file, Node built-ins only,
// with a #! line so the file can be copied to a CF card and run as it is.
import { build } from 'esbuild'
import { chmod, mkdir, stat, writeFile } from 'node:fs/promises'
import zlib, { brotliCompressSync } from 'node:zlib'
import { builtinModules } from 'node:module'
import { genBoards } from './scripts/gen-boards.mjs'

const root = new URL('.', import.meta.url).pathname
const OUT = `${root}build/carpd.js`
const PLAIN = `${root}build/carpd.plain.js`

// Board profiles are plain files in boards/; they are turned into a module so that
// the bundle carries them (SPEC: "boards/NAME.conf defaults bundled into the file").
await genBoards(root)

const result = await build({
  entryPoints: [`${root}src/main.ts`],
  write: false,
  outfile: PLAIN,
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
// The bundle is ~175 KB of JavaScript; brotli takes it to ~52 KB (SPEC: a bundle sized
// for a CF card, goal <= 150 KB). build/carpd.js is a small loader that inflates the
// code and compiles it as this same module (file name and stack traces stay those of
// carpd.js, 1 ms at start); build/carpd.plain.js is the same code, readable.
const code = result.outputFiles[0].text
// esbuild writes nothing itself here (write: false), so on a fresh clone build/ is not there yet.
await mkdir(`${root}build`, { recursive: true })
await writeFile(PLAIN, `#!/usr/bin/env node\n${code}`)
const packed = brotliCompressSync(Buffer.from(code), {
  params: { [zlib.constants.BROTLI_PARAM_QUALITY]: 11, [zlib.constants.BROTLI_PARAM_MODE]: zlib.constants.BROTLI_MODE_TEXT, [zlib.constants.BROTLI_PARAM_SIZE_HINT]: code.length },
}).toString('base64')
await writeFile(
  OUT,
  '#!/usr/bin/env node\n' +
    '// carpd: a high-availability agent for router boards. Brotli-compressed to fit a CF card;\n' +
    '// the same code uncompressed is carpd.plain.js beside it in the source tree (npm run build).\n' +
    `"use strict";module._compile(require("node:zlib").brotliDecompressSync(Buffer.from("${packed}","base64")).toString(),__filename)\n`,
)
await chmod(PLAIN, 0o755)
await chmod(OUT, 0o755)
// This repository's package.json says "type": "module" (for the TypeScript sources);
// the bundle is CommonJS, as it is when copied alone to a CF card.
await writeFile(`${root}build/package.json`, '{ "type": "commonjs" }\n')
const { size } = await stat(OUT)
if (!process.env.CARPD_QUIET_BUILD) console.log(`build/carpd.js ${size} bytes (${code.length} bytes of code, brotli-compressed)`)
