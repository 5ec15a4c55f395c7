// The wheelhouse commands on a registry store (issue 21): push, pull (only what is missing), list, and prune
// deleting the manifests no lock names once the archive holds their wheels.
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RegistryClient, parseReference } from '@dstack/oci';
import { sharedRegistry, writeWheel, type SharedRegistry } from '@dstack/testing';
import { runCli } from '../run-cli.test-support.js';

let root: string;
let registry: SharedRegistry;
const id = randomBytes(4).toString('hex');
const sha = async (f: string): Promise<string> => createHash('sha256').update(await readFile(f)).digest('hex');

beforeAll(async () => {
  registry = await sharedRegistry();
  root = await mkdtemp(path.join(tmpdir(), 'dstack-wheelhouse-registry-'));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

const cli = (args: string[], env: NodeJS.ProcessEnv = {}) => runCli(['--quiet', ...args], { env: { ...process.env, NO_COLOR: '1', ...env }, cwd: root });

describe('dstack-factory wheelhouse on registry:HOST/REPO', () => {
  it('warns when the registry repository holds no wheels (a misspelt name reads as an empty repository)', async () => {
    const empty = `registry:${registry.host}/dstack-test/cli-no-such-${id}`;
    const pulled = await cli(['wheelhouse', 'pull', empty, '--wheelhouse', 'empty-pull']);
    expect(pulled.code).toBe(0);
    expect(pulled.stdout).toMatch(/^0 pulled \(0\.0 MB, [\d.]+ s\), 0 already there, 0 failed: /);
    expect(pulled.stderr).toBe(`warning: ${empty} holds no wheels (a registry repository that does not exist reads as empty: check its name)\n`);
  });

  it('pushes and pulls only what is missing, with identical sha256s; lists; prunes with manifest deletes', async () => {
    const store = `registry:${registry.host}/dstack-test/cli-wheels-${id}`;
    await mkdir(path.join(root, 'in'));
    for (const name of ['kept', 'gone', 'other']) await writeWheel(path.join(root, 'in'), { name, version: '1.0' });
    expect((await cli(['wheelhouse', 'add', 'in', '--wheelhouse', 'a'])).code).toBe(0);

    const first = await cli(['wheelhouse', 'push', store, '--wheelhouse', 'a', '--jobs', '2']);
    expect(first.stdout.split('\n').filter((l) => l.startsWith('pushed')).sort()).toEqual([
      'pushed gone-1.0-py3-none-any.whl',
      'pushed kept-1.0-py3-none-any.whl',
      'pushed other-1.0-py3-none-any.whl',
    ]);
    expect(first.code).toBe(0);
    const again = await cli(['wheelhouse', 'push', store, '--wheelhouse', 'a']);
    expect(again.stdout).toMatch(/^0 pushed \(0\.0 MB, [\d.]+ s\), 3 already there, 0 failed: /m);

    // Another machine pulls into an empty folder, then only what it lacks.
    const pulled = await cli(['wheelhouse', 'pull', store.slice('registry:'.length), '--wheelhouse', 'b']);
    expect(pulled.code).toBe(0);
    for (const f of ['gone', 'kept', 'other']) {
      const file = `${f}-1.0-py3-none-any.whl`;
      expect(await sha(path.join(root, 'b', file))).toBe(await sha(path.join(root, 'a', file)));
    }
    await rm(path.join(root, 'b', 'other-1.0-py3-none-any.whl'));
    const resumed = await cli(['wheelhouse', 'pull', store, '--wheelhouse', 'b']);
    expect(resumed.stdout).toMatch(/^pulled other-1\.0-py3-none-any\.whl\n1 pulled \([\d.]+ MB, [\d.]+ s\), 2 already there, 0 failed: registry:/);

    // A second repository of the same registry: the blobs are mounted from the first, not uploaded.
    const mirror = `${store}-mirror`;
    const mounted = await runCli(['--verbose', '--log-format', 'json', 'wheelhouse', 'push', mirror, '--wheelhouse', 'a', '--mount-from', `dstack-test/cli-wheels-${id}`], { env: { ...process.env, NO_COLOR: '1' }, cwd: root });
    expect(mounted.code).toBe(0);
    expect(mounted.stdout).toMatch(/^3 pushed/m);
    const blobs = mounted.stderr.split('\n').filter((l) => l.includes('"msg":"blob"')).map((l) => (JSON.parse(l) as { how: string }).how);
    expect(blobs.sort()).toEqual(['mounted', 'mounted', 'mounted', 'mounted', 'mounted', 'mounted', 'mounted']); // 3 wheels, 3 METADATA, the empty config

    const listed = await cli(['wheelhouse', 'list', '--json', '--wheelhouse', store]);
    expect((JSON.parse(listed.stdout) as { filename: string }[]).map((e) => e.filename)).toEqual([
      'gone-1.0-py3-none-any.whl',
      'kept-1.0-py3-none-any.whl',
      'other-1.0-py3-none-any.whl',
    ]);

    await mkdir(path.join(root, 'recipes', 'locks', 'app'), { recursive: true });
    await writeFile(
      path.join(root, 'recipes', 'locks', 'app', 'pylock.cp311-linux_x86_64.toml'),
      'lock-version = "1.0"\ncreated-by = "test"\n\n[[packages]]\nname = "kept"\nversion = "1.0"\n\n[[packages.wheels]]\nname = "kept-1.0-py3-none-any.whl"\npath = "kept-1.0-py3-none-any.whl"\nhashes = { sha256 = "00" }\n',
    );
    const pruned = await cli(['wheelhouse', 'prune', '--wheelhouse', store, '--archive', 'archive']);
    expect(pruned.stdout).toBe(
      `removed gone-1.0-py3-none-any.whl\nremoved other-1.0-py3-none-any.whl\n2 removed (2 archived now, into ${path.join(root, 'archive')}), 1 named by locks kept\n`,
    );
    expect(pruned.code).toBe(0);
    expect((await readdir(path.join(root, 'archive'))).sort()).toEqual(['gone-1.0-py3-none-any.whl', 'other-1.0-py3-none-any.whl']);
    expect(await sha(path.join(root, 'archive', 'gone-1.0-py3-none-any.whl'))).toBe(await sha(path.join(root, 'a', 'gone-1.0-py3-none-any.whl')));
    // The manifests are gone (tags with them), their projects' manifests too; only kept's tags are left.
    const tags = await new RegistryClient().listTags(parseReference(`${store.slice('registry:'.length)}:x`));
    expect(tags.map((t) => t.replace(/--.*$/, '')).sort()).toEqual(['kept-1.0-py3-none-any', 'project.kept']);
    const verified = await cli(['wheelhouse', 'verify', '--wheelhouse', store]);
    expect([verified.code, verified.stdout]).toEqual([0, '1 wheel ok, 0 corrupt\n']);
  });

  it('refuses a bad registry store location', async () => {
    const r = await cli(['wheelhouse', 'list', '--wheelhouse', `registry:${registry.host}/wheels:v1`]);
    expect(r.stderr).toBe(
      `error[IMAGE_REFERENCE_INVALID]: registry:${registry.host}/wheels:v1 is not a registry store: write registry:HOST/REPOSITORY, without a tag or digest\nhint: e.g. registry:ghcr.io/team/wheels or registry:127.0.0.1:5000/wheels\n`,
    );
    expect(r.code).toBe(1);
  });
});

describe('dstack-factory wheelhouse push to a registry that wants a token', () => {
  it('answers the bearer challenge with the credentials docker login stored', async () => {
    const { startFaultProxy } = await import('@dstack/testing');
    const proxy = await startFaultProxy({ host: '127.0.0.1', port: registry.port }, { bearer: { user: 'ci', password: 's3cret' } });
    try {
      await mkdir(path.join(root, 'auth-in'));
      await writeWheel(path.join(root, 'auth-in'), { name: 'authed', version: '1.0' });
      expect((await cli(['wheelhouse', 'add', 'auth-in', '--wheelhouse', 'auth-wh'])).code).toBe(0);
      const store = `registry:${proxy.host}/dstack-test/cli-auth-${id}`;
      const denied = await cli(['wheelhouse', 'push', store, '--wheelhouse', 'auth-wh'], { DOCKER_CONFIG: path.join(root, 'no-docker-config') });
      expect(denied.stderr).toBe(`error[REGISTRY_UNAUTHORIZED]: token service http://${proxy.host}/token answered 401 for dstack-test/cli-auth-${id}\n`);
      expect(denied.code).toBe(1);
      const config = path.join(root, 'docker-config');
      await mkdir(config);
      await writeFile(path.join(config, 'config.json'), JSON.stringify({ auths: { [proxy.host]: { auth: Buffer.from('ci:s3cret').toString('base64') } } }));
      const pushed = await cli(['wheelhouse', 'push', store, '--wheelhouse', 'auth-wh'], { DOCKER_CONFIG: config });
      expect(pushed.stdout).toMatch(/^pushed authed-1\.0-py3-none-any\.whl\n1 pushed/);
      expect(pushed.code).toBe(0);
      expect(proxy.tokenRequests).toBeGreaterThan(0);
    } finally {
      await proxy.close();
    }
  });
});
