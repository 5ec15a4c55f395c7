// Builds over HTTP with the engine's local executor and real pip (offline, isolated from this machine's
// pip config): auth and Decision 13 refusals, a build whose SSE log arrives while it runs, a client that
// disconnects without stopping it, duplicate submissions joined, the wheel in the index afterwards.
import { createReadStream } from 'node:fs';
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import {
  bootstrapWheelhouse,
  isolatedPipEnv,
  makeSdist,
  testPython,
  writePurePackage,
} from '@dstack/testing';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BuildManager, type BuildRecord } from './builds.js';
import { engineRunner } from './engine-runner.js';
import { startTestServer, type TestServer } from './fixtures.test-support.js';
import type { Metrics } from './metrics.js';

const python = testPython('3.11');
const BUILD = 'build-token-xyz';
const READ = 'read-token-xyz';
const UPLOAD = 'upload-secret-from-env-4711';
const tokens = [
  { name: 'builder', token: BUILD, scopes: ['build'] as 'build'[] },
  { name: 'reader', token: READ, scopes: ['read'] as 'read'[] },
  { name: 'ci', token: UPLOAD, scopes: ['upload'] as 'upload'[], env: 'CI_UPLOAD_TOKEN' },
];
/** The server's own environment: its tokens are in it, as with `dstack-factory serve`. */
const serverEnv = isolatedPipEnv({
  DSTACK_SERVER_TOKENS: `builder:build:${BUILD}`,
  CI_UPLOAD_TOKEN: UPLOAD,
  IDX_TOKEN: 'operator-declared-value',
});

const makeBuilds = (
  store: Parameters<typeof engineRunner>[0]['store'],
  config: Parameters<typeof engineRunner>[0]['config'],
  metrics: Metrics,
) =>
  new BuildManager(engineRunner({ config, store, env: serverEnv, logger: pino({ level: 'silent' }) }), {
    concurrency: config.builds.concurrency,
    maxQueued: config.builds.maxQueued,
    keep: config.builds.keep,
    logger: pino({ level: 'silent' }),
    metrics,
  });

let strict: TestServer;
let open: TestServer;
let source: string;

beforeAll(async () => {
  strict = await startTestServer(
    { tokens, builds: strictBuilds() },
    { makeBuilds, recipeVars: { IDX_TOKEN: 'operator-declared-value' } },
  );
  open = await startTestServer(
    { tokens, builds: { ...strictBuilds(), allowLocalPaths: true } },
    { makeBuilds },
  );
  await bootstrapWheelhouse(python, join(open.dir, 'wheelhouse'));
  source = await writePurePackage(join(open.dir, 'src'), { name: 'httpbuilt', version: '1.4' });
}, 120_000);
afterAll(async () => {
  await strict?.close();
  await open?.close();
});

function strictBuilds() {
  return {
    concurrency: 1,
    maxQueued: 10,
    allowLocalPaths: false,
    executor: 'local' as const,
    python,
    factoryImage: null,
    keep: 50,
    public: true,
    recipeEnv: ['IDX_TOKEN'],
    passEnv: [],
  };
}

const post = (s: TestServer, body: unknown, token?: string) =>
  fetch(`${s.url}/api/builds`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify(body),
  });

