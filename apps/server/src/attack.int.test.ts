// What an attack review of `dstack-factory serve` got through (issue 12), sent again over real HTTP:
// release spellings (point 5), malformed and doubled multipart bodies (point 6), headers and secrets
// (point 8), and who may read build records and logs (point 3).
import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { connect } from 'node:net';
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

/** POSTs `body` as the upload form with `contentType`, over a raw socket (no client-side framing fixes). */
function rawPost(
  server: TestServer,
  contentType: string,
  body: Buffer | string,
): Promise<{ status: number; body: string }> {
  const data = typeof body === 'string' ? Buffer.from(body) : body;
  return new Promise((resolve, reject) => {
    const socket = connect(Number(new URL(server.url).port), '127.0.0.1', () => {
      socket.write(
        `POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${UPLOAD}\r\nContent-Type: ${contentType}\r\n` +
          `Content-Length: ${data.length}\r\nConnection: close\r\n\r\n`,
      );
      socket.write(data);
    });
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', reject);
    socket.on('close', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      resolve({
        status: Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0),
        body: text.slice(text.indexOf('\r\n\r\n') + 4),
      });
    });
  });
}

const part = (name: string, value: string) =>
  `--b\r\nContent-Disposition: form-data; name="${name}"\r\n\r\n${value}\r\n`;
const filePart = (filename: string, data: Buffer) =>
  Buffer.concat([
    Buffer.from(`--b\r\nContent-Disposition: form-data; name="content"; filename="${filename}"\r\n\r\n`),
    data,
    Buffer.from('\r\n'),
  ]);

describe('client errors are 4xx, and nothing is published (point 6)', () => {
  it('answers 400 for multipart without a boundary, or cut short before its end', async () => {
    const wheel = await buildWheel({ name: 'framing', version: '1.0' });
    const noBoundary = await rawPost(s, 'multipart/form-data', part(':action', 'file_upload'));
    expect(noBoundary.status).toBe(400);
    expect(JSON.parse(noBoundary.body).error.code).toBe('UPLOAD_INVALID');
    const cut = await rawPost(
      s,
      'multipart/form-data; boundary=b',
      Buffer.concat([
        Buffer.from(part(':action', 'file_upload')),
        filePart('framing-1.0-py3-none-any.whl', wheel),
      ]),
    );
    expect(cut.status).toBe(400);
    expect(JSON.parse(cut.body).error).toEqual({
      code: 'UPLOAD_INVALID',
      message:
        'the multipart/form-data body is malformed: Part terminated early due to unexpected end of multipart data',
    });
    expect(await wheelsIn(s)).not.toContain('framing-1.0-py3-none-any.whl');
  });

  it('answers 400 for two files in one request, and publishes neither', async () => {
    const one = await buildWheel({ name: 'twofiles', version: '1.0' });
    const two = await buildWheel({ name: 'twofiles', version: '2.0' });
    const r = await rawPost(
      s,
      'multipart/form-data; boundary=b',
      Buffer.concat([
        Buffer.from(part(':action', 'file_upload')),
        filePart('twofiles-1.0-py3-none-any.whl', one),
        filePart('twofiles-2.0-py3-none-any.whl', two),
        Buffer.from('--b--\r\n'),
      ]),
    );
    expect(r.status).toBe(400);
    expect(JSON.parse(r.body).error.message).toBe(
      'one file per upload request (a second "content" file came)',
    );
    expect((await wheelsIn(s)).filter((f) => f.startsWith('twofiles'))).toEqual([]);
  });

  it.each([
    [
      { name: 'other' },
      'the form names project "other" but the file late-1.0-py3-none-any.whl is of project "late"',
    ],
    [
      { version: '2.0' },
      'the form names version "2.0" but the file late-1.0-py3-none-any.whl is of version "1.0"',
    ],
    [
      { sha256_digest: '0'.repeat(64) },
      `late-1.0-py3-none-any.whl: sha256 is SHA, the form says ${'0'.repeat(64)}`,
    ],
  ])('checks fields that come after the file too: %j', async (late, message) => {
    const wheel = await buildWheel({ name: 'late', version: '1.0' });
    const r = await rawPost(
      s,
      'multipart/form-data; boundary=b',
      Buffer.concat([
        filePart('late-1.0-py3-none-any.whl', wheel),
        Buffer.from(
          part(':action', 'file_upload') +
            Object.entries(late)
              .map(([k, v]) => part(k, v))
              .join('') +
            '--b--\r\n',
        ),
      ]),
    );
    expect(r.status).toBe(400);
    expect(JSON.parse(r.body).error.message).toBe(message.replace('SHA', sha256(wheel)));
    expect((await wheelsIn(s)).filter((f) => f.startsWith('late'))).toEqual([]);
  });

  it('logs a client that goes away mid-upload as a quiet line, not an internal error', async () => {
    const wheel = await buildWheel({ name: 'gone', version: '1.0' });
    await new Promise<void>((resolve) => {
      const socket = connect(Number(new URL(s.url).port), '127.0.0.1', () => {
        socket.write(
          `POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${UPLOAD}\r\n` +
            `Content-Type: multipart/form-data; boundary=b\r\nContent-Length: 10000000\r\n\r\n`,
        );
        socket.write(
          Buffer.concat([
            Buffer.from(part(':action', 'file_upload')),
            filePart('gone-1.0-py3-none-any.whl', wheel),
          ]),
        );
        setTimeout(() => socket.destroy(), 300);
      });
      socket.on('close', () => resolve());
    });
    await new Promise((r) => setTimeout(r, 300));
    const lines = s.log();
    expect(lines.filter((l) => l.level === 50)).toEqual([]);
    expect(lines.some((l) => l.msg === 'the client went away mid-upload; nothing published')).toBe(true);
    expect((await wheelsIn(s)).filter((f) => f.startsWith('gone'))).toEqual([]);
  });
});

