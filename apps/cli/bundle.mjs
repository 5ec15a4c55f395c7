// Bundles the CLI into CommonJS files with esbuild: dist/main.cjs, every command, and dist/build.cjs, the global
// options and `build` only (the command run most often: V8 then reads and deserializes 40% of the code).
// bin/dstack-factory.cjs runs one of them through V8's code cache (Node 20 has none for ES modules: compiling the
// bundle as ESM cost 11-17 ms in every process).
// Measured against tsc's per-file output and against an ESM bundle split per command (docs/benchmarks.md, cli).
// The packages kept out are loaded only by the commands that use them (and dockerode has native addons).
// Node's built-in modules stay require() calls: bin/dstack-factory.cjs loads the heavier ones on first use.
// `node bundle.mjs [OUTDIR]` (default dist/): `image self` bundles into a temp folder when run from the sources.
import { existsSync, readdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { build } from 'esbuild';

const outdir = process.argv[2] ?? 'dist';
// The bundle's own files from any earlier build (the ESM chunks of older builds included): tsc's declarations
// beside them stay.
for (const f of existsSync(outdir) ? readdirSync(outdir, { withFileTypes: true }) : []) {
  if (f.isFile() && /^(main|build|chunk-[A-Z0-9]+|src-[A-Z0-9]+|[a-z0-9-]+-[A-Z0-9]{8})\.c?js(\.map)?$/.test(f.name)) rmSync(path.join(outdir, f.name));
}

const external = ['dockerode', 'pino', 'pino-pretty', 'fastify', '@fastify/*'];

await build({
  entryPoints: { main: 'src/main.ts', build: 'src/main-build.ts' },
  outdir,
  outExtension: { '.js': '.cjs' },
  bundle: true,
  format: 'cjs',
  platform: 'node',
  target: 'node20',
  // The workspace packages from their sources (no build of theirs needed first).
  conditions: ['@dstack/source'],
  external,
  // import() of a package kept out becomes require(): vm.Script (bin/dstack-factory.cjs) has no ESM loader behind it.
  supported: { 'dynamic-import': false },
  sourcemap: true,
  // Whitespace only: names stay as written (stack traces, `-v`), and V8 reads ~30% less source.
  minifyWhitespace: true,
  // The sources are ES modules: import.meta.url is the bundle's own URL (files beside it: images/, ../package.json).
  define: { 'import.meta.url': '__dstack_import_meta_url' },
  banner: { js: "var __dstack_import_meta_url = require('node:url').pathToFileURL(__filename).href;" },
  logLevel: 'warning',
});
