// Index replicas over one registry (issue 21): wheels pushed with `wheelhouse push`, served by two stateless
// `serve --store registry:…` replicas — one in this process, one as the tool's own image (`image self`) on the
// private engine, published on 127.0.0.1 — pip installing through both, an upload through one seen by the other.
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { promisify } from 'node:util';
import type Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { StartedServer } from '@dstack/server';
import { buildWheel, isolatedPipEnv, sharedBaseImage, sharedEngine, sharedRegistry, startFaultProxy, testLabel, testPython, wheelFilenameOf, type SharedEngine, type SharedRegistry, type WheelSpec } from '@dstack/testing';
import { createContext } from '../context.js';
import { runCli } from '../run-cli.test-support.js';
import { startServe } from './serve.js';

const run = promisify(execFile);
const id = randomBytes(4).toString('hex');
const TOKEN = 'replica-upload-token';
const CACHE_SECONDS = 2;
let tmp: string;
let engine: SharedEngine;
let registry: SharedRegistry;
let selfImage: string;
let forwarder: net.Server;
let local: StartedServer;
let container: Docker.Container;
let remoteUrl: string;
const repository = `dstack-test/replicas-${id}`;

const APP: WheelSpec = { name: 'replica-app', version: '1.0', requires: ['replica-dep'] };
const DEP: WheelSpec = { name: 'replica-dep', version: '2.0' };

/** A TCP forwarder on the engine's bridge gateway to the registry on 127.0.0.1: the container's way to it. */
async function forwardTo(port: number, host: string): Promise<{ server: net.Server; port: number }> {
  const server = net.createServer((sock) => {
    const up = net.connect(port, '127.0.0.1');
    sock.pipe(up).pipe(sock);
    const close = (): void => {
      sock.destroy();
      up.destroy();
    };
    sock.on('error', close);
    up.on('error', close);
  });
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  return { server, port: (server.address() as net.AddressInfo).port };
}

