// The app through fastify's inject, over a real FsWheelStore in a temp dir: routes, auth, errors, paths.
import { readFile, rm } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { FsWheelStore } from '@dstack/wheelhouse';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  basic,
  makeWheel,
  multipartBody,
  rawGet,
  sha256,
  startTestServer,
  type TestServer,
} from './fixtures.test-support.js';

const TOKENS = [
  { name: 'uploader', token: 'up-token-1234567890', scopes: ['read', 'upload'] as ('read' | 'upload')[] },
  { name: 'reader', token: 'read-token-0987654321', scopes: ['read'] as 'read'[] },
];

let s: TestServer;
let alpha: Buffer;
let alphaName: string;

beforeAll(async () => {
  s = await startTestServer({ tokens: TOKENS, maxUploadBytes: 1024 * 1024 });
  const path = await makeWheel(s.dir, {
    name: 'Alpha_Pkg',
    version: '1.0',
    dependencies: ['beta>=2'],
    requiresPython: '>=3.8',
  });
  alpha = await readFile(path);
  alphaName = 'alpha_pkg-1.0-py3-none-any.whl';
  await s.store.add(path, { filename: alphaName });
});
afterAll(async () => s.close());

const upload = (data: Buffer, name: string, auth: string | undefined, extra: Record<string, string> = {}) => {
  const { body, contentType } = multipartBody(
    {
      ':action': 'file_upload',
      protocol_version: '1',
      name: name.split('-')[0]!,
      version: '1.0',
      filetype: 'bdist_wheel',
      sha256_digest: sha256(data),
      ...extra,
    },
    { name, data },
  );
  return s.app.inject({
    method: 'POST',
    url: '/',
    headers: { 'content-type': contentType, ...(auth ? { authorization: auth } : {}) },
    payload: body,
  });
};

