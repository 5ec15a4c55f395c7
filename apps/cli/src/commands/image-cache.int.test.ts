// The layer cache in the registry (issue 22), as two CI runners use it: two "machines" are two processes of the
// built CLI with their own HOME and cache folders. A builds and writes the cache (--cache-to); B starts from
// nothing — a checkout of the lock and the source, no wheelhouse at all — reads it (--cache-from) and gets A's
// digest without reading a wheel or starting Python. Then a cached blob is deleted from the registry: B, still
// without wheels, is told which wheels it must now read; with a registry wheelhouse it fetches exactly those; a
// third machine with the wheelhouse folder rebuilds that layer, gets the same digest, and its --cache-to puts the
// blob back.
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { cp, mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringifyLock } from '@dstack/recipe';
import { BlobCache, appendLayers, emptyImage, writeImage, writeLayer } from '@dstack/image';
import { FsWheelStore } from '@dstack/wheelhouse';
import { RegistryWheelStore, copyWheels } from '@dstack/wheelhouse-registry';
import { isolatedPipEnv, sharedRegistry, writeWheel } from '@dstack/testing';

const exec = promisify(execFile);
const bin = fileURLToPath(new URL('../../bin/dstack-factory.cjs', import.meta.url));
const bundle = fileURLToPath(new URL('../../dist/main.cjs', import.meta.url));
const id = randomBytes(4).toString('hex');
let dir: string;
let host: string;
let baseRef: string;
let cacheRef: string;
const repo = (name: string): string => `${host}/dstack-test/regcache-${name}-${id}`;

// Every child_process entry point logged to $SPAWN_LOG (as startup.int.test.ts does).
const PRELOAD = `
import cp from 'node:child_process';
import { appendFileSync } from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import { promisify } from 'node:util';
const logged = (name, real) =>
  function (...args) {
    appendFileSync(process.env.SPAWN_LOG, name + ' ' + String(args[0]) + (Array.isArray(args[1]) ? ' ' + JSON.stringify(args[1]) : '') + '\\n');
    return real.apply(this, args);
  };
for (const name of ['spawn', 'spawnSync', 'exec', 'execSync', 'execFile', 'execFileSync', 'fork']) {
  const real = cp[name];
  cp[name] = logged(name, real);
  if (real[promisify.custom]) cp[name][promisify.custom] = logged(name, real[promisify.custom]);
}
syncBuiltinESMExports();
`;

interface Run {
  code: number;
  stderr: string;
  json: { digest: string; layers: { role: string; digest: string; cached: boolean }[]; cacheTo?: { records: number; blobs: Record<string, number> }; sbom?: { referrer?: { digest: string } } };
  /** The push and cache events the CLI logged (JSON lines on stderr). */
  events: { msg: string; digest?: string; wheel?: string }[];
  spawned: string[];
}

/** One "machine": its own HOME and XDG cache, a whole process of the built CLI. */
async function machine(name: string, args: string[]): Promise<Run> {
  const home = path.join(dir, name);
  await mkdir(home, { recursive: true });
  const log = path.join(home, `spawn-${Date.now()}.log`);
  await writeFile(log, '');
  const env = isolatedPipEnv({ HOME: home, XDG_CACHE_HOME: path.join(home, '.cache'), SPAWN_LOG: log, NO_COLOR: '1' });
  const r = await exec(process.execPath, ['--import', path.join(dir, 'preload.mjs'), bin, '--log-format', 'json', '--verbose', 'image', 'app', '--json', ...args], {
    cwd: dir,
    env,
    maxBuffer: 64 << 20,
  }).then(
    (x) => ({ code: 0, stdout: x.stdout, stderr: x.stderr }),
    (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, stdout: e.stdout, stderr: e.stderr }),
  );
  const events = r.stderr
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Run['events'][number]);
  const spawned = (await readFile(log, 'utf8')).split('\n').filter(Boolean);
  return { code: r.code, stderr: r.stderr, json: r.code === 0 ? (JSON.parse(r.stdout) as Run['json']) : ({} as Run['json']), events, spawned };
}

/** A's wheelhouse pushed to a registry repository (once), as `dstack-factory wheelhouse push` does. */
let wheelsRepo = '';
async function pushWheelhouse(): Promise<void> {
  if (wheelsRepo) return;
  wheelsRepo = repo('wheels');
  const copied = await copyWheels(new FsWheelStore(path.join(dir, 'wheelhouse')), new RegistryWheelStore(`registry:${wheelsRepo}`));
  expect(copied.copied).toHaveLength(5);
}

const sha256 = async (f: string): Promise<string> => createHash('sha256').update(await readFile(f)).digest('hex');
const digests = (r: Run, msg: string): string[] => r.events.filter((e) => e.msg === msg).map((e) => e.digest!).sort();

