// `lock diff` over CycloneDX SBOMs (what image app writes beside its output) and over a lock and an SBOM: the
// components with a pkg:pypi PURL are the distributions; their SHA-256 is the installed wheel's.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringifyLock } from '@dstack/recipe';
import { runCli } from '../run-cli.test-support.js';

let dir: string;
const h = (c: string): string => c.repeat(64);
const bom = (components: { name: string; version: string; sha: string }[]) => ({
  bomFormat: 'CycloneDX',
  specVersion: '1.6',
  metadata: { component: { type: 'container', name: 'app', hashes: [{ alg: 'SHA-256', content: h('f') }] } },
  components: [
    ...components.map((c) => ({
      type: 'library',
      name: c.name,
      version: c.version,
      purl: `pkg:pypi/${c.name.toLowerCase()}@${c.version}`,
      hashes: [{ alg: 'SHA-256', content: h(c.sha) }],
    })),
    { type: 'file', name: 'etc/os-release', hashes: [{ alg: 'SHA-256', content: h('e') }] },
  ],
});
const cli = (args: string[]) => runCli(['--quiet', ...args], { cwd: dir, env: { NO_COLOR: '1' } });

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'dstack-lock-diff-'));
  await writeFile(path.join(dir, 'a.cdx.json'), JSON.stringify(bom([{ name: 'Django', version: '4.2', sha: 'a' }, { name: 'pip', version: '23.2.1', sha: 'b' }, { name: 'sqlparse', version: '0.4', sha: 'c' }])));
  await writeFile(path.join(dir, 'b.cdx.json'), JSON.stringify(bom([{ name: 'Django', version: '4.2.1', sha: 'd' }, { name: 'pip', version: '23.2.1', sha: 'b' }, { name: 'asgiref', version: '3.7', sha: '1' }])));
  await writeFile(
    path.join(dir, 'a.toml'),
    stringifyLock({
      lockVersion: '1.0',
      createdBy: 'test',
      packages: [
        { name: 'django', version: '4.2', wheels: [{ name: 'Django-4.2-py3-none-any.whl', path: 'Django-4.2-py3-none-any.whl', hashes: { sha256: h('a') } }] },
        { name: 'sqlparse', version: '0.4', wheels: [{ name: 'sqlparse-0.4-py3-none-any.whl', path: 'sqlparse-0.4-py3-none-any.whl', hashes: { sha256: h('c') } }] },
      ],
    }),
  );
  await writeFile(path.join(dir, 'not-a-bom.json'), '{"spdxVersion": "SPDX-2.3"}');
});
afterAll(() => rm(dir, { recursive: true, force: true }));

describe('lock diff', () => {
  it('of two SBOMs: the pkg:pypi components, changed, added and removed', async () => {
    const r = await cli(['lock', 'diff', 'a.cdx.json', 'b.cdx.json']);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(
      [
        'changed django 4.2 -> 4.2.1 (sha256 aaaaaaaaaaaa -> dddddddddddd)',
        'added   asgiref 3.7 (sha256 111111111111)',
        'removed sqlparse 0.4',
        '1 changed, 1 added, 1 removed, 1 unchanged',
        '',
      ].join('\n'),
    );
  });

  it('of a lock and the SBOM of the image made from it: what the image adds (pip in the venv)', async () => {
    const r = await cli(['lock', 'diff', 'a.toml', 'a.cdx.json', '--json']);
    expect(r.stderr).toBe('');
    expect(JSON.parse(r.stdout)).toEqual({ added: [{ name: 'pip', version: '23.2.1', sha256: [h('b')] }], removed: [], changed: [], unchanged: 2 });
  });

  it('refuses JSON that is not a CycloneDX SBOM, naming the file', async () => {
    const r = await cli(['lock', 'diff', 'not-a-bom.json', 'a.toml']);
    expect(r.code).toBe(1);
    expect(r.stderr.split('\n')[0]).toBe(`error[LOCK_UNREADABLE]: ${path.join(dir, 'not-a-bom.json')} is JSON but not a CycloneDX SBOM (no bomFormat "CycloneDX" with components)`);
  });
});