describe('refusals', () => {
  it('needs a token with the build scope', async () => {
    const none = await post(strict, { recipe: 'x==1' });
    expect(none.status).toBe(401);
    expect(none.headers.get('www-authenticate')).toBe('Basic realm="dstack-factory"');
    const ro = await post(strict, { recipe: 'x==1' }, READ);
    expect(ro.status).toBe(403);
  });

  it.each([
    [
      '-r /etc/other.txt',
      'recipe line 1: "-r /etc/other.txt": includes (-r/-c) read the server\'s own files; not allowed in builds sent over HTTP',
    ],
    [
      'pkg @ file:///srv/pkg',
      'recipe line 1: "pkg @ file:///srv/pkg": local paths, archives and file: URLs read the server\'s own files; not allowed in builds sent over HTTP',
    ],
    [
      'requests\n/srv/src/pkg',
      'recipe line 2: "/srv/src/pkg": local paths, archives and file: URLs read the server\'s own files; not allowed in builds sent over HTTP',
    ],
  ])('refuses %j unless the config allows local paths (Decision 13)', async (recipe, message) => {
    const r = await post(strict, { recipe }, BUILD);
    expect(r.status).toBe(400);
    expect(await r.json()).toEqual({
      error: {
        code: 'RECIPE_FORBIDDEN',
        message,
        hint: 'name packages by index name or remote URL, or set [builds] allow_local_paths = true in the server config',
      },
    });
  });

  it.each([
    [{}, '"recipe" must be the non-empty text of a requirements file'],
    [{ recipe: 'x', jobs: 0 }, '"jobs" must be an integer from 1 to 64'],
    [
      { recipe: 'x', shell: 'rm -rf /' },
      'unknown field "shell" (known: recipe, python, executor, jobs, prebuild, rebuild)',
    ],
  ])('refuses the body %j', async (body, message) => {
    const r = await post(strict, body, BUILD);
    expect(r.status).toBe(400);
    expect(((await r.json()) as { error: { message: string } }).error.message).toBe(message);
  });

  it('answers 400 with the line for a recipe pip would not read', async () => {
    const r = await post(strict, { recipe: 'requests\nflask >= = 2\n' }, BUILD);
    expect(r.status).toBe(400);
    const body = (await r.json()) as { error: { code: string; message: string } };
    expect(body.error.code).toBe('RECIPE_SYNTAX');
    expect(body.error.message).toContain('recipe.txt:2');
  });

  it('answers 404 for an unknown build', async () => {
    const r = await fetch(`${strict.url}/api/builds/nope`);
    expect(r.status).toBe(404);
  });
});

interface SseEvent {
  event: string;
  data: string;
  at: number;
}

/** Reads SSE events until `stopAfter` says so (then disconnects) or the stream ends. */
async function readSse(url: string, stopAfter: (events: SseEvent[]) => boolean): Promise<SseEvent[]> {
  const controller = new AbortController();
  const res = await fetch(url, { headers: { accept: 'text/event-stream' }, signal: controller.signal });
  expect(res.headers.get('content-type')).toBe('text/event-stream; charset=utf-8');
  const events: SseEvent[] = [];
  const decoder = new TextDecoder();
  let buffer = '';
  try {
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      buffer += decoder.decode(chunk, { stream: true });
      let end: number;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const event = /^event: (.*)$/m.exec(block)?.[1];
        const data = /^data: (.*)$/m.exec(block)?.[1];
        if (event !== undefined && data !== undefined) events.push({ event, data, at: Date.now() });
      }
      if (stopAfter(events)) {
        controller.abort();
        break;
      }
    }
  } catch (err) {
    if (!controller.signal.aborted) throw err;
  }
  return events;
}

describe('a build over HTTP', () => {
  let id: string;

  it('is queued, joined when submitted twice, streamed live, and survives its client going away', async () => {
    const recipe = `--no-index\n${source}\n`;
    const first = await post(open, { recipe, python }, BUILD);
    expect(first.status).toBe(202);
    const record = (await first.json()) as BuildRecord & { existing: boolean };
    id = record.id;
    expect(first.headers.get('location')).toBe(`/api/builds/${id}`);
    expect(record.existing).toBe(false);
    expect(record.submittedBy).toBe('builder');
    const again = await post(open, { recipe, python }, BUILD);
    expect(again.status).toBe(200);
    expect((await again.json()) as { id: string; existing: boolean }).toMatchObject({ id, existing: true });

    // Follow the log until the plan is printed, then hang up while pip is still building.
    const early = await readSse(`${open.url}/api/builds/${id}/log`, (events) =>
      events.some((e) => e.event === 'log' && JSON.parse(e.data).startsWith('planned:')),
    );
    const stateWhenLeft = ((await (await fetch(`${open.url}/api/builds/${id}`)).json()) as BuildRecord).state;
    expect(stateWhenLeft).toBe('running');
    expect(early.filter((e) => e.event === 'log').length).toBeGreaterThan(1);
    expect(early.some((e) => e.event === 'end')).toBe(false);

    const done = await open.app.inject({ url: `/api/builds/${id}` });
    expect(['running', 'succeeded']).toContain(done.json().state);
    // A new client replays the whole log from the start and follows it to the end.
    const all = await readSse(`${open.url}/api/builds/${id}/log`, () => false);
    const end = all.at(-1)!;
    expect(end.event).toBe('end');
    const final = JSON.parse(end.data) as BuildRecord;
    expect(final.state).toBe('succeeded');
    expect(final.outcome!.wheels.map((w) => [w.filename, w.status])).toEqual([
      ['httpbuilt-1.4-py3-none-any.whl', 'added'],
    ]);
    expect(final.outcome!.lock).toContain('name = "httpbuilt"');
    const lines = all.filter((e) => e.event === 'log').map((e) => JSON.parse(e.data) as string);
    expect(lines.slice(0, early.filter((e) => e.event === 'log').length)).toEqual(
      early.filter((e) => e.event === 'log').map((e) => JSON.parse(e.data) as string),
    );
    expect(lines).toContain('build: httpbuilt==1.4');
    expect(lines.at(-1)).toBe('done: 1 wheels stored, 0 already there');
  }, 300_000);

  it('leaves its wheel in the index, its log as text, and counts in /metrics', async () => {
    const page = await fetch(`${open.url}/simple/httpbuilt/`, {
      headers: { accept: 'application/vnd.pypi.simple.v1+json' },
    });
    expect(((await page.json()) as { files: { filename: string }[] }).files.map((f) => f.filename)).toEqual([
      'httpbuilt-1.4-py3-none-any.whl',
    ]);
    const text = await (await fetch(`${open.url}/api/builds/${id}/log`)).text();
    expect(text).toContain('stored: httpbuilt-1.4-py3-none-any.whl (added, sha256 ');
    const metrics = await (await fetch(`${open.url}/metrics`)).text();
    expect(metrics).toContain('dstack_builds_total{state="succeeded"} 1');
    const list = (await (await fetch(`${open.url}/api/builds`)).json()) as { builds: BuildRecord[] };
    expect(list.builds.map((b) => [b.id, b.state])).toEqual([[id, 'succeeded']]);
  });
});

