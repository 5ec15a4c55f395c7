// Build step of @dstack/engine and the CLI: copies folders of the repository's images/ (which stays at the top
// level: docker-compose.yml builds from it) into the package's dist/images/, so that a package installed from its
// tarball finds the factory script and the Dockerfiles inside itself. Run from the package's folder:
//   node ../../tools/pack/copy-images.mjs factory [runtime app ...]
import { cpSync, rmSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const names = process.argv.slice(2);
if (names.length === 0) throw new Error('usage: copy-images.mjs NAME... (folders of images/)');
const from = fileURLToPath(new URL('../../images/', import.meta.url));
const to = path.resolve('dist/images');
rmSync(to, { recursive: true, force: true });
for (const name of names) {
  cpSync(path.join(from, name), path.join(to, name), {
    recursive: true,
    filter: (src) => !/(^|\/)__pycache__(\/|$)|\.pyc$/.test(src),
  });
}
