import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { bundleImports, moduleClosure } from './image-self.js';

describe('image self: what the bundle needs besides itself', () => {
  it('reads the bare imports of a bundle, Node built-ins left out', () => {
    const code = [
      'import a from "pino";',
      'import { x } from "./chunk-1.js";',
      'const d = await import("dockerode");',
      'import "node:fs";',
      'require("events");',
      'import m from "@fastify/multipart/lib/x.js";',
      'require("tar-stream")',
      'throw new Error(`copied from "x y" and from ");\n const z = f(a,`);',
      '  console.log("import x from \\"nope\\"");',
    ].join('\n');
    expect(bundleImports(code)).toEqual(['@fastify/multipart', 'dockerode', 'pino', 'tar-stream']);
  });

  it('collects a package with its dependencies as npm installed them', async () => {
    const root = fileURLToPath(new URL('../..', import.meta.url));
    const closure = await moduleClosure(['pino'], root);
    const dests = closure.map((c) => c.dest);
    expect(dests).toContain('node_modules/pino');
    expect(dests).toContain('node_modules/sonic-boom'); // pino's dependency
    for (const c of closure) expect(path.basename(c.dir)).toBe(c.dest.split('/').at(-1));
    await expect(moduleClosure(['no-such-package-x'], root)).rejects.toThrow(`no-such-package-x (needed by ${root}) is not installed: run npm ci first`);
  });
});