async function waitFor(url: string, deadlineMs: number): Promise<void> {
  const until = Date.now() + deadlineMs;
  for (;;) {
    try {
      const res = await fetch(url);
      await res.arrayBuffer();
      if (res.ok) return;
    } catch {
      // not listening yet
    }
    if (Date.now() > until) throw new Error(`${url} did not answer within ${deadlineMs} ms`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

async function uploadBytes(base: string, filename: string, data: Buffer): Promise<{ status: number; body: { error?: { code: string; message: string } } }> {
  const form = new FormData();
  form.set(':action', 'file_upload');
  form.set('sha256_digest', createHash('sha256').update(data).digest('hex'));
  form.set('content', new Blob([data]), filename);
  const res = await fetch(`${base}/`, { method: 'POST', body: form, headers: { authorization: `Bearer ${TOKEN}` } });
  return { status: res.status, body: (await res.json()) as never };
}

const upload = async (base: string, spec: WheelSpec): Promise<number> => (await uploadBytes(base, wheelFilenameOf(spec), await buildWheel(spec))).status;

const simpleJson = async (base: string, project: string): Promise<{ files: { filename: string; hashes: { sha256: string } }[] } | null> => {
  const res = await fetch(`${base}/simple/${project}/`, { headers: { accept: 'application/vnd.pypi.simple.v1+json' } });
  if (res.status === 404) {
    await res.arrayBuffer();
    return null;
  }
  return (await res.json()) as never;
};

beforeAll(async () => {
  [engine, registry] = await Promise.all([sharedEngine(), sharedRegistry()]);
  tmp = await mkdtemp(path.join(tmpdir(), 'dstack-replicas-'));
  const base = await sharedBaseImage();
  selfImage = `dstack-test/self:${id}`;
  const built = await runCli(['image', 'self', '--base', `docker:${base}`, '--output', `docker:${selfImage}`, '--cache', path.join(tmp, 'cache')], {
    env: { ...engine.env, NO_COLOR: '1' },
  });
  expect(built.stderr).toBe('');
  expect(built.code).toBe(0);

  // The wheels, pushed from a folder with the CLI.
  const folder = path.join(tmp, 'wheelhouse');
  await mkdir(folder);
  for (const spec of [APP, DEP]) await writeFile(path.join(folder, wheelFilenameOf(spec)), await buildWheel(spec));
  const added = await runCli(['wheelhouse', 'add', folder, '--wheelhouse', folder]);
  expect(added.code).toBe(0);
  const pushed = await runCli(['wheelhouse', 'push', `registry:${registry.host}/${repository}`, '--wheelhouse', folder]);
  expect(pushed.stdout).toMatch(/^2 pushed \(.*\), 0 already there, 0 failed: .* -> registry:127\.0\.0\.1:\d+\/dstack-test\/replicas-/m);
  expect(pushed.code).toBe(0);

  // Replica 1: `serve --store registry:…` in this process.
  const config = path.join(tmp, 'local.toml');
  await writeFile(config, `index_cache_seconds = ${CACHE_SECONDS}\n`);
  const io = { stdout: new PassThrough(), stderr: new PassThrough(), env: { ...process.env, DSTACK_SERVER_TOKENS: `ci:read,upload:${TOKEN}` }, cwd: tmp };
  local = await startServe(createContext(io, { quiet: true }), { store: `registry:${registry.host}/${repository}`, port: '0', config });

  // Replica 2: the tool's image on the engine, reaching the registry through the bridge's gateway.
  const bridge = await engine.docker.getNetwork('bridge').inspect();
  const gateway = (bridge as { IPAM: { Config: { Gateway: string }[] } }).IPAM.Config[0]!.Gateway;
  const fwd = await forwardTo(registry.port, gateway);
  forwarder = fwd.server;
  const confDir = path.join(tmp, 'replica-conf');
  await mkdir(confDir);
  await writeFile(
    path.join(confDir, 'serve.toml'),
    `wheelhouse = "registry:${gateway}:${fwd.port}/${repository}"\ninsecure_registries = ["${gateway}:${fwd.port}"]\nindex_cache_seconds = ${CACHE_SECONDS}\n`,
  );
  container = await engine.docker.createContainer({
    Image: selfImage,
    Cmd: ['serve', '--host', '0.0.0.0', '--port', '8080', '--config', '/etc/dstack/serve.toml'],
    Env: [`DSTACK_SERVER_TOKENS=ci:read,upload:${TOKEN}`],
    Labels: { [testLabel]: 'replicas' },
    HostConfig: { PortBindings: { '8080/tcp': [{ HostIp: '127.0.0.1', HostPort: '' }] }, Binds: [`${confDir}:/etc/dstack:ro`] },
  });
  await container.start();
  const info = await container.inspect();
  const port = info.NetworkSettings.Ports['8080/tcp']![0]!.HostPort;
  remoteUrl = `http://127.0.0.1:${port}`;
  await waitFor(`${remoteUrl}/simple/`, 60_000);
}, 600_000);

afterAll(async () => {
  await container?.remove({ force: true }).catch(() => {});
  await local?.close();
  await new Promise((r) => (forwarder ? forwarder.close(r) : r(null)));
  if (selfImage) await engine?.docker.getImage(selfImage).remove({ force: true }).catch(() => {});
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

describe('index replicas over one registry', () => {
  it('give the same answers, and pip installs through each', async () => {
    for (const project of ['replica-app', 'replica-dep']) {
      const [a, b] = await Promise.all([simpleJson(local.url, project), simpleJson(remoteUrl, project)]);
      expect(a).not.toBeNull();
      expect(b).toEqual(a);
    }
    const python = testPython('3.11');
    for (const [name, url] of [['local', local.url], ['image', remoteUrl]] as const) {
      const target = path.join(tmp, `installed-${name}`);
      await run(python, ['-m', 'pip', 'install', '--no-cache-dir', '--target', target, '--index-url', `${url}/simple/`, 'replica-app'], { env: isolatedPipEnv() });
      expect((await readdir(target)).filter((f) => f.endsWith('.dist-info')).sort()).toEqual(['replica_app-1.0.dist-info', 'replica_dep-2.0.dist-info']);
    }
  });

  it('show an upload through one replica through the other within the index cache time', async () => {
    for (const [via, other, spec] of [
      [local.url, remoteUrl, { name: 'replica-late', version: '1.0' }],
      [remoteUrl, local.url, { name: 'replica-later', version: '1.0' }],
    ] as const) {
      expect(await simpleJson(other, spec.name)).toBeNull(); // the other replica has listed before the upload
      expect(await upload(via, spec)).toBe(200);
      const uploaded = Date.now();
      let seen: number | null = null;
      while (Date.now() - uploaded < (CACHE_SECONDS + 5) * 1000) {
        if ((await simpleJson(other, spec.name)) !== null) {
          seen = Date.now() - uploaded;
          break;
        }
        await new Promise((r) => setTimeout(r, 100));
      }
      expect(seen).not.toBeNull();
      // Within the cache time, plus the time of one listing of the registry.
      expect(seen!).toBeLessThan((CACHE_SECONDS + 3) * 1000);
    }
  });

  it('image self pushes to a registry that wants a token, with the credentials docker login stored', async () => {
    const proxy = await startFaultProxy({ host: '127.0.0.1', port: registry.port }, { bearer: { user: 'ci', password: 's3cret' } });
    try {
      const config = path.join(tmp, 'docker-config');
      await mkdir(config, { recursive: true });
      await writeFile(path.join(config, 'config.json'), JSON.stringify({ auths: { [proxy.host]: { auth: Buffer.from('ci:s3cret').toString('base64') } } }));
      const ref = `${proxy.host}/dstack-test/self-${id}:v1`;
      const pushed = await runCli(['image', 'self', '--base', `docker:${await sharedBaseImage()}`, '--output', `registry:${ref}`, '--cache', path.join(tmp, 'cache'), '--json'], {
        env: { ...engine.env, NO_COLOR: '1', DOCKER_CONFIG: config },
      });
      expect(pushed.stderr).toBe('');
      expect(pushed.code).toBe(0);
      expect(proxy.tokenRequests).toBeGreaterThan(0);
      const digest = (JSON.parse(pushed.stdout) as { output: { digest: string } }).output.digest;
      const res = await fetch(`${registry.url}/v2/dstack-test/self-${id}/manifests/v1`, { method: 'HEAD', headers: { accept: 'application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json' } });
      expect(res.headers.get('docker-content-digest')).toBe(digest);
    } finally {
      await proxy.close();
    }
  }, 300_000);

  it('refuse what the folder store refuses (issue 8): not a wheel, other bytes under a name (409 naming both sha256s)', async () => {
    const junk = await uploadBytes(remoteUrl, 'junk-1.0-py3-none-any.whl', Buffer.from('not a zip'));
    expect([junk.status, junk.body.error?.code]).toEqual([400, 'WHEEL_NOT_ZIP']);
    const theirs = await buildWheel({ ...DEP, files: { 'replica_dep/__init__.py': 'OTHER = 1\n' } });
    const ours = await buildWheel(DEP);
    const clash = await uploadBytes(local.url, wheelFilenameOf(DEP), theirs);
    expect(clash.status).toBe(409);
    expect(clash.body.error?.message).toBe(
      // The server names the store <wheelhouse> to clients (a folder's path, or the registry behind it).
      `replica_dep-2.0-py3-none-any.whl is already in <wheelhouse> with different bytes (sha256 ${createHash('sha256').update(ours).digest('hex')}, new ${createHash('sha256').update(theirs).digest('hex')})`,
    );
  });
});