beforeAll(async () => {
  if (!existsSync(bundle)) throw new Error(`${bundle} is missing: build the CLI first (npm run build)`);
  host = (await sharedRegistry()).host;
  dir = await mkdtemp(path.join(tmpdir(), 'dstack-regcache-'));
  await writeFile(path.join(dir, 'preload.mjs'), PRELOAD);
  // The base (Debian-like: python3.11 3.11.2 per dpkg), made in code and pushed to the registry.
  const cache = new BlobCache(path.join(dir, 'base-cache'));
  const layer = await writeLayer(
    [
      { path: 'usr/bin/python3.11', type: 'file', data: Buffer.from('ELF'), mode: 0o755 },
      { path: 'etc/passwd', type: 'file', data: Buffer.from('root:x:0:0:root:/root:/bin/bash\n') },
      { path: 'etc/group', type: 'file', data: Buffer.from('root:x:0:\n') },
      { path: 'var/lib/dpkg/status', type: 'file', data: Buffer.from('Package: python3.11-minimal\nVersion: 3.11.2-6+deb12u6\n\n') },
    ],
    { cache },
  );
  baseRef = `${repo('base')}:bookworm`;
  await writeImage(appendLayers(emptyImage(), [{ layer }]), { kind: 'registry', ref: baseRef });
  cacheRef = `${repo('cache')}:cache`;
  // A's wheelhouse: five wheels and their lock; B's: the same names, empty files.
  const wheelhouse = path.join(dir, 'wheelhouse');
  await mkdir(wheelhouse);
  const packages = [];
  for (let i = 0; i < 5; i++) {
    const w = await writeWheel(wheelhouse, { name: `pkg${i}`, version: '1.0', files: { [`pkg${i}/__init__.py`]: `VALUE = ${i}\n`, [`pkg${i}/data.txt`]: randomBytes(2000).toString('hex') } });
    packages.push({ name: `pkg${i}`, version: '1.0', wheels: [{ name: path.basename(w), path: `wheelhouse/${path.basename(w)}`, hashes: { sha256: await sha256(w) } }] });
  }
  const lock = {
    lockVersion: '1.0' as const,
    createdBy: 'dstack-factory',
    environments: ['implementation_name == "cpython" and python_full_version == "3.11.2" and sys_platform == "linux" and platform_machine == "x86_64"'],
    packages,
  };
  await writeFile(path.join(dir, 'pylock.toml'), stringifyLock(lock));
  await mkdir(path.join(dir, 'src'));
  await writeFile(path.join(dir, 'src', 'app.py'), 'print("v1")\n');
  // B's checkout: the lock and the source, no wheelhouse (the lock's paths, wheelhouse/NAME, lead nowhere).
  await mkdir(path.join(dir, 'checkout'));
  await cp(path.join(dir, 'pylock.toml'), path.join(dir, 'checkout', 'pylock.toml'));
  await cp(path.join(dir, 'src'), path.join(dir, 'checkout', 'src'), { recursive: true });
});
afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

const common = (): string[] => ['--base', `registry:${baseRef}`, '--lock', 'pylock.toml', '--source', 'src'];
/** B's: its checkout, with --wheelhouse checkout/wheelhouse (the default of a job run in the checkout), which does not exist. */
const fromNothing = (): string[] => ['--base', `registry:${baseRef}`, '--lock', 'checkout/pylock.toml', '--source', 'checkout/src', '--wheelhouse', 'checkout/wheelhouse'];

