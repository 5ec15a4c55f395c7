import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pino, type Logger } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EMPTY_DIGEST, RegistryClient, type ImageReference, type ManifestBytes } from '@dstack/oci';
import { FsWheelStore, WheelError } from '@dstack/wheelhouse';
import {
  buildWheel,
  describeWheelStoreContract,
  sharedRegistry,
  startFaultProxy,
  wheelFilenameOf,
  type SharedRegistry,
  type WheelSpec,
} from '@dstack/testing';
import { copyWheels, PROJECT_ARTIFACT_TYPE, RegistryWheelStore, WHEEL_ARTIFACT_TYPE } from './index.js';

const runId = randomBytes(4).toString('hex');
let registry: SharedRegistry;
let tmp: string;
const location = (name: string): string => `registry:${registry.host}/dstack-test/wheels-${name}-${runId}`;
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

// The same suite the folder store passes (tools/testing/src/wheel-store-contract.ts).
describeWheelStoreContract('RegistryWheelStore (distribution 2.8)', async () => {
  const shared = await sharedRegistry();
  return new RegistryWheelStore(`registry:${shared.host}/dstack-test/wheels-contract-${runId}`, { cacheMs: 0 });
});

beforeAll(async () => {
  registry = await sharedRegistry();
  tmp = await mkdtemp(join(tmpdir(), 'dstack-wheel-registry-'));
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

async function folderOf(name: string, specs: WheelSpec[]): Promise<FsWheelStore> {
  const dir = join(tmp, name);
  const store = new FsWheelStore(dir);
  for (const spec of specs) await store.add(Readable.from([await buildWheel(spec)]), { filename: wheelFilenameOf(spec), builtBy: { by: name } });
  return store;
}

/** A client that records the manifests it GETs (by tag or digest). */
class CountingClient extends RegistryClient {
  readonly gets: string[] = [];
  override getManifest(ref: ImageReference, reference: string, accept?: string): Promise<ManifestBytes> {
    this.gets.push(reference);
    return super.getManifest(ref, reference, accept);
  }
}

/** The project manifest of `project` in the store's repository, as JSON. */
async function projectManifestOf(store: RegistryWheelStore, project: string): Promise<{ artifactType: string; layers: { digest: string; annotations: Record<string, string> }[]; annotations: Record<string, string> }> {
  return JSON.parse((await new RegistryClient().getManifest(store.ref, `project.${project}`)).bytes.toString('utf8'));
}
const filenamesIn = (m: { layers: { annotations: Record<string, string> }[] }): string[] =>
  m.layers.map((l) => l.annotations['dev.dstack-factory.wheel.filename']).filter((f): f is string => f !== undefined).sort();

/** A pino logger whose lines (parsed) land in `lines`. */
function captureLogger(lines: { msg: string; [k: string]: unknown }[]): Logger {
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString('utf8').split('\n').filter(Boolean)) lines.push(JSON.parse(line));
      done();
    },
  });
  return pino({ level: 'debug' }, sink);
}

const specs = (prefix: string, n: number): WheelSpec[] =>
  Array.from({ length: n }, (_, i) => ({ name: `${prefix}-${i}`, version: `1.${i}`, requires: i > 0 ? [`${prefix}-${i - 1}`] : [] }));

