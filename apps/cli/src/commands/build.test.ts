import { describe, expect, it } from 'vitest';
import { parseDotEnv } from '../dotenv.js';
import { buildEnvironment } from './build.js';
import { COMPOSE_CORPUS, COMPOSE_READS } from '../dotenv.test-support.js';

describe('parseDotEnv', () => {
  it.each([
    ['CEXT=False', { CEXT: 'False' }],
    ['export RECIPE=django-1.10.5', { RECIPE: 'django-1.10.5' }],
    ['# comment\n\nBUILD_REQ = True  # inline', { BUILD_REQ: 'True' }],
    [`A="quoted # not a comment"\nB='single'`, { A: 'quoted # not a comment', B: 'single' }],
    ['not a line\n=x\nOK=1\r\n', { OK: '1' }],
  ])('%j', (text, expected) => {
    expect(parseDotEnv(text)).toEqual(expected);
  });

  it("reads what docker-compose 1.29 reads (python-dotenv 0.21's rules; dotenv.int.test.ts asks compose itself)", () => {
    expect(parseDotEnv(COMPOSE_CORPUS, { HOME: '/root' })).toEqual(COMPOSE_READS);
  });
});

describe('buildEnvironment', () => {
  it('the shell environment overrides .env, as docker-compose does', () => {
    expect(() => buildEnvironment({ env: {}, cwd: '/nonexistent' }, 'nope.env')).toThrow(
      'no such env file: /nonexistent/nope.env',
    );
    expect(buildEnvironment({ env: { RECIPE: 'x' }, cwd: '/nonexistent' })).toEqual({ RECIPE: 'x' });
  });
});