describe('image app --cache-from / --cache-to registry:REF (two machines)', () => {
  let a: Run;

  it('A builds and writes the cache; B, from nothing (no wheelhouse), mounts its layers, reads no wheel, starts no Python, gets its digest', async () => {
    a = await machine('a', [...common(), '--wheelhouse', 'wheelhouse', '--output', `registry:${repo('app')}:a`, '--cache-to', `registry:${cacheRef}`]);
    expect(a.stderr).not.toContain('"level":50');
    expect(a.code, a.stderr.split("\n").filter((l) => !l.startsWith("{")).join("\n")).toBe(0);
    const deps = a.json.layers.find((l) => l.role === 'dependencies')!;
    const runtime = a.json.layers.find((l) => l.role === 'runtime')!;
    const app = a.json.layers.find((l) => l.role === 'app')!;
    expect(deps.cached).toBe(false);
    // The records: the dependency layer, five segments, five wheels' ELF lists, the check's report, the base's facts
    // and library index, the runtime layer.
    expect(a.json.cacheTo).toEqual({ ref: cacheRef, digest: expect.stringMatching(/^sha256:/), records: 15, dropped: 0, blobs: { present: 0, mounted: 2, uploaded: 0 } });

    expect(existsSync(path.join(dir, 'checkout', 'wheelhouse'))).toBe(false);
    const b = await machine('b', [...fromNothing(), '--output', `registry:${repo('app-b')}:b`, '--cache-from', `registry:${cacheRef}`]);
    expect(b.stderr).not.toContain('"level":50');
    expect(b.code, b.stderr.split("\n").filter((l) => !l.startsWith("{")).join("\n")).toBe(0);
    expect(b.json.digest).toBe(a.json.digest);
    expect(b.json.layers.find((l) => l.role === 'dependencies')).toMatchObject({ digest: deps.digest, cached: true });
    // Mounted: the base's layer (from its repository), the dependencies and runtime layers (from the cache);
    // uploaded: the app layer (not in the cache) and the config. No layer downloaded, no wheel read.
    expect(digests(b, 'blob-mounted')).toEqual([...new Set([deps.digest, runtime.digest, a.json.layers.length ? (await baseLayer()) : ''])].sort());
    expect(digests(b, 'blob-uploaded')).toEqual([app.digest]);
    expect(b.spawned.filter((s) => /python|pip/.test(s))).toEqual([]);
    // The SBOM too, from the lock's sha256s: attached as the image's referrer.
    expect(b.json.sbom?.referrer?.digest).toMatch(/^sha256:/);
  });

  it('with oci: output B downloads the layers it writes and gets the same image; a registry wheelhouse is not read', async () => {
    await pushWheelhouse();
    const b = await machine('b-oci', [...fromNothing(), '--wheelhouse', `registry:${wheelsRepo}`, '--output', `oci:${path.join(dir, 'out-oci')}:app`, '--cache-from', `registry:${cacheRef}`]);
    expect(b.stderr).not.toContain('"level":50');
    expect(b.code, b.stderr.split("\n").filter((l) => !l.startsWith("{")).join("\n")).toBe(0);
    expect(b.json.digest).toBe(a.json.digest);
    const blobs = await readdir(path.join(dir, 'out-oci', 'blobs', 'sha256'));
    for (const l of a.json.layers) expect(blobs).toContain(l.digest.slice(7));
    expect(b.events.filter((e) => e.msg === 'wheel fetched')).toEqual([]);
  });

  it('a cached blob deleted from the registry: B without wheels is told which it must read; C rebuilds that layer, gets the same digest, and --cache-to puts it back', async () => {
    const deps = a.json.layers.find((l) => l.role === 'dependencies')!.digest;
    const [cacheRepo] = cacheRef.slice(host.length + 1).split(':');
    const del = await fetch(`http://${host}/v2/${cacheRepo}/blobs/${deps}`, { method: 'DELETE' });
    expect(del.status).toBe(202);
    // The five segments were in that blob: every wheel must be read now, and B has none. The check's report is
    // still cached, so the first read is the dependencies layer's.
    const b = await machine('b-deleted', [...fromNothing(), '--output', `registry:${repo('app-b')}:b2`, '--cache-from', `registry:${cacheRef}`]);
    expect(b.code).toBe(1);
    const names = (await readdir(path.join(dir, 'wheelhouse'))).filter((f) => f.endsWith('.whl')).sort();
    expect(names).toHaveLength(5);
    expect(b.stderr).toContain(
      `error[LOCK_WHEEL_MISSING]: 5 wheels locked in ${path.join(dir, 'checkout', 'pylock.toml')} are not in the wheelhouse ${path.join(dir, 'checkout', 'wheelhouse')}, and the layer cache has not got what they install: ${names.join(', ')}\n` +
        'hint: fill the wheelhouse (dstack-factory wheelhouse pull registry:HOST/REPO, or dstack-factory build for this recipe), or point --wheelhouse at the right folder or at a registry wheelhouse (registry:HOST/REPO)\n',
    );
    expect(digests(b, 'blob-uploaded')).toEqual([]);
    // With the wheels in a registry wheelhouse: those five are fetched (sha256 checked), the layer rebuilt, A's digest.
    const r = await machine('b-registry', [...fromNothing(), '--wheelhouse', `registry:${wheelsRepo}`, '--output', `registry:${repo('app-b')}:b3`, '--cache-from', `registry:${cacheRef}`]);
    expect(r.code, r.stderr.split("\n").filter((l) => !l.startsWith("{")).join("\n")).toBe(0);
    expect(r.json.digest).toBe(a.json.digest);
    expect(r.json.layers.find((l) => l.role === 'dependencies')).toMatchObject({ digest: deps, cached: false });
    expect(r.events.filter((e) => e.msg === 'wheel fetched').map((e) => e.wheel).sort()).toEqual(names);
    // A registry wheelhouse whose pkg0 has other bytes under the locked name: refused as it streams, never installed.
    const bad = path.join(dir, 'bad-wheelhouse');
    await mkdir(bad);
    const other = await writeWheel(bad, { name: 'pkg0', version: '1.0', files: { 'pkg0/__init__.py': 'VALUE = "other"\n' } });
    const badRepo = repo('wheels-bad');
    await copyWheels(new FsWheelStore(bad), new RegistryWheelStore(`registry:${badRepo}`));
    const x = await machine('b-bad', [...fromNothing(), '--wheelhouse', `registry:${badRepo}`, '--output', `registry:${repo('app-b')}:b4`, '--cache-from', `registry:${cacheRef}`]);
    expect(x.code).toBe(1);
    const locked = await sha256(path.join(dir, 'wheelhouse', path.basename(other))); // A's, as its lock has it
    expect(x.stderr).toContain(`error[WHEEL_HASH_MISMATCH]: registry:${badRepo}: ${path.basename(other)} has sha256 ${await sha256(other)}, the lock says ${locked}\n`);
    const c = await machine('c', [
      ...common(), '--wheelhouse', 'wheelhouse', '--output', `registry:${repo('app-c')}:c`, '--cache-from', `registry:${cacheRef}`, '--cache-to', `registry:${cacheRef}`,
    ]);
    expect(c.stderr).not.toContain('"level":50');
    expect(c.code, c.stderr.split("\n").filter((l) => !l.startsWith("{")).join("\n")).toBe(0);
    expect(c.json.digest).toBe(a.json.digest);
    expect(c.json.layers.find((l) => l.role === 'dependencies')).toMatchObject({ digest: deps, cached: false });
    // The layer record's blob, then the same blob for its five segments (asked once): both misses, rebuilt.
    expect(c.events.filter((e) => e.msg.startsWith('layer cache: blob')).map((e) => [e.msg, e.digest])).toEqual([
      ['layer cache: blob missing from the registry, the layer is rebuilt', deps],
      ['layer cache: blob not usable, the layer is rebuilt', deps],
    ]);
    expect(c.json.cacheTo?.blobs).toEqual({ present: 1, mounted: 1, uploaded: 0 });
    expect((await fetch(`http://${host}/v2/${cacheRepo}/blobs/${deps}`, { method: 'HEAD' })).status).toBe(200);
  });
});