describe('RegistryWheelStore', () => {
  it('README usage', async () => {
    const host = registry.host;
    const wheel = join(tmp, 'usage_demo-1.0-py3-none-any.whl');
    await writeFile(wheel, await buildWheel({ name: 'usage-demo', version: '1.0' }));
    const dest = join(tmp, 'usage-dest');
    // README usage: begin
    // new RegistryClient({ credentials: dockerConfigAuths() }) for a registry that wants them
    const store = new RegistryWheelStore(`registry:${host}/team/wheels-${runId}`, { cacheMs: 5000 });
    const { status } = await store.add(wheel); // validated as the folder store does, then pushed
    expect(status).toBe('added');
    expect((await store.list()).map((e) => e.filename)).toEqual(['usage_demo-1.0-py3-none-any.whl']);

    // `wheelhouse pull`: what the folder lacks, 8 at once; run again after a failure, it copies the rest
    const pulled = await copyWheels(store, new FsWheelStore(dest));
    expect(pulled.copied).toEqual(['usage_demo-1.0-py3-none-any.whl']);
    // README usage: end
  });

  it('stores each wheel as an image manifest with artifactType, the empty config and annotations', async () => {
    const store = new RegistryWheelStore(location('layout'));
    const bytes = await buildWheel({ name: 'Layout.Demo', version: '1.0', requiresPython: '>=3.9' });
    const { entry } = await store.add(Readable.from([bytes]), { filename: 'Layout.Demo-1.0-py3-none-any.whl', builtBy: { executor: 'local' } });
    const client = new RegistryClient();
    const [tag] = await client.listTags(store.ref);
    const manifest = JSON.parse((await client.getManifest(store.ref, tag!)).bytes.toString('utf8'));
    expect(manifest).toEqual({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      artifactType: WHEEL_ARTIFACT_TYPE,
      config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: 'sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a', size: 2 },
      layers: [
        { mediaType: 'application/vnd.dstack-factory.wheel.v1+zip', digest: `sha256:${sha(bytes)}`, size: bytes.length, annotations: { 'org.opencontainers.image.title': 'layout_demo-1.0-py3-none-any.whl' } },
        { mediaType: 'application/vnd.dstack-factory.wheel.metadata.v1', digest: `sha256:${entry.metadataSha256}`, size: expect.any(Number), annotations: { 'org.opencontainers.image.title': 'layout_demo-1.0-py3-none-any.whl.metadata' } },
      ],
      annotations: {
        'org.opencontainers.image.title': 'layout_demo-1.0-py3-none-any.whl',
        'org.opencontainers.image.created': entry.addedAt,
        'dev.dstack-factory.wheel.filename': 'layout_demo-1.0-py3-none-any.whl',
        'dev.dstack-factory.wheel.sha256': sha(bytes),
        'dev.dstack-factory.wheel.metadata.sha256': entry.metadataSha256,
        'dev.dstack-factory.wheel.requires-python': '>=3.9',
        'dev.dstack-factory.wheel.built-by': '{"executor":"local"}',
        'dev.dstack-factory.wheel.needs': '[]',
      },
    });
    expect(tag).toMatch(/^layout_demo-1\.0-py3-none-any--[0-9a-f]{16}-[0-9a-f]{16}$/);
    // A new store (another machine) reads the same entry back from the registry.
    expect(await new RegistryWheelStore(location('layout')).list()).toEqual([entry]);
  });

  it('refuses a conflicting push naming both digests, under any spelling of the release', async () => {
    const a = new RegistryWheelStore(location('conflict'));
    const one = await buildWheel({ name: 'clash', version: '1.0' });
    const two = await buildWheel({ name: 'clash', version: '1.0', files: { 'clash/__init__.py': 'OTHER = 1\n' } });
    await a.add(Readable.from([one]), { filename: 'clash-1.0-py3-none-any.whl' });
    // Another machine, its own client and cache.
    const b = new RegistryWheelStore(location('conflict'));
    const err = await b.add(Readable.from([two]), { filename: 'clash-1.0-py3-none-any.whl' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WheelError);
    expect((err as WheelError).code).toBe('WHEEL_CONFLICT');
    expect((err as WheelError).message).toBe(
      `clash-1.0-py3-none-any.whl is already in ${b.location} with different bytes (sha256 ${sha(one)}, new ${sha(two)})`,
    );
    const spelled = await b.add(Readable.from([two]), { filename: 'Clash-1.0.0-py3-none-any.whl' }).catch((e: unknown) => e);
    expect((spelled as WheelError).message).toBe(
      `Clash-1.0.0-py3-none-any.whl is the release ${b.location} holds as clash-1.0-py3-none-any.whl with different bytes (sha256 ${sha(one)}, new ${sha(two)})`,
    );
    expect((await b.add(Readable.from([one]), { filename: 'Clash-1.0.0-py3-none-any.whl' })).status).toBe('present');
    const replaced = await b.add(Readable.from([two]), { filename: 'clash-1.0-py3-none-any.whl', overwrite: true });
    expect(replaced.status).toBe('added');
    expect((await new RegistryWheelStore(location('conflict')).list()).map((e) => e.sha256)).toEqual([sha(two)]);
  });

  it('two writers at once: every wheel of both is there after', async () => {
    const where = location('writers');
    const ones = specs('writer-a', 12);
    const twos = specs('writer-b', 12);
    const both = { name: 'writer-both', version: '3.0' };
    // Both writers also add wheels of one project, writer-shared: its manifest must end up with every one of them.
    const shared = (major: number): WheelSpec[] => Array.from({ length: 6 }, (_, i) => ({ name: 'writer-shared', version: `${major}.${i}` }));
    ones.push(...shared(1));
    twos.push(...shared(2));
    const bothBytes = await buildWheel(both);
    const write = async (list: WheelSpec[]): Promise<string[]> => {
      const store = new RegistryWheelStore(where, { client: new RegistryClient() });
      const wheels = [...(await Promise.all(list.map(async (s) => ({ bytes: await buildWheel(s), filename: wheelFilenameOf(s) })))), { bytes: bothBytes, filename: wheelFilenameOf(both) }];
      return Promise.all(wheels.map(async (w) => (await store.add(Readable.from([w.bytes]), { filename: w.filename })).status));
    };
    const [a, b] = await Promise.all([write(ones), write(twos)]);
    expect(a.slice(0, 18)).toEqual(Array(18).fill('added'));
    expect(b.slice(0, 18)).toEqual(Array(18).fill('added'));
    const stored = (list: WheelSpec[]): string[] => list.map((s) => wheelFilenameOf(s).replace(/-/g, (m, i: number) => (i < s.name.length ? '_' : m))).sort();
    const reader = new CountingClient();
    const listed = await new RegistryWheelStore(where, { client: reader }).list();
    expect(listed.map((e) => e.filename).sort()).toEqual(stored([...ones, ...twos, both]));
    // One manifest per project, and it holds every wheel of both writers.
    const sharedManifest = await projectManifestOf(new RegistryWheelStore(where), 'writer-shared');
    expect(filenamesIn(sharedManifest)).toEqual(stored([...shared(1), ...shared(2)]));
    expect(filenamesIn(await projectManifestOf(new RegistryWheelStore(where), 'writer-both'))).toEqual(stored([both]));
    // So a reader on another machine reads one manifest per project (26), none per wheel (37).
    expect(reader.gets.length).toBe(26);
    expect(reader.gets.every((g) => g.startsWith('project.'))).toBe(true);
  });

  it('two writers of other bytes for one release at once: a writer told "added" is the one served, the other is refused', async () => {
    for (let round = 0; round < 3; round++) {
      const where = location(`race${round}`);
      const bytes = await Promise.all([1, 2].map((n) => buildWheel({ name: 'race', version: '1.0', files: { 'race/__init__.py': `N = ${n}\n` } })));
      const results = await Promise.allSettled(
        bytes.map((b) => new RegistryWheelStore(where, { client: new RegistryClient() }).add(Readable.from([b]), { filename: 'race-1.0-py3-none-any.whl' })),
      );
      const listed = await new RegistryWheelStore(where).list();
      const added = results.flatMap((r, i) => (r.status === 'fulfilled' ? [sha(bytes[i]!)] : []));
      for (const r of results) if (r.status === 'rejected') expect((r.reason as WheelError).code).toBe('WHEEL_CONFLICT');
      expect(added.length).toBeLessThanOrEqual(1);
      expect(listed.map((e) => e.sha256)).toEqual(added);
    }
  });

  it('keeps one manifest per project, tagged project.<name>, rebuilt from its wheel tags on add and remove', async () => {
    const store = new RegistryWheelStore(location('project'));
    const one = await buildWheel({ name: 'Proj.Demo', version: '1.0', requiresPython: '>=3.9' });
    const two = await buildWheel({ name: 'proj-demo', version: '2.0' });
    const { entry: e1 } = await store.add(Readable.from([one]), { filename: 'Proj.Demo-1.0-py3-none-any.whl', builtBy: { by: 'test' } });
    const { entry: e2 } = await store.add(Readable.from([two]), { filename: 'proj_demo-2.0-py3-none-any.whl' });
    await store.add(Readable.from([await buildWheel({ name: 'other', version: '1.0' })]), { filename: 'other-1.0-py3-none-any.whl' });
    const client = new RegistryClient();
    const tags = (await client.listTags(store.ref)).sort();
    const wheelTags = tags.filter((t) => t.startsWith('proj_demo-'));
    expect(tags.filter((t) => t.startsWith('project.'))).toEqual(['project.other', 'project.proj-demo']);
    expect(wheelTags).toHaveLength(2);
    const m = await projectManifestOf(store, 'proj-demo');
    expect(m.artifactType).toBe(PROJECT_ARTIFACT_TYPE);
    expect(m.annotations).toEqual({
      'org.opencontainers.image.title': 'proj-demo',
      'dev.dstack-factory.project.name': 'proj-demo',
      'dev.dstack-factory.project.tags': JSON.stringify(wheelTags),
    });
    expect(m.layers.map((l) => l.digest)).toEqual([`sha256:${e1.sha256}`, `sha256:${e1.metadataSha256}`, `sha256:${e2.sha256}`, `sha256:${e2.metadataSha256}`]);
    expect(m.layers[0]!.annotations).toEqual({
      'org.opencontainers.image.title': e1.filename,
      'org.opencontainers.image.created': e1.addedAt,
      'dev.dstack-factory.wheel.filename': e1.filename,
      'dev.dstack-factory.wheel.sha256': e1.sha256,
      'dev.dstack-factory.wheel.metadata.sha256': e1.metadataSha256,
      'dev.dstack-factory.wheel.requires-python': '>=3.9',
      'dev.dstack-factory.wheel.built-by': '{"by":"test"}',
      'dev.dstack-factory.wheel.needs': '[]',
      'dev.dstack-factory.wheel.tag': wheelTags[0],
      'dev.dstack-factory.wheel.manifest': await client.resolveManifest(store.ref, wheelTags[0]!),
    });
    // Another machine: one GET per project, the same entries as the wheels' own manifests give.
    const counting = new CountingClient();
    const reader = new RegistryWheelStore(location('project'), { client: counting });
    expect(await reader.list()).toEqual(await store.list());
    expect(await reader.list('proj-demo')).toEqual([e1, e2]);
    expect(counting.gets.sort()).toEqual(['project.other', 'project.proj-demo']);

    expect(await store.remove(e2.filename)).toBe(true);
    expect(filenamesIn(await projectManifestOf(store, 'proj-demo'))).toEqual([e1.filename]);
    expect(await store.remove(e1.filename)).toBe(true);
    expect((await client.listTags(store.ref)).filter((t) => t.startsWith('project.'))).toEqual(['project.other']);
  });

  it('falls back to the wheels\' own manifests where a project manifest is missing or disagrees, and the next writer rebuilds it', async () => {
    const where = location('fallback');
    const store = new RegistryWheelStore(where);
    const client = new RegistryClient();
    const entries = [];
    for (const v of ['1.0', '1.1', '1.2']) entries.push((await store.add(Readable.from([await buildWheel({ name: 'handdel', version: v })]), { filename: `handdel-${v}-py3-none-any.whl` })).entry);
    const wheelTags = (await client.listTags(store.ref)).filter((t) => t.startsWith('handdel-')).sort();

    // Deleted by hand: read per wheel, said at debug.
    await client.deleteManifest(store.ref, (await client.resolveManifest(store.ref, 'project.handdel'))!);
    const lines: { msg: string; [k: string]: unknown }[] = [];
    const counting = new CountingClient();
    expect(await new RegistryWheelStore(where, { client: counting, logger: captureLogger(lines) }).list()).toEqual(entries);
    expect(counting.gets.sort()).toEqual(wheelTags);
    expect(lines.filter((l) => l.project === 'handdel').map((l) => l.msg)).toEqual(["no project manifest: reading the wheels' own manifests"]);

    // The next writer of the project rebuilds it from the tags (all four, not only its own).
    const stale = await new RegistryWheelStore(where).list(); // (a fresh store: nothing cached)
    expect(stale).toHaveLength(3);
    entries.push((await new RegistryWheelStore(where).add(Readable.from([await buildWheel({ name: 'handdel', version: '2.0' })]), { filename: 'handdel-2.0-py3-none-any.whl' })).entry);
    const rebuilt = await projectManifestOf(store, 'handdel');
    expect(filenamesIn(rebuilt)).toEqual(entries.map((e) => e.filename).sort());

    // Put back an older manifest by hand (it lacks 2.0): its three wheels come from it, 2.0 from its own manifest.
    const allTags = (await client.listTags(store.ref)).filter((t) => t.startsWith('handdel-')).sort();
    const newTag = allTags.find((t) => !wheelTags.includes(t))!;
    const three = entries.slice(0, 3);
    const older = Buffer.from(JSON.stringify({ ...rebuilt, layers: rebuilt.layers.filter((_, i) => i < 6), annotations: { ...rebuilt.annotations, 'dev.dstack-factory.project.tags': JSON.stringify(wheelTags) } }));
    expect(three.map((e) => `sha256:${e.sha256}`)).toEqual([rebuilt.layers[0]!.digest, rebuilt.layers[2]!.digest, rebuilt.layers[4]!.digest]);
    await client.putManifest(store.ref, 'project.handdel', { mediaType: 'application/vnd.oci.image.manifest.v1+json', bytes: older });
    const lines2: { msg: string; [k: string]: unknown }[] = [];
    const counting2 = new CountingClient();
    expect(await new RegistryWheelStore(where, { client: counting2, logger: captureLogger(lines2) }).list()).toEqual(entries);
    expect(counting2.gets).toEqual(['project.handdel', newTag]);
    expect(lines2.filter((l) => l.project === 'handdel').map((l) => [l.msg, l.lacking, l.extra])).toEqual([
      ['project manifest disagrees with the tags: the wheels it lacks are read from their own manifests', 1, 0],
    ]);
  });

  it('refuses with WHEEL_PROJECT_UNSETTLED when the tags keep changing through every rebuild; the wheel is stored', async () => {
    const ghost = 'ghost-9.9-py3-none-any--0000000000000000-0000000000000000';
    // Lists a wheel tag of the project that has no manifest: every rebuild's second listing differs from what it read.
    class GhostClient extends RegistryClient {
      override async listTags(ref: ImageReference, options?: { pageSize?: number }): Promise<string[]> {
        return [...(await super.listTags(ref, options)), ghost];
      }
    }
    const where = location('unsettled');
    const store = new RegistryWheelStore(where, { client: new GhostClient() });
    const err = await store.add(Readable.from([await buildWheel({ name: 'ghost', version: '1.0' })]), { filename: 'ghost-1.0-py3-none-any.whl' }).catch((e: unknown) => e);
    expect((err as WheelError).code).toBe('WHEEL_PROJECT_UNSETTLED');
    expect((err as WheelError).message).toBe(
      `the manifest of project ghost in ${store.location} (tag project.ghost) still disagreed with its wheel tags after 8 rebuilds: 1 listed that it lacks, 0 it holds no longer listed`,
    );
    expect((await new RegistryWheelStore(where).list()).map((e) => e.filename)).toEqual(['ghost-1.0-py3-none-any.whl']);
  });

  it('moves wheels folder -> registry -> folder with identical sha256s, only what is missing, mounting across repositories', async () => {
    const from = await folderOf('push-src', specs('moved', 6));
    const to = new RegistryWheelStore(location('moved'));
    const pushed = await copyWheels(from, to, { concurrency: 4 });
    expect(pushed.copied).toHaveLength(6);
    expect((await copyWheels(from, to)).present).toHaveLength(6);
    const back = new FsWheelStore(join(tmp, 'pull-dest'));
    const pulled = await copyWheels(new RegistryWheelStore(location('moved')), back, { concurrency: 4 });
    expect(pulled.copied).toEqual(pushed.copied);
    for (const e of await from.list()) {
      expect(sha(await readFile(back.pathOf(e.filename)))).toBe(e.sha256);
      expect((await back.get(e.filename))?.builtBy).toEqual({ by: 'push-src' });
    }
    // A second repository of the same registry mounts the blobs instead of uploading them.
    const hows: string[] = [];
    const mirror = new RegistryWheelStore(location('mirror'), { mountFrom: to.ref.repository, onBlob: (e) => hows.push(`${e.how} ${e.digest === EMPTY_DIGEST ? 'config' : 'blob'}`) });
    expect((await copyWheels(to, mirror)).copied).toHaveLength(6);
    expect(hows.sort()).toEqual(['mounted config', ...Array(12).fill('mounted blob')].sort()); // each wheel and its METADATA
  });

  it('through a flaky registry (500s, dropped connections) pushes and pulls the same bytes; a failed pull resumes', async () => {
    const target = new URL(registry.url);
    const proxy = await startFaultProxy(
      { host: target.hostname, port: Number(target.port) },
      {
        faults: [
          { method: 'PUT', path: /\/blobs\/uploads\//, kind: 'status', status: 500, times: 2 },
          { method: 'PUT', path: /\/manifests\//, kind: 'status', status: 503, times: 2 },
          { method: 'GET', path: /\/tags\/list$/, kind: 'status', status: 502 },
          { method: 'GET', path: /\/blobs\/sha256:/, kind: 'drop', times: 3 },
        ],
      },
    );
    try {
      const client = new RegistryClient({ backoffMs: 10 });
      const from = await folderOf('flaky-src', specs('flaky', 5));
      const via = `registry:${proxy.host}/dstack-test/wheels-flaky-${runId}`;
      expect((await copyWheels(from, new RegistryWheelStore(via, { client }))).copied).toHaveLength(5);
      const back = new FsWheelStore(join(tmp, 'flaky-dest'));
      const first = await copyWheels(new RegistryWheelStore(via, { client }), back);
      expect(first.failed).toEqual([]);
      for (const e of await from.list()) expect(sha(await readFile(back.pathOf(e.filename)))).toBe(e.sha256);
      expect(proxy.injected.length).toBe(8);

      // A pull cut short: one wheel's blob answers 404 (not temporary): the others land, a second run copies only it.
      const resumed = new FsWheelStore(join(tmp, 'flaky-resume'));
      const src = new RegistryWheelStore(via, { client });
      const victim = (await src.list())[2]!;
      await proxy.close();
      const proxy2 = await startFaultProxy({ host: target.hostname, port: Number(target.port) }, { faults: [{ method: 'GET', path: new RegExp(`/blobs/sha256:${victim.sha256}$`), kind: 'status', status: 404 }] });
      const src2 = new RegistryWheelStore(`registry:${proxy2.host}/dstack-test/wheels-flaky-${runId}`, { client });
      try {
        const cut = await copyWheels(src2, resumed);
        expect(cut.copied).toHaveLength(4);
        expect(cut.failed.map((f) => [f.filename, (f.error as WheelError).code])).toEqual([[victim.filename, 'REGISTRY_NOT_FOUND']]);
        const again = await copyWheels(src2, resumed);
        expect([again.copied, again.present.length]).toEqual([[victim.filename], 4]);
      } finally {
        await proxy2.close();
      }
      expect((await readdir(resumed.dir)).filter((f) => f.endsWith('.whl'))).toHaveLength(5);
    } finally {
      await proxy.close().catch(() => {});
    }
  });

  it('names a bad location', () => {
    expect(() => new RegistryWheelStore(`registry:${registry.host}/wheels:latest`)).toThrow(
      `registry:${registry.host}/wheels:latest is not a registry store: write registry:HOST/REPOSITORY, without a tag or digest`,
    );
  });
});
