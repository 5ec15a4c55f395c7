// Real clients against a server on 127.0.0.1: Debian's twine uploads (token, no token, read-only token,
// conflicts, --skip-existing), pip installs with dependencies through PEP 691 JSON and PEP 658 metadata,
// and pip download of one version.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { isolatedPipEnv, testPython } from '@dstack/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeWheel, sha256, startTestServer, type TestServer } from './fixtures.test-support.js';

const exec = promisify(execFile);
const TWINE = '/usr/bin/twine';
const UPLOAD_TOKEN = 'pypi-upload-7f3a9c';
const READ_TOKEN = 'pypi-read-5b1e2d';

function requireTwine(): void {
  if (!existsSync(TWINE))
    throw new Error('twine is missing: install it with `apt-get install -y twine` (Debian)');
}

let s: TestServer;
let wheels: Record<string, string>;

async function twine(
  files: string[],
  password: string,
  extra: string[] = [],
): Promise<{ code: number; out: string }> {
  try {
    const r = await exec(
      TWINE,
      [
        'upload',
        '--non-interactive',
        '--disable-progress-bar',
        '--repository-url',
        `${s.url}/`,
        ...extra,
        ...files,
      ],
      {
        env: {
          ...process.env,
          TWINE_USERNAME: '__token__',
          TWINE_PASSWORD: password,
          PYTHON_KEYRING_BACKEND: 'keyring.backends.null.Keyring',
          NO_COLOR: '1',
          COLUMNS: '200',
        },
      },
    );
    return { code: 0, out: r.stdout + r.stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, out: e.stdout + e.stderr };
  }
}

beforeAll(async () => {
  requireTwine();
  s = await startTestServer({
    tokens: [
      { name: 'ci', token: UPLOAD_TOKEN, scopes: ['read', 'upload'] },
      { name: 'viewer', token: READ_TOKEN, scopes: ['read'] },
    ],
  });
  const dir = join(s.dir, 'dist');
  await exec('mkdir', ['-p', join(dir, 'other')]);
  wheels = {
    app: await makeWheel(dir, { name: 'app-one', version: '1.0', dependencies: ['dep-two>=2'] }),
    dep2: await makeWheel(dir, { name: 'dep-two', version: '2.0' }),
    dep1: await makeWheel(dir, { name: 'dep-two', version: '1.0' }),
    conflict: await makeWheel(join(dir, 'other'), {
      name: 'dep-two',
      version: '2.0',
      salt: 'rebuilt elsewhere',
    }),
  };
});
afterAll(async () => s?.close());

describe('twine upload', () => {
  it('is refused without a token (401) and with a read-only token (403)', async () => {
    const none = await twine([wheels.app!], '');
    expect(none.code).not.toBe(0);
    expect(none.out).toContain('401 Unauthorized');
    expect(none.out).toContain('a token with the "upload" scope is required');
    const ro = await twine([wheels.app!], READ_TOKEN);
    expect(ro.code).not.toBe(0);
    expect(ro.out).toContain('403 Forbidden');
    expect(ro.out).toContain('the token "viewer" does not have the "upload" scope');
    expect(await s.store.list()).toEqual([]);
  });

  it('uploads wheels with an upload token', async () => {
    const r = await twine([wheels.app!, wheels.dep2!, wheels.dep1!], UPLOAD_TOKEN);
    expect(r.out).not.toContain('ERROR');
    expect(r.code).toBe(0);
    const stored = await s.store.list();
    expect(stored.map((e) => e.filename)).toEqual([
      'app_one-1.0-py3-none-any.whl',
      'dep_two-1.0-py3-none-any.whl',
      'dep_two-2.0-py3-none-any.whl',
    ]);
    expect(stored.find((e) => e.filename.startsWith('dep_two-2.0'))!.sha256).toBe(
      sha256(await readFile(wheels.dep2!)),
    );
  });

  it('accepts identical bytes again, answers 409 to different bytes, and --skip-existing passes', async () => {
    const same = await twine([wheels.dep2!], UPLOAD_TOKEN);
    expect(same.code).toBe(0);
    const conflict = await twine([wheels.conflict!], UPLOAD_TOKEN);
    expect(conflict.code).not.toBe(0);
    expect(conflict.out).toContain('409 Conflict');
    const skip = await twine([wheels.conflict!], UPLOAD_TOKEN, ['--skip-existing']);
    expect(skip.code).toBe(0);
    expect(skip.out).toContain('Skipping dep_two-2.0-py3-none-any.whl because it appears to already exist');
    const entry = await s.store.get('dep_two-2.0-py3-none-any.whl');
    expect(entry!.sha256).toBe(sha256(await readFile(wheels.dep2!)));
  });
});

describe('pip', () => {
  const python = testPython('3.11');

  it('installs a project and its dependency into a fresh venv through PEP 691 JSON and PEP 658 metadata', async () => {
    const venv = join(s.dir, 'venv');
    await exec(python, ['-m', 'venv', venv]);
    const env = isolatedPipEnv();
    const before = s.log().length;
    await exec(
      join(venv, 'bin', 'python'),
      ['-m', 'pip', 'install', '--index-url', `${s.url}/simple/`, 'app-one'],
      { env },
    );
    const { stdout } = await exec(
      join(venv, 'bin', 'python'),
      ['-c', 'import app_one, dep_two; print(app_one.VERSION, dep_two.VERSION)'],
      { env },
    );
    expect(stdout.trim()).toBe('1.0 2.0');

    const access = s
      .log()
      .slice(before)
      .filter((l) => l.msg === 'request');
    const seen = access.map((l) => `${l.status} ${l.url} ${l.type}`);
    expect(seen).toContain('200 /simple/app-one/ application/vnd.pypi.simple.v1+json');
    expect(seen).toContain('200 /simple/dep-two/ application/vnd.pypi.simple.v1+json');
    expect(seen).toContain('200 /files/app_one-1.0-py3-none-any.whl.metadata text/plain; charset=utf-8');
    expect(seen).toContain('200 /files/dep_two-2.0-py3-none-any.whl.metadata text/plain; charset=utf-8');
    expect(seen).toContain('200 /files/dep_two-2.0-py3-none-any.whl application/octet-stream');
    // The resolver never downloaded a wheel only to read its metadata: dep-two 1.0 was not fetched at all.
    expect(seen.some((l) => l.includes('dep_two-1.0'))).toBe(false);
  });

  it('downloads one exact version with pip download', async () => {
    const dest = join(s.dir, 'downloads');
    await exec(
      testPython('3.11'),
      ['-m', 'pip', 'download', '--no-deps', '--index-url', `${s.url}/simple/`, '-d', dest, 'dep-two==1.0'],
      {
        env: isolatedPipEnv(),
      },
    );
    expect(await readdir(dest)).toEqual(['dep_two-1.0-py3-none-any.whl']);
    expect(sha256(await readFile(join(dest, 'dep_two-1.0-py3-none-any.whl')))).toBe(
      sha256(await readFile(wheels.dep1!)),
    );
  });
});
