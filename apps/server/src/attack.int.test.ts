// What an attack review of `dstack-factory serve` got through (issue 12), sent again over real HTTP:
// release spellings (point 5), malformed and doubled multipart bodies (point 6), headers and secrets
// (point 8), and who may read build records and logs (point 3).
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { buildWheel } from '@dstack/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { multipartBody, sha256, startTestServer, type TestServer } from './fixtures.test-support.js';

const UPLOAD = 'attack-upload-token';
let s: TestServer;

beforeAll(async () => {
  s = await startTestServer({ tokens: [{ name: 'ci', token: UPLOAD, scopes: ['upload'] }] });
});
afterAll(async () => s?.close());

async function upload(
  server: TestServer,
  filename: string,
  data: Buffer,
  fields: Record<string, string> = {},
): Promise<{
  status: number;
  body: { error?: { code: string; message: string; hint?: string } } & Record<string, unknown>;
}> {
  const { body, contentType } = multipartBody(
    { ':action': 'file_upload', sha256_digest: sha256(data), ...fields },
    { name: filename, data },
  );
  const r = await fetch(`${server.url}/`, {
    method: 'POST',
    headers: { 'content-type': contentType, authorization: `Bearer ${UPLOAD}` },
    body,
  });
  return { status: r.status, body: (await r.json()) as never };
}

const wheelsIn = async (server: TestServer) =>
  (await readdir(join(server.dir, 'wheelhouse'))).filter((f) => f.endsWith('.whl')).sort();

describe('one release, one set of bytes, whatever the spelling (point 5)', () => {
  it('answers 409 for other bytes under any spelling, 200 for the same bytes, and stores the PEP 427 name', async () => {
    const mine = await buildWheel({ name: 'demo_pkg', version: '1.0.0' });
    const theirs = await buildWheel({
      name: 'demo_pkg',
      version: '1.0.0',
      files: { 'demo_pkg/__init__.py': 'import os; os.system("id")\n' },
    });
    const first = await upload(s, 'Demo_Pkg-1.0.0-py3-none-any.whl', mine);
    expect([first.status, first.body.filename]).toEqual([200, 'demo_pkg-1.0.0-py3-none-any.whl']);
    for (const spelling of [
      'Demo_Pkg-1.0.0-py3-none-any.whl',
      'demo.pkg-1.0.0-py3-none-any.whl',
      'demo_pkg-1.0.0-py3-none-any.whl',
    ]) {
      const r = await upload(s, spelling, theirs);
      expect(r.status).toBe(409);
      expect(r.body.error!.code).toBe('WHEEL_CONFLICT');
      expect(r.body.error!.message).not.toContain(s.dir); // file names, never server folders (point 8)
      const again = await upload(s, spelling, mine);
      expect([again.status, again.body.status]).toEqual([200, 'present']);
    }
    const zeros = await buildWheel({ name: 'demo_pkg', version: '1.0.0.0' });
    const r = await upload(s, 'demo_pkg-1.0.0.0-py3-none-any.whl', zeros);
    expect(r.status).toBe(409);
    expect(r.body.error!.message).toBe(
      `demo_pkg-1.0.0.0-py3-none-any.whl is the release the wheelhouse holds as demo_pkg-1.0.0-py3-none-any.whl with different bytes (sha256 ${sha256(mine)}, new ${sha256(zeros)})`,
    );
    expect(await wheelsIn(s)).toEqual(['demo_pkg-1.0.0-py3-none-any.whl']);
    expect(await readFile(join(s.dir, 'wheelhouse', 'demo_pkg-1.0.0-py3-none-any.whl'))).toEqual(mine);
  });

  it('refuses a build tag with a hint unless the operator allows build tags', async () => {
    const tagged = await buildWheel({ name: 'tagged', version: '1.0', build: '1' });
    const r = await upload(s, 'tagged-1.0-1-py3-none-any.whl', tagged);
    expect(r.status).toBe(400);
    expect(r.body.error).toEqual({
      code: 'WHEEL_BUILD_TAG',
      message: 'tagged-1.0-1-py3-none-any.whl: the build tag "1" is not taken here',
      hint: 'a build tag lets two different wheels of one release coexist; upload the wheel without it, or allow build tags (server: allow_build_tags = true; wheelhouse add --allow-build-tag)',
    });
    const open = await startTestServer({
      tokens: [{ name: 'ci', token: UPLOAD, scopes: ['upload'] }],
      allowBuildTags: true,
    });
    try {
      expect((await upload(open, 'tagged-1.0-1-py3-none-any.whl', tagged)).status).toBe(200);
      expect(await wheelsIn(open)).toEqual(['tagged-1.0-1-py3-none-any.whl']);
    } finally {
      await open.close();
    }
  });
});
