import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type Docker from 'dockerode';
import { expectValidImage, runInContainer, sharedEngine, sharedRuntimeImage } from '@dstack/testing';
import { buildAppImageOnDaemon, pinFromWheel } from './build-on-daemon.js';
import { installerFixtures, makeWheel } from '../fixtures/wheel.test-support.js';

const DOCKERFILES = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../../images/app');
let tmp: string;
let docker: Docker;
let wheels: string[];
const id = randomBytes(4).toString('hex');
const tags: string[] = [];

beforeAll(async () => {
  ({ docker } = await sharedEngine());
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'dstack-image-engine-app-'));
  const wheelDir = path.join(tmp, 'wheels');
  await fs.mkdir(wheelDir);
  wheels = [];
  for (const w of installerFixtures()) wheels.push(await makeWheel(wheelDir, w));
});

afterAll(async () => {
  for (const t of tags) await docker.getImage(t).remove({ force: true }).catch(() => undefined);
  await fs.rm(tmp, { recursive: true, force: true });
});

describe('app images through the images/app Dockerfiles on a real engine', () => {
  it('pins requirements from wheel file names', () => {
    expect(pinFromWheel('/w/Beta_Pkg-2.0-py3-none-any.whl')).toBe('Beta_Pkg==2.0');
    expect(() => pinFromWheel('/w/notawheel.zip')).toThrow('not a wheel file name: notawheel.zip');
  });

  it('builds requirements + source (Dockerfile, Dockerfile-source): imports, console script, the UID of webapp, /app owner, labels', async () => {
    const src = path.join(tmp, 'src');
    await fs.mkdir(src);
    await fs.writeFile(path.join(src, 'app.py'), 'import alpha\nprint("app ok", alpha.VALUE)\n');
    await fs.writeFile(path.join(src, 'secret.txt'), 'no\n');
    await fs.writeFile(path.join(src, '.dockerignore'), 'secret.txt\n');
    const tag = `dstack-test/engine-app-src:${id}`;
    tags.push(tag, `${tag}-deps`);
    const lines: string[] = [];
    const r = await buildAppImageOnDaemon(docker, {
      dockerfiles: DOCKERFILES,
      base: await sharedRuntimeImage(),
      wheels,
      app: { kind: 'source', dir: src },
      uid: 4321,
      tag,
      labels: { 'org.example.test': id },
      onProgress: (l) => lines.push(l),
    });
    expect(r.tags).toEqual([`${tag}-deps`, tag]);
    expect(lines.some((l) => l.includes('pip install --pre --no-index'))).toBe(true);
    expect((await docker.getImage(tag).inspect()).Config.Labels?.['org.example.test']).toBe(id);
    // images/app/Dockerfile-source ends as USER root (not its owner): webapp's UID is checked, not id -u.
    const run = await runInContainer(tag, ['sh', '-c', 'id -u webapp; stat -c %u /app /app/app.py; test -e /app/secret.txt || echo ignored; python -c "import alpha, beta_pkg; print(alpha.VALUE, beta_pkg.EXTRA)"; alpha-cli; python app.py']);
    expect(run.stderr).toBe('');
    expect(run.stdout.split('\n')).toEqual(['4321', '4321', '4321', 'ignored', '42 extra', 'alpha says 42', 'app ok 42', '']);
    await expectValidImage(tag);
  }, 600_000);

  it('builds requirements + an app wheel (Dockerfile, Dockerfile-wheel): the wheel installed, its file removed', async () => {
    const appDir = path.join(tmp, 'appwheel');
    await fs.mkdir(appDir);
    const appWheel = await makeWheel(appDir, {
      name: 'myapp',
      version: '0.1',
      files: { 'myapp/__init__.py': 'def main():\n    import alpha\n    print("myapp", alpha.VALUE)\n' },
      entryPoints: '[console_scripts]\nmyapp = myapp:main\n',
    });
    const tag = `dstack-test/engine-app-wheel:${id}`;
    tags.push(tag, `${tag}-deps`);
    await buildAppImageOnDaemon(docker, { dockerfiles: DOCKERFILES, base: await sharedRuntimeImage(), wheels, app: { kind: 'wheel', path: appWheel }, tag });
    const run = await runInContainer(tag, ['sh', '-c', 'myapp; ls /tmp/app-wheel /wheelhouse 2>&1 | wc -l']);
    expect(run.stderr).toBe('');
    expect(run.stdout.split('\n')).toEqual(['myapp 42', '2', '']);
    await expectValidImage(tag);
  }, 600_000);

  it('fails with the build output when pip cannot satisfy a requirement', async () => {
    const tag = `dstack-test/engine-app-bad:${id}`;
    tags.push(tag);
    await expect(
      buildAppImageOnDaemon(docker, { dockerfiles: DOCKERFILES, base: await sharedRuntimeImage(), wheels, requirements: ['no-such-dist==1.0'], tag }),
    ).rejects.toThrow(`docker build of ${tag} failed`);
  }, 600_000);
});
