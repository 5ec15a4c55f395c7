import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile, readdir, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { isolatedPipEnv, umociUnpack, writeWheel } from '@dstack/testing';
import { EXIT_USAGE } from '../errors.js';
import { cli, dir, sha256, useImageFixture, validated } from './image.test-support.js';
import { runCli } from '../run-cli.test-support.js';

const exec = promisify(execFile);
useImageFixture();

const appArgs = ['image', 'app', '--base', 'oci:base:bookworm', '--lock', 'pylock.cp311-linux_x86_64.toml', '--source', 'src', '--uid', '1234'];

describe('image app', () => {
  it('builds daemonless into an OCI layout; a second run reuses the dependencies layer; same digest', async () => {
    const first = await cli([...appArgs, '--output', 'oci:out:app', '--json']);
    expect(first.stderr).toBe('');
    expect(first.code).toBe(0);
    const r1 = JSON.parse(first.stdout);
    expect(r1.layers.map((l: { role: string; cached: boolean }) => [l.role, l.cached])).toEqual([['runtime', false], ['dependencies', false], ['app', false]]);
    await validated(`oci:${dir}/out:app`);
    const cfg = JSON.parse((await exec('skopeo', ['inspect', '--config', `oci:${dir}/out:app`])).stdout);
    expect(cfg.config.User).toBe('1234:1234');
    expect(cfg.config.Labels['org.dstack-factory.lock.digest']).toBe(`sha256:${await sha256(path.join(dir, 'pylock.cp311-linux_x86_64.toml'))}`);
    expect(cfg.config.Labels['org.opencontainers.image.base.name']).toBe('oci:base:bookworm');
    const second = await cli([...appArgs, '--output', 'oci:out:app']);
    expect(second.code).toBe(0);
    expect(second.stdout).toMatch(/^dependencies +sha256:[0-9a-f]{64} {2}\d+ B {2}\(cached\)$/m);
    expect(second.stdout).toContain(`image ${r1.digest} -> OCI layout ${dir}/out:app  ${r1.digest}`);
  });

  it('labels the image with the source\'s git commit when the source is a git checkout (and not otherwise)', async () => {
    const src = path.join(dir, 'gitsrc');
    await mkdir(path.join(src, 'pkg'), { recursive: true });
    await writeFile(path.join(src, 'pkg', 'app.py'), 'print("git")\n');
    const git = (...a: string[]) => exec('git', ['-C', src, '-c', 'user.name=t', '-c', 'user.email=t@example.com', ...a]);
    await git('init', '-q');
    await git('add', '.');
    await git('commit', '-qm', 'one');
    const head = (await git('rev-parse', 'HEAD')).stdout.trim();
    const args = appArgs.map((a) => (a === 'src' ? 'gitsrc/pkg' : a)); // a folder below the checkout's root
    expect((await cli([...args, '--output', 'oci:gitrev:app'])).code).toBe(0);
    const labels = JSON.parse((await exec('skopeo', ['inspect', '--config', `oci:${dir}/gitrev:app`])).stdout).config.Labels;
    expect(labels['org.opencontainers.image.revision']).toBe(head);
    expect((await cli([...appArgs, '--output', 'oci:norev:app'])).code).toBe(0);
    const plain = JSON.parse((await exec('skopeo', ['inspect', '--config', `oci:${dir}/norev:app`])).stdout).config.Labels;
    expect(plain['org.opencontainers.image.revision']).toBeUndefined();
  });

  it('writes a docker archive that skopeo reads', async () => {
    const r = await cli([...appArgs, '--output', 'archive:app.tar', '--tag', 'dstack-test/cli:1']);
    expect(r.code).toBe(0);
    await validated(`archive:${dir}/app.tar`);
    const { stdout } = await exec('skopeo', ['inspect', '--config', `docker-archive:${dir}/app.tar`]);
    expect(JSON.parse(stdout).config.WorkingDir).toBe('/app');
  });

  it('--compression none writes plain tar layers (digest = diffID) that skopeo and umoci read', async () => {
    const r = await cli([...appArgs, '--output', 'oci:plain:app', '--compression', 'none']);
    expect(r.code).toBe(0);
    await validated(`oci:${dir}/plain:app`);
    const manifest = JSON.parse((await exec('skopeo', ['inspect', '--raw', `oci:${dir}/plain:app`])).stdout);
    const cfg = JSON.parse((await exec('skopeo', ['inspect', '--config', `oci:${dir}/plain:app`])).stdout);
    const added = manifest.layers.slice(1) as { mediaType: string; digest: string }[];
    expect(added.map((l) => l.mediaType)).toEqual(Array(3).fill('application/vnd.oci.image.layer.v1.tar'));
    expect(cfg.rootfs.diff_ids.slice(1)).toEqual(added.map((l) => l.digest));
    expect(manifest.layers[0].mediaType).toBe('application/vnd.oci.image.layer.v1.tar+gzip'); // the base's, as it was
    const { rootfs } = await umociUnpack(`${dir}/plain:app`, path.join(dir, 'plain-bundle'));
    expect(await readFile(path.join(rootfs, 'app/app.py'), 'utf8')).toBe('print("v1")\n');
  });

  it('--compression-level 1: gzip level 1 layers (another dependencies layer than level 6\'s, larger), valid and reproducible', async () => {
    const six = JSON.parse((await cli([...appArgs, '--output', 'oci:level6:app', '--json'])).stdout);
    const one = await cli([...appArgs, '--output', 'oci:level1:app', '--compression-level', '1', '--json']);
    expect(one.code).toBe(0);
    const r1 = JSON.parse(one.stdout);
    const deps = (r: { layers: { role: string; digest: string; size: number; cached: boolean }[] }) => r.layers.find((l) => l.role === 'dependencies')!;
    expect(deps(r1).cached).toBe(false);
    expect(deps(r1).digest).not.toBe(deps(six).digest);
    expect(deps(r1).size).toBeGreaterThan(deps(six).size);
    await validated(`oci:${dir}/level1:app`);
    const again = JSON.parse((await cli([...appArgs, '--output', 'oci:level1b:app', '--compression-level', '1', '--json'])).stdout);
    expect(again.digest).toBe(r1.digest);
    expect(deps(again).cached).toBe(true);
  });

  it.each([
    [['--lock', 'l', '--output', 'oci:x', '--compression', 'zstd'], 'error: --compression is gzip or none, not "zstd"'],
    [['--lock', 'l', '--output', 'oci:x', '--compression-level', '0'], 'error: --compression-level is a whole number from 1 to 9, not "0"'],
    [['--lock', 'l', '--output', 'oci:x', '--compression', 'none', '--compression-level', '1'], 'error: --compression-level is for gzip layers; --compression none stores them uncompressed'],
    [['--lock', 'l', '--engine', '--output', 'oci:x'], 'error: --engine builds on the engine: --output docker:TAG, not "oci:x"'],
    [['--lock', 'l', '--engine', '--no-compile', '--output', 'docker:x'], 'error: --no-compile is not supported with --engine (the Dockerfiles of images/app run pip install, which compiles)'],
    [['--lock', 'l', '--python', 'p', '--output', 'oci:x'], 'error: --python locks --requirements; a --lock is used as it is'],
    [['--requirements', 'r', '--python', 'p', '--factory-image', 'f', '--output', 'oci:x'], 'error: give at most one of --python PATH or --factory-image REF'],
    [['--output', 'oci:x'], 'error: give exactly one of --requirements FILE or --lock FILE'],
    [['--lock', 'l', '--requirements', 'r', '--output', 'oci:x'], 'error: give exactly one of --requirements FILE or --lock FILE'],
    [['--lock', 'l', '--source', 's', '--wheel', 'w', '--output', 'oci:x'], 'error: give at most one of --source DIR or --wheel FILE'],
  ])('refuses %j', async (args, message) => {
    const r = await cli(['image', 'app', '--base', 'oci:base', ...args]);
    expect(r.code).toBe(EXIT_USAGE);
    expect(r.stderr).toContain(message.replace('error: ', ''));
  });

  it('refuses --python of another version than the base\'s before building anything', async () => {
    const r = await cli(['image', 'app', '--base', 'oci:base:bookworm', '--requirements', 'app-reqs.txt', '--python', '/root/.pyenv/versions/3.11.7/bin/python', '--output', 'oci:never:app']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("error[LOCK_NO_INTERPRETER]: --python /root/.pyenv/versions/3.11.7/bin/python is Python 3.11.7, the base's is 3.11.2: its lock would not fit the image");
    const missing = await cli(['image', 'app', '--base', 'oci:base:bookworm', '--requirements', 'app-reqs.txt', '--python', 'no-such-python', '--output', 'oci:never:app']);
    expect(missing.stderr).toContain(`error[LOCK_NO_INTERPRETER]: --python ${dir}/no-such-python does not run`);
  });

  it('refuses a lock made for another interpreter with a clear message', async () => {
    const text = (await readFile(path.join(dir, 'pylock.cp311-linux_x86_64.toml'), 'utf8')).replace('3.11.2', '3.11.7');
    await writeFile(path.join(dir, 'other.toml'), text);
    const r = await cli(['image', 'app', '--base', 'oci:base:bookworm', '--lock', 'other.toml', '--output', 'oci:x']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`error[LOCK_ENVIRONMENT_MISMATCH]: ${dir}/other.toml was made for`);
    expect(r.stderr).toContain("not for the base's Python 3.11.2 (/usr/bin/python3.11)");
  });

  it('locks --requirements first with a local interpreter of the base\'s full version (Debian 3.11.2 here)', async () => {
    await writeFile(path.join(dir, 'app-reqs.txt'), `--no-index\n--find-links ${path.join(dir, 'wheelhouse')}\ntool\n`);
    const r = await cli(['image', 'app', '--base', 'oci:base:bookworm', '--requirements', 'app-reqs.txt', '--output', 'oci:out-req:app', '--json'], isolatedPipEnv({ NO_COLOR: '1', DSTACK_IMAGE_CACHE: path.join(dir, 'cache') }));
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout).layers.map((l: { role: string }) => l.role)).toEqual(['runtime', 'dependencies']);
    await validated(`oci:${dir}/out-req:app`);
  });

  it('locks from the wheelhouse only: redis on the base\'s 3.11.2 names the missing async-timeout and its marker', async () => {
    const wheelhouse = path.join(dir, 'wh-redis');
    await mkdir(wheelhouse);
    await writeWheel(wheelhouse, { name: 'redis', version: '5.0.1', requires: ['async-timeout>=4.0.3; python_full_version < "3.11.3"'] });
    await writeFile(path.join(dir, 'r2.txt'), 'redis==5.0.1\n');
    const env = isolatedPipEnv({ NO_COLOR: '1', DSTACK_IMAGE_CACHE: path.join(dir, 'cache'), XDG_CACHE_HOME: path.join(dir, 'xdg') });
    const r = await cli(['image', 'app', '--base', 'oci:base:bookworm', '--requirements', 'r2.txt', '--wheelhouse', wheelhouse, '--output', 'oci:out-redis:app'], env);
    expect(r.code).toBe(1);
    const [message, hint] = r.stderr.split('\n');
    expect(message).toBe(
      'error[BUILD_FAILED]: not in the wheelhouse: async-timeout>=4.0.3 (redis needs it when python_full_version < "3.11.3", and the base\'s Python is 3.11.2); build it with `dstack-factory build --executor docker`',
    );
    expect(hint).toMatch(
      new RegExp(`^hint: the lock is made from the wheelhouse only \\(pip --no-index\\); --allow-index lets pip look at your indexes too; full log: ${path.join(dir, 'xdg', 'dstack-factory', 'logs')}/.+/main\\.log$`),
    );
    expect((await cli(['image', 'app', '--base', 'oci:base:bookworm', '--lock', 'x.toml', '--allow-index', '--output', 'oci:o:a'])).stderr).toBe(
      'error[USAGE]: --allow-index is for locking --requirements; a --lock is used as it is\n',
    );
  });
});