describe('locks are portable between machines (issue 16: no local path in their cache key)', () => {
  it('a lock made on A, in another folder with another wheelhouse on B, is current: B runs no build script, no pip', async () => {
    const x = path.join(dir, 'x');
    await mkdir(x);
    await cp(path.join(dir, 'wheelhouse'), path.join(x, 'wheelhouse'), { recursive: true });
    await writeFile(path.join(x, 'app.txt'), 'pkg0\npkg1==1.0\n');
    const args = (at: string): string[] => ['--base', `registry:${baseRef}`, '--requirements', `${at}/app.txt`, '--python', '/usr/bin/python3.11', '--wheelhouse', `${at}/wheelhouse`, '--output', `oci:${path.join(dir, `out-${at}`)}:app`];
    const a = await machine('lock-a', args('x'));
    expect(a.code, a.stderr.split("\n").filter((l) => !l.startsWith("{")).join("\n")).toBe(0);
    // A locked: the build script ran (python -u .../factory.py …, which runs pip).
    expect(a.spawned.filter((s) => s.startsWith('spawn /usr/bin/python3.11 ["-u",'))).toHaveLength(1);
    const y = path.join(dir, 'y');
    await mkdir(y);
    await cp(path.join(x, 'app.txt'), path.join(y, 'app.txt'));
    await cp(path.join(x, 'locks'), path.join(y, 'locks'), { recursive: true });
    await cp(path.join(dir, 'wheelhouse'), path.join(y, 'wheelhouse'), { recursive: true });
    const b = await machine('lock-b', args('y'));
    expect(b.code, b.stderr.split("\n").filter((l) => !l.startsWith("{")).join("\n")).toBe(0);
    expect(b.json.digest).toBe(a.json.digest);
    // Python ran only to say its version and target; no build script, no pip, no build lock.
    expect(b.spawned.filter((s) => /\["-u",|"-m","pip"|^spawn flock/.test(s))).toEqual([]);
    expect(b.spawned.filter((s) => s.startsWith('execFile /usr/bin/python3.11 '))).toHaveLength(2);
  });
});

/** The base image's one layer digest (read from the registry). */
async function baseLayer(): Promise<string> {
  const [name, tag] = baseRef.slice(host.length + 1).split(':');
  const res = await fetch(`http://${host}/v2/${name}/manifests/${tag}`, { headers: { accept: 'application/vnd.docker.distribution.manifest.v2+json' } });
  const m = (await res.json()) as { layers: { digest: string }[] };
  return m.layers[0]!.digest;
}