describe('operations', () => {
  it('answers /healthz with a request id, echoing a sane x-request-id', async () => {
    const r = await s.app.inject({ url: '/healthz', headers: { 'x-request-id': 'abc-123' } });
    expect(r.statusCode).toBe(200);
    expect(r.json()).toEqual({ status: 'ok' });
    expect(r.headers['x-request-id']).toBe('abc-123');
    const r2 = await s.app.inject({ url: '/healthz', headers: { 'x-request-id': 'bad id\u0001' } });
    expect(r2.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('serves Prometheus metrics that count requests and bytes', async () => {
    await s.app.inject({ url: `/files/${alphaName}` });
    const r = await s.app.inject({ url: '/metrics' });
    expect(r.statusCode).toBe(200);
    expect(r.headers['content-type']).toBe('text/plain; version=0.0.4; charset=utf-8');
    expect(r.body).toContain('# TYPE dstack_http_requests_total counter');
    expect(r.body).toMatch(/dstack_http_requests_total\{method="GET",route="\/healthz",status="200"\} \d+/);
    expect(r.body).toMatch(/dstack_bytes_served_total [1-9]\d*/);
    expect(r.body).toMatch(/process_resident_memory_bytes \d+/);
  });

  it.each([
    ['/files/..%2F..%2Fetc%2Fpasswd', 400],
    ['/files/../../../etc/passwd', 400],
    ['/simple/../../etc/passwd', 400],
    ['/files/..%5c..%5cx.whl', 400],
    ['/files/%2e%2e%2fetc%2fpasswd', 400],
    ['/files/%252e%252e%252fpasswd', 400],
    ['/files/a%00.whl', 400],
    ['/files/.dstack', 400],
    ['/files/passwd', 404],
    ['/files/nothere-1.0-py3-none-any.whl', 404],
    ['/simple/%E0%A4%A/', 400],
  ])('answers %s with %i and never a file outside the wheelhouse', async (url, status) => {
    // Sent byte for byte on a socket: clients (and inject) would normalise the dots away.
    const r = await rawGet(s.url, url);
    expect(r.status).toBe(status);
    expect(JSON.parse(r.body).error.code).toBe(status === 400 ? 'BAD_PATH' : 'NOT_FOUND');
  });

  it('answers unknown routes with a JSON 404', async () => {
    const r = await s.app.inject({ url: '/nope' });
    expect(r.statusCode).toBe(404);
    expect(r.json()).toEqual({ error: { code: 'NOT_FOUND', message: 'nothing at GET /nope' } });
  });
});

describe('simple repository API', () => {
  it('lists projects as PEP 503 HTML without Accept and PEP 691 JSON when asked', async () => {
    const html = await s.app.inject({ url: '/simple/' });
    expect(html.statusCode).toBe(200);
    expect(html.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(html.headers.vary).toBe('Accept');
    expect(html.body).toContain('<a href="alpha-pkg/">alpha-pkg</a>');
    const json = await s.app.inject({
      url: '/simple/',
      headers: { accept: 'application/vnd.pypi.simple.v1+json' },
    });
    expect(json.headers['content-type']).toBe('application/vnd.pypi.simple.v1+json');
    expect(json.json()).toEqual({ meta: { 'api-version': '1.1' }, projects: [{ name: 'alpha-pkg' }] });
  });

  it.each([
    // pip's own Accept header
    [
      'application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, text/html; q=0.01',
      undefined,
      'application/vnd.pypi.simple.v1+json',
    ],
    ['text/html, application/vnd.pypi.simple.v1+json;q=0.5', undefined, 'text/html; charset=utf-8'],
    ['application/vnd.pypi.simple.v1+html', undefined, 'application/vnd.pypi.simple.v1+html; charset=utf-8'],
    ['application/vnd.pypi.simple.latest+json', undefined, 'application/vnd.pypi.simple.v1+json'],
    ['*/*', undefined, 'application/vnd.pypi.simple.v1+json'],
    ['text/html', 'application/vnd.pypi.simple.v1+json', 'application/vnd.pypi.simple.v1+json'],
    [undefined, 'json', 'application/vnd.pypi.simple.v1+json'],
  ])('negotiates Accept %s, format=%s -> %s', async (accept, format, type) => {
    const url = format ? `/simple/alpha-pkg/?format=${encodeURIComponent(format)}` : '/simple/alpha-pkg/';
    const r = await s.app.inject({ url, headers: accept ? { accept } : {} });
    expect(r.statusCode).toBe(200);
    expect(r.headers['content-type']).toBe(type);
  });

  it('answers 406 when no served type is acceptable', async () => {
    const r = await s.app.inject({ url: '/simple/', headers: { accept: 'application/xml, text/html;q=0' } });
    expect(r.statusCode).toBe(406);
    expect(r.json().error.code).toBe('NOT_ACCEPTABLE');
  });

  it('renders a project page with hashes, Requires-Python and PEP 658 metadata', async () => {
    const r = await s.app.inject({
      url: '/simple/alpha-pkg/',
      headers: { accept: 'application/vnd.pypi.simple.v1+json' },
    });
    const page = r.json();
    const entry = (await s.store.get(alphaName))!;
    expect(page.name).toBe('alpha-pkg');
    expect(page.files).toEqual([
      {
        filename: alphaName,
        url: `/files/${alphaName}`,
        hashes: { sha256: sha256(alpha) },
        'requires-python': '>=3.8',
        'core-metadata': { sha256: entry.metadataSha256 },
        size: alpha.length,
        'upload-time': expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/),
      },
    ]);
    const meta = await s.app.inject({ url: `/files/${alphaName}.metadata` });
    expect(meta.statusCode).toBe(200);
    expect(sha256(meta.rawPayload)).toBe(entry.metadataSha256);
    expect(meta.body).toContain('Requires-Dist: beta>=2');
  });

  it.each([
    ['/simple/Alpha_Pkg/', '/simple/alpha-pkg/'],
    ['/simple/ALPHA.pkg', '/simple/alpha-pkg/'],
    ['/simple/alpha-pkg', '/simple/alpha-pkg/'],
    ['/simple/Alpha_Pkg/?format=json', '/simple/alpha-pkg/?format=json'],
    ['/simple', '/simple/'],
  ])('redirects %s to the canonical %s', async (url, location) => {
    const r = await s.app.inject({ url });
    expect(r.statusCode).toBe(301);
    expect(r.headers.location).toBe(location);
  });

  it('shows a wheel another process added (the CLI) on the next request', async () => {
    const before = await s.app.inject({
      url: '/simple/',
      headers: { accept: 'application/vnd.pypi.simple.v1+json' },
    });
    expect(before.json().projects).not.toContainEqual({ name: 'from-cli' });
    const other = new FsWheelStore(s.store.dir);
    await other.add(await makeWheel(s.dir, { name: 'from-cli', version: '0.1' }));
    const after = await s.app.inject({
      url: '/simple/',
      headers: { accept: 'application/vnd.pypi.simple.v1+json' },
    });
    expect(after.json().projects).toContainEqual({ name: 'from-cli' });
    expect((await s.app.inject({ url: '/simple/from-cli/' })).statusCode).toBe(200);
    expect((await s.app.inject({ url: '/files/from_cli-0.1-py3-none-any.whl' })).statusCode).toBe(200);
  });

  it('answers 404 for a project that is not there', async () => {
    const r = await s.app.inject({ url: '/simple/nothing-here/' });
    expect(r.statusCode).toBe(404);
    expect(r.json().error.message).toBe('no project named "nothing-here" in this index');
  });

  it('serves files with Content-Length, ETag, 304 and ranges', async () => {
    const full = await s.app.inject({ url: `/files/${alphaName}` });
    expect(full.statusCode).toBe(200);
    expect(full.headers['content-length']).toBe(String(alpha.length));
    expect(full.headers.etag).toBe(`"${sha256(alpha)}"`);
    expect(full.headers['accept-ranges']).toBe('bytes');
    expect(Buffer.compare(full.rawPayload, alpha)).toBe(0);

    const notModified = await s.app.inject({
      url: `/files/${alphaName}`,
      headers: { 'if-none-match': `"${sha256(alpha)}"` },
    });
    expect(notModified.statusCode).toBe(304);

    const part = await s.app.inject({ url: `/files/${alphaName}`, headers: { range: 'bytes=10-19' } });
    expect(part.statusCode).toBe(206);
    expect(part.headers['content-range']).toBe(`bytes 10-19/${alpha.length}`);
    expect(part.headers['content-length']).toBe('10');
    expect(Buffer.compare(part.rawPayload, alpha.subarray(10, 20))).toBe(0);

    const suffix = await s.app.inject({ url: `/files/${alphaName}`, headers: { range: 'bytes=-5' } });
    expect(Buffer.compare(suffix.rawPayload, alpha.subarray(alpha.length - 5))).toBe(0);

    const stale = await s.app.inject({
      url: `/files/${alphaName}`,
      headers: { range: 'bytes=0-3', 'if-range': '"other"' },
    });
    expect(stale.statusCode).toBe(200);

    const bad = await s.app.inject({
      url: `/files/${alphaName}`,
      headers: { range: `bytes=${alpha.length}-` },
    });
    expect(bad.statusCode).toBe(416);
    expect(bad.headers['content-range']).toBe(`bytes */${alpha.length}`);

    const head = await s.app.inject({ method: 'HEAD', url: `/files/${alphaName}` });
    expect(head.statusCode).toBe(200);
    expect(head.headers['content-length']).toBe(String(alpha.length));
    expect(head.rawPayload.length).toBe(0);
  });
});

describe('uploads (legacy API)', () => {
  let gamma: Buffer;
  let gammaOther: Buffer;
  const gammaName = 'gamma-1.0-py3-none-any.whl';

  beforeAll(async () => {
    gamma = await readFile(await makeWheel(s.dir, { name: 'gamma', version: '1.0' }));
    gammaOther = await readFile(
      await makeWheel(s.dir, { name: 'gamma', version: '1.0', salt: 'other bytes' }),
    );
  });

  it('refuses an upload without a token: 401 with a Basic challenge', async () => {
    const r = await upload(gamma, gammaName, undefined);
    expect(r.statusCode).toBe(401);
    expect(r.headers['www-authenticate']).toBe('Basic realm="dstack-factory"');
    expect(r.json().error.code).toBe('AUTH_REQUIRED');
  });

  it('refuses an unknown token with 401 and a read-only token with 403', async () => {
    const bad = await upload(gamma, gammaName, basic('__token__', 'wrong'));
    expect(bad.statusCode).toBe(401);
    expect(bad.json().error.code).toBe('AUTH_INVALID');
    const ro = await upload(gamma, gammaName, basic('__token__', TOKENS[1]!.token));
    expect(ro.statusCode).toBe(403);
    expect(ro.json().error.message).toBe('the token "reader" does not have the "upload" scope');
  });

  it('stores a wheel (Basic with any user, or Bearer), shows it at once, and accepts identical bytes again', async () => {
    const r = await upload(gamma, gammaName, basic('someone', TOKENS[0]!.token));
    expect(r.statusCode).toBe(200);
    expect(r.json()).toEqual({
      ok: true,
      status: 'added',
      filename: gammaName,
      sha256: sha256(gamma),
      size: gamma.length,
    });
    const page = await s.app.inject({
      url: '/simple/gamma/',
      headers: { accept: 'application/vnd.pypi.simple.v1+json' },
    });
    expect(page.json().files.map((f: { filename: string }) => f.filename)).toEqual([gammaName]);
    expect((await s.store.get(gammaName))!.builtBy).toEqual({ uploadedBy: 'uploader' });
    const again = await upload(gamma, gammaName, `Bearer ${TOKENS[0]!.token}`);
    expect(again.statusCode).toBe(200);
    expect(again.json().status).toBe('present');
  });

  it('answers 409 for different bytes under an existing name', async () => {
    const r = await upload(gammaOther, gammaName, basic('__token__', TOKENS[0]!.token));
    expect(r.statusCode).toBe(409);
    expect(r.json().error.code).toBe('WHEEL_CONFLICT');
    const still = await s.app.inject({ url: `/files/${gammaName}` });
    expect(sha256(still.rawPayload)).toBe(sha256(gamma));
  });

  it('answers 400 for a digest that does not match, and keeps nothing', async () => {
    const delta = await readFile(await makeWheel(s.dir, { name: 'delta', version: '1.0' }));
    const r = await upload(delta, 'delta-1.0-py3-none-any.whl', basic('__token__', TOKENS[0]!.token), {
      sha256_digest: 'a'.repeat(64),
    });
    expect(r.statusCode).toBe(400);
    expect(r.json().error.code).toBe('UPLOAD_DIGEST_MISMATCH');
    expect(await s.store.get('delta-1.0-py3-none-any.whl')).toBeNull();
  });

  it('answers 400 with a clear message for an sdist', async () => {
    const r = await upload(
      Buffer.from('not really a tarball'),
      'gamma-1.0.tar.gz',
      basic('__token__', TOKENS[0]!.token),
      { filetype: 'sdist' },
    );
    expect(r.statusCode).toBe(400);
    expect(r.json().error).toEqual({
      code: 'UPLOAD_NOT_A_WHEEL',
      message: 'gamma-1.0.tar.gz is a source distribution; this index accepts wheels (.whl) only',
      hint: 'build a wheel first (pip wheel --no-deps . or python -m build --wheel) and upload the .whl',
    });
  });

  it('answers 400 for a file that is not a valid wheel', async () => {
    const r = await upload(
      Buffer.from('garbage'),
      'epsilon-1.0-py3-none-any.whl',
      basic('__token__', TOKENS[0]!.token),
      { name: 'epsilon' },
    );
    expect(r.statusCode).toBe(400);
    expect(r.json().error.code).toBe('WHEEL_NOT_ZIP');
  });

  it('answers 413 from the Content-Length alone, before reading the body', async () => {
    const status = await new Promise<number>((resolve, reject) => {
      const req = httpRequest(`${s.url}/`, {
        method: 'POST',
        headers: {
          authorization: basic('__token__', TOKENS[0]!.token),
          'content-type': 'multipart/form-data; boundary=x',
          'content-length': String(1024 ** 3),
        },
      });
      req.on('response', (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
      req.flushHeaders(); // headers only: the server must answer without the body
    });
    expect(status).toBe(413);
  });

  it('answers 413 for a chunked upload that grows past the limit', async () => {
    const big = Buffer.alloc(2 * 1024 * 1024, 1);
    const r = await upload(big, 'zeta-1.0-py3-none-any.whl', basic('__token__', TOKENS[0]!.token), {
      name: 'zeta',
    });
    expect(r.statusCode).toBe(413);
    expect(r.json().error.code).toBe('UPLOAD_TOO_LARGE');
    expect(await s.store.get('zeta-1.0-py3-none-any.whl')).toBeNull();
  });

  it('never logs a token', () => {
    const text = JSON.stringify(s.log());
    expect(text).not.toContain(TOKENS[0]!.token);
    expect(text).not.toContain(Buffer.from(`__token__:${TOKENS[0]!.token}`).toString('base64'));
    expect(s.log().some((l) => l.msg === 'request' && l.url === '/' && l.status === 200)).toBe(true);
  });
});

describe('graceful shutdown', () => {
  it('finishes an upload in flight, then stops', async () => {
    const t = await startTestServer({ tokens: TOKENS });
    const data = await readFile(await makeWheel(t.dir, { name: 'inflight', version: '1.0' }));
    const { body, contentType } = multipartBody(
      { ':action': 'file_upload', name: 'inflight', sha256_digest: sha256(data) },
      { name: 'inflight-1.0-py3-none-any.whl', data },
    );
    const response = new Promise<{ status: number; text: string }>((resolve, reject) => {
      const req = httpRequest(`${t.url}/`, {
        method: 'POST',
        headers: {
          'content-type': contentType,
          'content-length': String(body.length),
          authorization: basic('__token__', TOKENS[0]!.token),
        },
      });
      req.on('response', (res) => {
        let text = '';
        res.on('data', (c: Buffer) => (text += c.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
      });
      req.on('error', reject);
      req.write(body.subarray(0, 200));
      // The rest arrives after the server was told to close.
      setTimeout(() => req.end(body.subarray(200)), 300);
    });
    await new Promise((r) => setTimeout(r, 100));
    const closed = t.app.close();
    const r = await response;
    await closed;
    expect(r.status).toBe(200);
    expect(JSON.parse(r.text).status).toBe('added');
    expect(await t.store.get('inflight-1.0-py3-none-any.whl')).not.toBeNull();
    await expect(fetch(`${t.url}/healthz`)).rejects.toThrow('fetch failed');
    await rm(t.dir, { recursive: true, force: true });
  });
});
