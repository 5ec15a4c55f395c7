// A project's page over HTTP, as PyPI shows one: summary, the description (Markdown rendered with its HTML
// escaped, or plain text), Requires-Python, dependencies; and each wheel's source and builder, with no server
// path for an anonymous reader (an interpreter is shown as its version).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeWheel } from '@dstack/testing';
import { startTestServer, type TestServer } from './fixtures.test-support.js';
import { PAGE_CSP } from './web.js';

const TOKEN = 'page-reader-token-123456';
const INTERPRETER = '/root/.pyenv/versions/3.11.7/bin/python (cp 3.11.7)';
const SDIST = 'file:///srv/sdists/fancy-lib-2.0.tar.gz';
const HOSTILE = [
  '# Fancy *lib*',
  '',
  'Use it like this: `fancy.run()`.',
  '',
  '<script>alert("x")</script>',
  '<img src="x" onerror="alert(1)">',
  '',
  '[click](javascript:alert(1)) and [docs](https://docs.example.org/fancy)',
  '',
].join('\n');

let s: TestServer;

beforeAll(async () => {
  s = await startTestServer({ tokens: [{ name: 'reader', token: TOKEN, scopes: ['read'] }] });
  await s.store.add(
    await writeWheel(s.dir, {
      name: 'fancy-lib',
      version: '2.0',
      summary: 'A fancy library <b>for tests</b>',
      requiresPython: '>=3.9',
      requires: ['beta-util>=0.3', 'idna; extra == "net"'],
      description: HOSTILE,
      descriptionContentType: 'text/markdown; charset=UTF-8',
    }),
    { builtBy: { executor: 'local', interpreter: INTERPRETER, target: 'cp311-linux_x86_64' }, source: { kind: 'sdist', url: SDIST, sha256: 'ab'.repeat(32) } },
  );
  await s.store.add(await writeWheel(s.dir, { name: 'fancy-lib', version: '1.0' }), {
    builtBy: { executor: 'docker', image: 'dstack-factory/factory:py3.11', imageId: `sha256:${'cd'.repeat(32)}`, interpreter: '/usr/bin/python3.11 (cp 3.11.2)', target: 'cp311-linux_x86_64' },
    source: { kind: 'vcs', vcs: 'git', url: 'https://git.example.org/fancy.git', commit: 'e'.repeat(40) },
  });
  await s.store.add(await writeWheel(s.dir, { name: 'fancy-lib', version: '0.9' }), {
    builtBy: { executor: 'local', interpreter: INTERPRETER, target: 'cp311-linux_x86_64' },
    source: { kind: 'directory', path: '/home/dev/fancy' },
  });
  await s.store.add(await writeWheel(s.dir, { name: 'beta-util', version: '0.3', description: 'Plain *text* <b>here</b>\n' }), {
    builtBy: { uploadedBy: 'ci' },
  });
});
afterAll(() => s?.close());

const page = async (name: string, token?: string): Promise<{ status: number; csp: string | null; html: string }> => {
  const res = await fetch(`${s.url}/project/${name}`, token ? { headers: { authorization: `Bearer ${token}` } } : {});
  return { status: res.status, csp: res.headers.get('content-security-policy'), html: await res.text() };
};
const between = (html: string, start: string, end: string): string => html.slice(html.indexOf(start), html.indexOf(end, html.indexOf(start)) + end.length);

describe('a project page', () => {
  it('shows summary, Requires-Python, dependencies and the Markdown description with its HTML escaped', async () => {
    const r = await page('fancy-lib');
    expect(r.status).toBe(200);
    expect(r.csp).toBe(PAGE_CSP);
    expect(r.html).toContain('<p class="summary">A fancy library &lt;b&gt;for tests&lt;/b&gt;</p>');
    expect(r.html).toContain('<b id="requires-python">&gt;=3.9</b>');
    expect(between(r.html, '<ul id="dependencies">', '</ul>')).toBe(
      '<ul id="dependencies"><li data-dependency="beta-util"><a href="/project/beta-util">beta-util</a> <code>&gt;=0.3</code></li><li data-dependency="idna">idna <code>; extra == &quot;net&quot;</code></li></ul>',
    );
    expect(between(r.html, '<div class="description" data-format="markdown">', '</div>')).toBe(
      '<div class="description" data-format="markdown"><h1>Fancy <em>lib</em></h1>\n' +
        '<p>Use it like this: <code>fancy.run()</code>.</p>\n' +
        '<p>&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;\n&lt;img src=&quot;x&quot; onerror=&quot;alert(1)&quot;&gt;</p>\n' +
        '<p>[click](javascript:alert(1)) and <a href="https://docs.example.org/fancy" rel="nofollow ugc noopener">docs</a></p>\n</div>',
    );
    // The page's only script is the one its CSP hashes.
    expect(r.html.match(/<script/g)).toHaveLength(1);
  });

  it('shows a description without a Markdown content type as plain text', async () => {
    const r = await page('beta-util');
    expect(r.html).toContain('<pre class="description wrap" data-format="text">Plain *text* &lt;b&gt;here&lt;/b&gt;\n</pre>');
    expect(r.html).toContain('<b id="requires-python">any</b>');
    expect(r.html).toContain('<div class="empty" id="dependencies">None.</div>');
    expect(r.html).toContain('<td class="muted source">uploaded</td><td class="muted builder">uploadedBy: ci</td>');
  });

  it("shows each wheel's source and builder: an anonymous reader sees the interpreter's version, no path", async () => {
    const anonymous = await page('fancy-lib');
    const rows = (html: string): string[] => [...html.matchAll(/<td class="muted source">(.*?)<\/td><td class="muted builder">(.*?)<\/td>/g)].map((m) => `${m[1]} | ${m[2]}`);
    expect(rows(anonymous.html)).toEqual([
      `sdist file://… sha256:${'ab'.repeat(32)} | executor: local, interpreter: CPython 3.11.7, target: cp311-linux_x86_64`,
      `git+https://git.example.org/fancy.git@${'e'.repeat(40)} | executor: docker, image: dstack-factory/factory:py3.11, imageId: sha256:${'cd'.repeat(32)}, interpreter: CPython 3.11.2, target: cp311-linux_x86_64`,
      'local folder … | executor: local, interpreter: CPython 3.11.7, target: cp311-linux_x86_64',
    ]);
    for (const path of ['/root', '/srv', '/home', '/usr/bin', s.dir]) expect(anonymous.html).not.toContain(path);
    const reader = await page('fancy-lib', TOKEN);
    expect(rows(reader.html)).toEqual([
      `sdist ${SDIST} sha256:${'ab'.repeat(32)} | executor: local, interpreter: ${INTERPRETER}, target: cp311-linux_x86_64`,
      `git+https://git.example.org/fancy.git@${'e'.repeat(40)} | executor: docker, image: dstack-factory/factory:py3.11, imageId: sha256:${'cd'.repeat(32)}, interpreter: /usr/bin/python3.11 (cp 3.11.2), target: cp311-linux_x86_64`,
      'local folder /home/dev/fancy | executor: local, interpreter: /root/.pyenv/versions/3.11.7/bin/python (cp 3.11.7), target: cp311-linux_x86_64',
    ]);
  });
});
