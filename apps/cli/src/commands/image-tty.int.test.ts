// image app on a terminal (a pseudo-tty, the built CLI): one live line while the layers are written, and only the
// result lasts on the screen; in a pipe, no control characters.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { dir, useImageFixture, validated } from './image.test-support.js';

const exec = promisify(execFile);
const bin = fileURLToPath(new URL('../../bin/dstack-factory.cjs', import.meta.url));
const bundle = fileURLToPath(new URL('../../dist/main.cjs', import.meta.url));
useImageFixture();

const args = (out: string): string[] => ['image', 'app', '--base', 'oci:base:bookworm', '--lock', 'pylock.cp311-linux_x86_64.toml', '--source', 'src', '--no-pip', '--no-sbom', '--output', `oci:${out}:app`];

describe('image app progress', () => {
  it('on a terminal: a live line (installing done/total, elapsed, the wheel), then only the result', async () => {
    if (!existsSync(bundle)) throw new Error(`${bundle} is missing: build the CLI first (npm run build)`);
    const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, NO_COLOR: '1', COLUMNS: '200', DSTACK_IMAGE_CACHE: path.join(dir, 'cache-tty') };
    const command = [process.execPath, bin, ...args('tty')].map((a) => `'${a}'`).join(' ');
    // util-linux script(1) runs the command on a new pseudo-terminal and copies what it writes.
    const { stdout } = await exec('script', ['-qec', command, '/dev/null'], { cwd: dir, env });
    expect(stdout).toMatch(/\r\x1b\[2Kinstalling 1\/1 \d+\.\ds tool-1\.0-py3-none-any\.whl/);
    const lasting = stdout
      .split(/\r?\n/)
      .map((l) => l.split('\r\x1b[2K').at(-1)!)
      .filter(Boolean);
    expect(lasting.map((l) => l.split(/ +/)[0])).toEqual(['runtime', 'dependencies', 'app', 'image']);
    expect(lasting[1]).not.toContain('(cached)');
    await validated(`oci:${dir}/tty:app`);
  });

  it('in a pipe: plain lines, no control characters', async () => {
    const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, NO_COLOR: '1', DSTACK_IMAGE_CACHE: path.join(dir, 'cache-pipe') };
    const r = await exec(process.execPath, [bin, ...args('pipe')], { cwd: dir, env });
    expect(r.stderr).not.toMatch(/[\r\x1b]/);
    expect(r.stdout).not.toMatch(/[\r\x1b]/);
    await validated(`oci:${dir}/pipe:app`);
  });
});
