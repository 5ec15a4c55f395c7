// Under vitest the workers run with `--conditions import` (from vitest.config's resolve.conditions), so
// yazl's require('buffer-crc32') gets the ESM build, whose namespace has no `unsigned`. Until the root
// config is changed, put the CommonJS build in the require cache under the path that require resolves to.
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const resolved = require.resolve('buffer-crc32');
if (resolved.endsWith('.mjs')) {
  const exports: unknown = require(resolved.replace(/index\.mjs$/, 'index.cjs'));
  require.cache[resolved] = { id: resolved, filename: resolved, loaded: true, exports } as NodeJS.Module;
}
