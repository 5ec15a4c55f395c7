import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { runCli } from '../run-cli.test-support.js';
import { IMAGES_DIR } from '../images.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'dstack-init-'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

const FILES = [
  'recipes/requirements.txt',
  'requirements.txt',
  '.env',
  'docker-compose.yml',
  '.dockerignore',
  'src/.gitkeep',
  'wheelhouse/.gitkeep',
  'Dockerfile',
  'Dockerfile-source',
  'Dockerfile-wheel',
];

describe('dstack-factory init', () => {
  test('creates the project files, with the app Dockerfiles copied from images/app', async () => {
    const r = await runCli(['init', 'proj'], { cwd: dir });
    expect(r.code).toBe(0);
    expect(r.stdout.split('\n').filter((l) => l.startsWith('created'))).toEqual(
      FILES.map((f) => `created ${path.join('proj', f)}`),
    );
    for (const f of ['Dockerfile', 'Dockerfile-source', 'Dockerfile-wheel']) {
      expect(await readFile(path.join(dir, 'proj', f), 'utf8')).toBe(
        await readFile(path.join(IMAGES_DIR, 'app', f), 'utf8'),
      );
    }
    expect(await readFile(path.join(dir, 'proj/.env'), 'utf8')).toContain('RECIPE=requirements\n');
    // `docker build .` works in the folder (e2e/original.int.test.ts builds it): the Dockerfile's COPY of
    // ./requirements.txt and ./wheelhouse finds both; the requirements file names nothing yet.
    const requirements = await readFile(path.join(dir, 'proj/requirements.txt'), 'utf8');
    expect(requirements.split('\n').filter((l) => l && !l.startsWith('#'))).toEqual([]);
    expect(await readFile(path.join(dir, 'proj/Dockerfile'), 'utf8')).toContain('COPY ${REQUIREMENTS} /app/requirements.txt\n');
    expect(r.stdout).toContain(
      `\nNext: put your recipe in ${path.join('proj', 'recipes/requirements.txt')} and the names it builds in ${path.join('proj', 'requirements.txt')}, then\n`,
    );
    expect(r.stdout).toContain(`  docker build -t myapp proj\n`);
  });

  test('keeps existing files unless --force', async () => {
    await writeFile(path.join(dir, 'proj/.env'), 'MINE=1\n');
    const kept = await runCli(['init', 'proj'], { cwd: dir });
    expect(kept.code).toBe(0);
    expect(kept.stdout).toContain(`kept    ${path.join('proj', '.env')} (exists; --force overwrites)`);
    expect(await readFile(path.join(dir, 'proj/.env'), 'utf8')).toBe('MINE=1\n');
    const forced = await runCli(['init', 'proj', '--force'], { cwd: dir });
    expect(forced.stdout).toContain(`created ${path.join('proj', '.env')}`);
    expect(await readFile(path.join(dir, 'proj/.env'), 'utf8')).toContain('CEXT=True');
  });
});
