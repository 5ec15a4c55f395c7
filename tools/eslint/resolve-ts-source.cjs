/* eslint-disable @typescript-eslint/no-require-imports -- eslint-plugin-import loads resolvers with require() */
// A resolver (eslint-plugin-import's interface 2) for this repository's relative imports: TypeScript's NodeNext
// convention writes "./x.js" for the source file "./x.ts". Ten lines instead of a resolver package; anything
// not relative is left to the other resolvers.
const fs = require('node:fs');
const path = require('node:path');

exports.interfaceVersion = 2;
exports.resolve = (source, file) => {
  if (!source.startsWith('.')) return { found: false };
  const candidate = path.resolve(path.dirname(file), source.replace(/\.js$/, '.ts'));
  return fs.existsSync(candidate) ? { found: true, path: candidate } : { found: false };
};
