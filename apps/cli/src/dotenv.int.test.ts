// parseDotEnv against docker-compose 1.29 itself: compose's own env_vars_from_file (python-dotenv 0.21 underneath)
// reads the same file.
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { expect, it } from 'vitest';
import { parseDotEnv } from './dotenv.js';
import { COMPOSE_CORPUS, COMPOSE_READS } from './dotenv.test-support.js';

it('reads a .env as docker-compose 1.29 does', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'dstack-env-'));
  try {
    const file = path.join(dir, '.env');
    await writeFile(file, COMPOSE_CORPUS);
    const script =
      'import json, sys\nfrom compose.config.environment import env_vars_from_file\nprint(json.dumps({k: v for k, v in env_vars_from_file(sys.argv[1]).items() if v is not None}))';
    const compose = await promisify(execFile)('/usr/bin/python3', ['-c', script, file], {
      env: { PATH: process.env.PATH, HOME: '/root' },
    }).catch((e: Error) => {
      throw new Error(`docker-compose 1.29 (Debian's docker-compose package) is needed: ${e.message}`);
    });
    const theirs = JSON.parse(compose.stdout) as Record<string, string>;
    expect(theirs).toEqual(COMPOSE_READS);
    expect(parseDotEnv(COMPOSE_CORPUS, { HOME: '/root' })).toEqual(theirs);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
