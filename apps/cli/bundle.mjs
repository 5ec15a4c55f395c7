// Bundles the CLI into dist/ with esbuild: main.js plus one chunk per lazily imported part (a command's
// packages), so a process loads a few files instead of a tree of modules. Measured against tsc's per-file
// output with dynamic imports alone: `--version` and a warm `build` start faster bundled (docs/benchmarks.md).
// The packages kept out are loaded only by the commands that use them (and dockerode has native addons).
// `node bundle.mjs [OUTDIR]` (default dist/): `image self` bundles into a temp folder when run from the sources.
import { existsSync, readdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { build } from 'esbuild';

const outdir = process.argv[2] ?? 'dist';
// Chunks are named by content: the previous build's are removed, else they pile up (and ship in the package).
// Only the bundle's own files: tsc's declarations beside them stay.
for (const f of existsSync(outdir) ? readdirSync(outdir, { withFileTypes: true }) : []) {
  if (f.isFile() && /^(main|chunk-[A-Z0-9]+|src-[A-Z0-9]+|[a-z0-9-]+-[A-Z0-9]{8})\.js(\.map)?$/.test(f.name)) rmSync(path.join(outdir, f.name));
}

const external = ['dockerode', 'pino', 'pino-pretty', 'fastify', '@fastify/*'];

await build({
  entryPoints: { main: 'src/main.ts' },
  outdir,
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  // The workspace packages from their sources (no build of theirs needed first).
  conditions: ['@dstack/source'],
  external,
  sourcemap: true,
  // CommonJS modules inside the bundle (commander, yauzl…) call require().
  banner: { js: "import { createRequire as __dstackRequire } from 'node:module';\nconst require = __dstackRequire(import.meta.url);" },
  logLevel: 'warning',
});