describe('the attack review (issue 12, points 1 and 2) over HTTP', () => {
  it.each([
    ['# a note \\\n--find-links /srv/wheels\nrequests', 'recipe option "--find-links /srv/wheels"'],
    ['requests # note\f--find-links /srv/wheels', 'recipe option "--find-links /srv/wheels"'],
    ['requests\u2028--find /srv/wheels', 'recipe option "--find-links /srv/wheels"'],
    ['--extra\t/srv/simple', 'recipe option "--extra-index-url /srv/simple"'],
    ['--index=/srv/simple', 'recipe option "--index-url /srv/simple"'],
    ['--edit ./src', 'recipe line 1: "--edit ./src"'],
    ['requests\x85pkg-1.0.tar.lzma', 'recipe line 2: "pkg-1.0.tar.lzma"'],
  ])("refuses %j: it names the server's files", async (recipe, start) => {
    const r = await post(strict, { recipe }, BUILD);
    expect(r.status).toBe(400);
    const body = (await r.json()) as { error: { code: string; message: string } };
    expect(body.error.code).toBe('RECIPE_FORBIDDEN');
    expect(body.error.message.startsWith(start)).toBe(true);
  });

  it('refuses includes on purpose, whatever they name', async () => {
    const r = await post(strict, { recipe: 'requests\n-r https://example.com/more.txt' }, BUILD);
    expect(await r.json()).toEqual({
      error: {
        code: 'RECIPE_FORBIDDEN',
        message:
          'recipe line 2: "-r https://example.com/more.txt": includes (-r/-c) read the server\'s own files; not allowed in builds sent over HTTP',
        hint: 'name packages by index name or remote URL, or set [builds] allow_local_paths = true in the server config',
      },
    });
  });

  let links: Server;
  const requested: string[] = [];
  beforeAll(async () => {
    // A remote index of our own: find-links with the bootstrap wheels and an sdist whose setup.py prints
    // the environment it runs in, then fails.
    const dir = join(strict.dir, 'remote');
    await bootstrapWheelhouse(python, join(dir, 'links'));
    const src = join(dir, 'src', 'envleak-1.0');
    await mkdir(src, { recursive: true });
    await writeFile(
      join(src, 'setup.py'),
      'import json, os, sys\nsys.stderr.write("ENVDUMP " + json.dumps(dict(os.environ)) + "\\n")\nsys.exit(3)\n',
    );
    await makeSdist(src, join(dir, 'links'), { name: 'envleak', version: '1.0' });
    const files = await readdir(join(dir, 'links'));
    links = createServer((req, res) => {
      requested.push(req.url ?? '');
      const name = (req.url ?? '').replace(/^\/links\//, '');
      if (req.url === '/links/') {
        res.setHeader('content-type', 'text/html');
        res.end(files.map((f) => `<a href="${f}">${f}</a>`).join('\n'));
      } else if (req.url?.startsWith('/links/') && files.includes(name)) {
        createReadStream(join(dir, 'links', name)).pipe(res);
      } else {
        res.statusCode = 404;
        res.end();
      }
    });
    await new Promise<void>((r) => links.listen(0, '127.0.0.1', r));
  }, 120_000);
  afterAll(() => new Promise<void>((r) => (links ? links.close(() => r()) : r())));

  it("runs the build without the server's secrets; ${VAR} expands only from recipe_env", async () => {
    const port = (links.address() as { port: number }).port;
    const base = `http://127.0.0.1:${port}`;
    const recipe = [
      `--index-url ${base}/simple/`,
      `--extra-index-url ${base}/\${DSTACK_SERVER_TOKENS}/`,
      `--extra-index-url ${base}/\${CI_UPLOAD_TOKEN}/`,
      `--extra-index-url ${base}/\${IDX_TOKEN}/`,
      `--find-links ${base}/links/`,
      'envleak',
    ].join('\n');
    const r = await post(strict, { recipe, python }, BUILD);
    expect(r.status).toBe(202);
    const { id } = (await r.json()) as { id: string };
    const record = await strict.app.inject({ url: `/api/builds/${id}` });
    expect(record.json().request.recipe).toBe(recipe); // the record keeps what was sent, not expanded values
    const final = (await readSse(`${strict.url}/api/builds/${id}/log`, () => false)).at(-1)!;
    expect((JSON.parse(final.data) as BuildRecord).state).toBe('failed');
    // The log as a token holder reads it (nothing redacted), and as an anonymous reader (point 3).
    const reader = await (
      await fetch(`${strict.url}/api/builds/${id}/log`, { headers: { authorization: `Bearer ${READ}` } })
    ).text();
    const log = await (await fetch(`${strict.url}/api/builds/${id}/log`)).text();
    const dump = /ENVDUMP (\{.*\})/.exec(reader);
    expect(dump, reader).not.toBeNull();
    const buildEnv = JSON.parse(dump![1]!) as Record<string, string>;
    expect(Object.keys(buildEnv)).not.toContain('DSTACK_SERVER_TOKENS');
    expect(Object.keys(buildEnv)).not.toContain('CI_UPLOAD_TOKEN');
    expect(Object.keys(buildEnv)).not.toContain('IDX_TOKEN');
    for (const secret of [BUILD, UPLOAD]) {
      expect(reader).not.toContain(secret);
      expect(log).not.toContain(secret);
      expect(requested.join('\n')).not.toContain(secret);
    }
    // Unlisted variables stay literal (percent-encoded), the listed one expands.
    expect(requested).toContain('/%24%7BDSTACK_SERVER_TOKENS%7D/envleak/');
    expect(requested).toContain('/%24%7BCI_UPLOAD_TOKEN%7D/envleak/');
    expect(requested).toContain('/operator-declared-value/envleak/');

    expect(reader).toMatch(/ \/tmp\//);
    expect(log).not.toMatch(/(^|[\s"'(=:])\/(tmp|root|usr|home|work)\//m);
    expect(log).not.toContain(base + '/simple/');
    expect(log).toContain('Looking in indexes: …');
    const anonymousRecord = JSON.stringify(await (await fetch(`${strict.url}/api/builds/${id}`)).json());
    expect(anonymousRecord).not.toMatch(/(^|[\s"'(=:])\/(tmp|root|usr|home|work)\//m);
  }, 300_000);

  it('[builds] public = false requires the read scope for build records and logs alone', async () => {
    const closed = await startTestServer(
      { tokens, builds: { ...strictBuilds(), public: false } },
      { makeBuilds },
    );
    try {
      const r = await post(closed, { recipe: 'requests', python }, BUILD);
      const { id } = (await r.json()) as { id: string };
      for (const path of ['/api/builds', `/api/builds/${id}`, `/api/builds/${id}/log`, `/builds/${id}`]) {
        expect((await fetch(`${closed.url}${path}`)).status).toBe(401);
        expect(
          (await fetch(`${closed.url}${path}`, { headers: { authorization: `Bearer ${READ}` } })).status,
        ).toBe(200);
      }
      expect((await fetch(`${closed.url}/simple/`)).status).toBe(200); // the index stays public
      const home = await (await fetch(`${closed.url}/`)).text();
      expect(home).toContain('Builds are shown to tokens with the read scope.');
      await closed.app.inject({ url: `/api/builds/${id}` });
    } finally {
      await closed.close();
    }
  }, 300_000);
});