describe('image app --dry-run', () => {
  /** Every file under `root` with its size and mtime: what a dry run must leave as it was. */
  async function snapshot(root: string): Promise<string[]> {
    if (!existsSync(root)) return [];
    const out: string[] = [];
    for (const f of await readdir(root, { recursive: true })) {
      const st = await stat(path.join(root, f));
      out.push(`${f} ${st.size} ${st.mtimeMs}`);
    }
    return out.sort();
  }

  it('predicts the digest the real build then has, writing nothing: no output, no cache, no layer', async () => {
    const env = { DSTACK_IMAGE_CACHE: path.join(dir, 'dry-cache') };
    const plan = await cli([...appArgs, '--dry-run', '--json'], env);
    expect(plan.stderr).toBe('');
    expect(plan.code).toBe(0);
    const p = JSON.parse(plan.stdout);
    // --output left out: an OCI layout with gzip.
    expect(p.output).toEqual({ spec: 'oci:app', kind: 'oci', digest: p.digest });
    expect(p.layers.map((l: { role: string; cached: boolean }) => [l.role, l.cached])).toEqual([['runtime', false], ['dependencies', false], ['app', false]]);
    expect(p.lock).toEqual({ file: path.join(dir, 'pylock.cp311-linux_x86_64.toml'), digest: `sha256:${await sha256(path.join(dir, 'pylock.cp311-linux_x86_64.toml'))}` });
    expect(existsSync(path.join(dir, 'dry-cache'))).toBe(false);
    expect(existsSync(path.join(dir, 'app'))).toBe(false);

    const real = await cli([...appArgs, '--output', 'oci:out-dry:app', '--json'], env);
    expect(real.code).toBe(0);
    const r = JSON.parse(real.stdout);
    expect(r.digest).toBe(p.digest);
    expect(r.output.digest).toBe(p.digest);
    // The same layers (the real run may install the wheels before the base is read, so it reports no segments).
    const plain = (ls: { role: string; digest: string; size: number; cached: boolean }[]) => ls.map(({ role, digest, size, cached }) => ({ role, digest, size, cached }));
    expect(plain(r.layers)).toEqual(plain(p.layers));
    await validated(`oci:${dir}/out-dry:app`);
    // The SBOM written beside the layout lists what the lock does: lock diff of the two names no change.
    const diff = await runCli(['--quiet', 'lock', 'diff', 'pylock.cp311-linux_x86_64.toml', 'out-dry.cdx.json'], { cwd: dir, env: { NO_COLOR: '1' } });
    expect(diff.stdout).toBe('0 changed, 0 added, 0 removed, 1 unchanged\n');

    // Warm: the dependencies layer is a cache hit, the digest the same, and the cache is left as it was.
    const before = await snapshot(path.join(dir, 'dry-cache'));
    const again = await cli([...appArgs, '--dry-run'], env);
    expect(again.code).toBe(0);
    expect(again.stdout.split('\n')).toEqual([
      expect.stringMatching(/^runtime +sha256:[0-9a-f]{64} {2}\d+ B {2}built$/),
      `dependencies ${r.layers[1].digest}  ${r.layers[1].size} B  reused (cache hit)`,
      expect.stringMatching(/^app +sha256:[0-9a-f]{64} {2}\d+ B {2}built$/),
      `image ${p.digest} -> oci:app would be ${p.digest} (dry run: nothing written)`,
      '',
    ]);
    expect(await snapshot(path.join(dir, 'dry-cache'))).toEqual(before);
  });

  it('predicts the digest of each kind of output: a docker archive (the Docker manifest)', async () => {
    const env = { DSTACK_IMAGE_CACHE: path.join(dir, 'dry-cache-2') };
    const plan = JSON.parse((await cli([...appArgs, '--output', 'archive:dry.tar', '--dry-run', '--json'], env)).stdout);
    expect(existsSync(path.join(dir, 'dry.tar'))).toBe(false);
    const real = JSON.parse((await cli([...appArgs, '--output', 'archive:dry.tar', '--json'], env)).stdout);
    expect(plan.output.digest).toBe(real.output.digest);
    expect(plan.output.digest).not.toBe(plan.digest); // the Docker manifest, not the OCI one
  });

  it('with --requirements and no lock yet: the build\'s plan, no digest, no lock written', async () => {
    await writeFile(path.join(dir, 'dry-reqs.txt'), `--no-index\n--find-links ${path.join(dir, 'wheelhouse')}\ntool\n`);
    const env = isolatedPipEnv({ NO_COLOR: '1', DSTACK_IMAGE_CACHE: path.join(dir, 'dry-cache-3'), XDG_CACHE_HOME: path.join(dir, 'xdg-dry') });
    const r = await cli(['image', 'app', '--base', 'oci:base:bookworm', '--requirements', 'dry-reqs.txt', '--dry-run'], env);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('[cp311-linux_x86_64] lock locks/dry-reqs/pylock.cp3_11_2-manylinux_2_36_x86_64.toml: not written yet: pip resolves\n');
    expect(r.stdout).toContain(`  reuse    tool 1.0  tool-1.0-py3-none-any.whl`);
    expect(r.stdout).toContain('image: its digest is known once these wheels are built and locked');
    expect(existsSync(path.join(dir, 'locks', 'dry-reqs'))).toBe(false);
    expect(existsSync(path.join(dir, 'xdg-dry'))).toBe(false);
  });

  it('refuses --engine and a missing --output without --dry-run', async () => {
    const engine = await cli(['image', 'app', '--base', 'docker:b', '--lock', 'l', '--output', 'docker:x', '--engine', '--dry-run']);
    expect(engine.stderr).toBe("error[USAGE]: --dry-run plans the daemonless assembly; an --engine build is the engine's\n");
    const output = await cli(['image', 'app', '--base', 'oci:base', '--lock', 'l']);
    expect(output.stderr).toBe('error[USAGE]: --output is required (docker:TAG | oci:DIR[:REF] | archive:FILE | registry:REF)\n');
    expect(output.code).toBe(EXIT_USAGE);
  });
});

