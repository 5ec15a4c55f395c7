import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { writeWheel } from '@dstack/testing';
import { FsWheelStore, renderProjectList, renderProjectPage, writeStaticIndex, type NormalizedName, type WheelEntry } from './index.js';

const entry = (over: Partial<WheelEntry>): WheelEntry => ({
  filename: 'foo-1.0-py3-none-any.whl',
  name: 'foo' as NormalizedName,
  version: '1.0',
  sha256: 'a'.repeat(64),
  size: 1234,
  requiresPython: null,
  metadataSha256: 'b'.repeat(64),
  addedAt: '2026-11-24T12:00:00.123Z',
  builtBy: null,
  ...over,
});

const tmps: string[] = [];
afterAll(async () => {
  for (const t of tmps) await rm(t, { recursive: true, force: true });
});

describe('simple repository API', () => {
  const entries = [
    entry({ filename: 'foo-1.10-py3-none-any.whl', version: '1.10', requiresPython: '<4,>=3.8' }),
    entry({}),
    entry({ filename: 'bar-1.0-py3-none-any.whl', name: 'bar' as NormalizedName }),
  ];

  it('renders the PEP 503 project list', () => {
    expect(renderProjectList(['foo', 'bar'] as NormalizedName[], 'html')).toBe(`<!DOCTYPE html>
<html>
  <head>
    <meta name="pypi:repository-version" content="1.1">
    <title>Simple index</title>
  </head>
  <body>
    <a href="bar/">bar</a>
    <a href="foo/">foo</a>
  </body>
</html>
`);
    expect(JSON.parse(renderProjectList(['foo', 'bar'] as NormalizedName[], 'json'))).toEqual({
      meta: { 'api-version': '1.1' },
      projects: [{ name: 'bar' }, { name: 'foo' }],
    });
  });

  it('renders a PEP 503 project page with hashes, escaped Requires-Python and the PEP 714 metadata attribute', () => {
    expect(renderProjectPage('foo' as NormalizedName, entries, 'html')).toBe(`<!DOCTYPE html>
<html>
  <head>
    <meta name="pypi:repository-version" content="1.1">
    <title>Links for foo</title>
  </head>
  <body>
    <h1>Links for foo</h1>
    <a href="foo-1.0-py3-none-any.whl#sha256=${'a'.repeat(64)}" data-core-metadata="sha256=${'b'.repeat(64)}">foo-1.0-py3-none-any.whl</a><br>
    <a href="foo-1.10-py3-none-any.whl#sha256=${'a'.repeat(64)}" data-requires-python="&lt;4,&gt;=3.8" data-core-metadata="sha256=${'b'.repeat(64)}">foo-1.10-py3-none-any.whl</a><br>
  </body>
</html>
`);
  });

  it('renders PEP 691 JSON (api-version 1.1 with PEP 700 fields, and 1.0) with every field the spec names', () => {
    const page = JSON.parse(renderProjectPage('foo' as NormalizedName, entries, 'json', { fileUrl: (e) => `/files/${e.filename}` }));
    expect(page).toEqual({
      meta: { 'api-version': '1.1' },
      name: 'foo',
      versions: ['1.0', '1.10'],
      files: [
        {
          filename: 'foo-1.0-py3-none-any.whl',
          url: '/files/foo-1.0-py3-none-any.whl',
          hashes: { sha256: 'a'.repeat(64) },
          'requires-python': null,
          'core-metadata': { sha256: 'b'.repeat(64) },
          size: 1234,
          'upload-time': '2026-11-24T12:00:00.123000Z',
        },
        {
          filename: 'foo-1.10-py3-none-any.whl',
          url: '/files/foo-1.10-py3-none-any.whl',
          hashes: { sha256: 'a'.repeat(64) },
          'requires-python': '<4,>=3.8',
          'core-metadata': { sha256: 'b'.repeat(64) },
          size: 1234,
          'upload-time': '2026-11-24T12:00:00.123000Z',
        },
      ],
    });
    const v10 = JSON.parse(renderProjectPage('foo' as NormalizedName, entries, 'json', { apiVersion: '1.0' }));
    expect(v10.meta).toEqual({ 'api-version': '1.0' });
    expect(v10.versions).toBeUndefined();
    expect(Object.keys(v10.files[0]).sort()).toEqual(['core-metadata', 'filename', 'hashes', 'requires-python', 'url']);
    // The pre-PEP 714 names only on request (pip 23.0.x mis-handles them: see pip.int.test.ts).
    const legacy = renderProjectPage('foo' as NormalizedName, entries, 'json', { distInfoMetadata: true });
    expect(JSON.parse(legacy).files[0]['dist-info-metadata']).toEqual({ sha256: 'b'.repeat(64) });
    expect(renderProjectPage('foo' as NormalizedName, entries, 'html', { distInfoMetadata: true })).toContain(
      `data-dist-info-metadata="sha256=${'b'.repeat(64)}" data-core-metadata="sha256=${'b'.repeat(64)}"`,
    );
  });

  it('writes a static tree: pages, JSON, hard-linked wheels and .metadata files', async () => {
    const tmp = await mkdtemp(join(tmpdir(), 'wh-static-'));
    tmps.push(tmp);
    const store = new FsWheelStore(join(tmp, 'house'));
    await store.add(await writeWheel(tmp, { name: 'Foo.Bar', version: '1.0', requiresPython: '>=3.8' }));
    await store.add(await writeWheel(tmp, { name: 'baz', version: '2.0' }));
    expect(await writeStaticIndex(store, join(tmp, 'out'))).toEqual({ projects: 2, files: 2 });
    const out = join(tmp, 'out', 'simple');
    expect(await readFile(join(out, 'index.html'), 'utf8')).toContain('<a href="foo-bar/">foo-bar</a>');
    const page = await readFile(join(out, 'foo-bar', 'index.html'), 'utf8');
    const [e] = await store.list('foo-bar');
    expect(page).toContain(`<a href="foo_bar-1.0-py3-none-any.whl#sha256=${e!.sha256}" data-requires-python="&gt;=3.8"`);
    expect(JSON.parse(await readFile(join(out, 'foo-bar', 'index.json'), 'utf8')).files[0].url).toBe('foo_bar-1.0-py3-none-any.whl');
    expect((await stat(join(out, 'foo-bar', 'foo_bar-1.0-py3-none-any.whl'))).ino).toBe((await stat(store.pathOf(e!.filename))).ino);
    expect(await readFile(join(out, 'foo-bar', 'foo_bar-1.0-py3-none-any.whl.metadata'), 'utf8')).toBe(await store.metadata(e!.filename));
  });
});