describe('headers and secrets at rest (point 8)', () => {
  it('sends CSP (script and style by hash), nosniff, no-referrer and frame-ancestors on HTML pages', async () => {
    const r = await fetch(`${s.url}/`);
    const html = await r.text();
    expect(r.headers.get('x-content-type-options')).toBe('nosniff');
    expect(r.headers.get('referrer-policy')).toBe('no-referrer');
    const csp = r.headers.get('content-security-policy')!;
    expect(csp).toContain("frame-ancestors 'none'");
    expect(csp).toContain("default-src 'none'");
    expect(csp).not.toContain('unsafe-inline');
    const scripts = [...html.matchAll(/<script>([\s\S]*?)<\/script>/g)].map((m) => m[1]!);
    const styles = [...html.matchAll(/<style>([\s\S]*?)<\/style>/g)].map((m) => m[1]!);
    expect([scripts.length, styles.length]).toEqual([1, 1]);
    const hash = (t: string) => `'sha256-${createHash('sha256').update(t).digest('base64')}'`;
    expect(csp).toContain(`script-src ${hash(scripts[0]!)}`);
    expect(csp).toContain(`style-src ${hash(styles[0]!)}`);
    expect(html).not.toMatch(/ style="|localStorage| on[a-z]+="/);
    const json = await fetch(`${s.url}/simple/`, {
      headers: { accept: 'application/vnd.pypi.simple.v1+json' },
    });
    expect(json.headers.get('x-content-type-options')).toBe('nosniff');
    expect(json.headers.get('content-security-policy')).toBeNull();
  });

  it('takes tokens as token_sha256 (no plaintext on disk) and logs no query strings', async () => {
    const secret = 'only-its-digest-is-configured';
    const server = await startTestServer({
      tokens: [
        {
          name: 'hashed',
          token: '',
          sha256: createHash('sha256').update(secret).digest('hex'),
          scopes: ['upload'],
        },
      ],
    });
    try {
      const who = await fetch(`${server.url}/api/whoami?token=${secret}`, {
        headers: { authorization: `Bearer ${secret}` },
      });
      expect(await who.json()).toMatchObject({ name: 'hashed' });
      expect(
        (await fetch(`${server.url}/api/whoami`, { headers: { authorization: 'Bearer wrong' } })).status,
      ).toBe(401);
      const access = server.log().filter((l) => l.msg === 'request');
      expect(access.map((l) => l.url)).toEqual(['/api/whoami', '/api/whoami']);
      expect(JSON.stringify(server.log())).not.toContain(secret);
    } finally {
      await server.close();
    }
  });
});