describe('image prune', () => {
  it('removes what no build used within --older-than, says how much, and refuses a bad age', async () => {
    const cacheDir = path.join(dir, 'prune-cache');
    const env = { DSTACK_IMAGE_CACHE: cacheDir };
    expect((await cli([...appArgs, '--output', 'oci:out-prune:app'], env)).code).toBe(0);
    const kept = await cli(['image', 'prune'], env);
    expect(kept.code).toBe(0);
    expect(kept.stdout).toMatch(new RegExp(`^${cacheDir}: removed 0 blobs \\(0\\.0 MB\\) and 0 records; kept [1-9]\\d* blobs \\(\\d+\\.\\d MB\\)\\n$`));
    await new Promise((r) => setTimeout(r, 1100));
    const all = await cli(['image', 'prune', '--older-than', '1s', '--json'], env);
    expect(all.code).toBe(0);
    const r = JSON.parse(all.stdout);
    expect(r).toMatchObject({ cache: cacheDir, keptBlobs: 0, keptBytes: 0 });
    expect(r.blobs).toBeGreaterThan(0);
    expect(r.records).toBeGreaterThan(0);
    // The OCI layout written from the cache keeps its (hard-linked) blobs.
    const manifest = JSON.parse((await exec('skopeo', ['inspect', '--raw', `oci:${dir}/out-prune:app`])).stdout) as { layers: { digest: string; size: number }[] };
    for (const l of manifest.layers) {
      expect((await stat(path.join(dir, 'out-prune/blobs/sha256', l.digest.slice(7)))).size).toBe(l.size);
    }
    const bad = await cli(['image', 'prune', '--older-than', 'soon'], env);
    expect(bad.code).toBe(EXIT_USAGE);
    expect(bad.stderr).toContain('--older-than takes a number of days or NUMBER[d|h|m|s], not "soon"');
  });
});

