import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import tar from 'tar-stream';
import { afterAll, describe, expect, it } from 'vitest';
import { packBuildContext } from './dockerfile-build.js';

const tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'dstack-context-'));
afterAll(() => fs.rm(tmp, { recursive: true, force: true }));

async function names(context: string): Promise<string[]> {
  const extract = tar.extract();
  const seen: string[] = [];
  extract.on('entry', (header, stream, next) => {
    seen.push(header.name);
    stream.on('end', next);
    stream.resume();
  });
  const done = new Promise<void>((resolve, reject) => extract.on('finish', () => resolve()).on('error', reject));
  (await packBuildContext(context)).pipe(extract);
  await done;
  return seen;
}

describe('packBuildContext', () => {
  it('honours .dockerignore as Docker does: exceptions inside an ignored folder, Dockerfile always sent', async () => {
    const ctx = path.join(tmp, 'ctx');
    for (const f of ['Dockerfile', 'app.py', 'App.PY', 'docs/a.md', 'docs/keep/b.md', 'x.pyc', 'pkg/y.pyc']) {
      await fs.mkdir(path.dirname(path.join(ctx, f)), { recursive: true });
      await fs.writeFile(path.join(ctx, f), f);
    }
    await fs.writeFile(path.join(ctx, '.dockerignore'), 'Dockerfile\ndocs\n!docs/keep\n**/*.pyc\n*.py\n');
    expect(await names(ctx)).toEqual(['.dockerignore', 'App.PY', 'Dockerfile', 'docs/keep/b.md']);
  });
});
