// The CLI's image commands run in-process against a fixture made in code: a Debian-like base (python3.11 3.11.2
// per dpkg) as an OCI layout, a wheelhouse with one wheel, its lock and an app source. Shared by image.test.ts
// (daemonless) and image.int.test.ts (Docker daemon).
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { Command, CommanderError } from 'commander';
import { afterAll, beforeAll } from 'vitest';
import { stringifyLock } from '@dstack/recipe';
import {
  BlobCache,
  appendLayers,
  emptyImage,
  openImage,
  parseImageSpec,
  validateImage,
  writeImage,
  writeLayer,
} from '@dstack/image';
import { writeWheel } from '@dstack/testing';
import { createContext, type Runner } from '../context.js';
import { reportError, EXIT_USAGE } from '../errors.js';
import { registerImageCommands } from './image.js';

/** The fixture's folder (the commands' working directory), set by useImageFixture's beforeAll. */
export let dir: string;

export async function cli(
  args: string[],
  env: NodeJS.ProcessEnv = {},
  cwd: string = dir,
): Promise<{ code: number; stdout: string; stderr: string }> {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  stdout.on('data', (c: Buffer) => out.push(c));
  stderr.on('data', (c: Buffer) => err.push(c));
  const ctx = createContext(
    {
      stdout,
      stderr,
      env: { NO_COLOR: '1', PATH: process.env.PATH, DSTACK_IMAGE_CACHE: path.join(dir, 'cache'), ...env },
      cwd,
    },
    { quiet: true, logFormat: 'json' },
  );
  let code = 0;
  const run = ((action: (c: typeof ctx, ...a: unknown[]) => Promise<number>) =>
    async (...a: unknown[]) => {
      code = await action(ctx, ...a);
    }) as Runner;
  const program = new Command('dstack-factory')
    .exitOverride()
    .configureOutput({ writeOut: (s) => stdout.write(s), writeErr: (s) => stderr.write(s) });
  registerImageCommands(program, run);
  try {
    await program.parseAsync(['node', 'dstack-factory', ...args]);
  } catch (e) {
    code = e instanceof CommanderError ? (e.exitCode === 0 ? 0 : EXIT_USAGE) : reportError(e, stderr);
  }
  return { code, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') };
}

/** Every image the CLI writes here goes through validateImage (digests, sizes, diff_ids, media types, tar paths). */
export const validated = async (spec: string): Promise<void> =>
  validateImage(
    await openImage(parseImageSpec(spec), { cache: new BlobCache(path.join(dir, 'validate-cache')) }),
  );

export const sha256 = async (f: string): Promise<string> =>
  createHash('sha256')
    .update(await readFile(f))
    .digest('hex');

/** Makes the fixture before the file's tests and removes it after them. */
export function useImageFixture(): void {
  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'dstack-image-cli-'));
    // A base made in code (Debian-like: python3.11 3.11.2 per dpkg), as an OCI layout.
    const cache = new BlobCache(path.join(dir, 'base-cache'));
    const layer = await writeLayer(
      [
        { path: 'usr/bin/python3.11', type: 'file', data: Buffer.from('ELF'), mode: 0o755 },
        { path: 'etc/passwd', type: 'file', data: Buffer.from('root:x:0:0:root:/root:/bin/bash\n') },
        { path: 'etc/group', type: 'file', data: Buffer.from('root:x:0:\n') },
        {
          path: 'var/lib/dpkg/status',
          type: 'file',
          data: Buffer.from('Package: python3.11-minimal\nVersion: 3.11.2-6+deb12u6\n\n'),
        },
      ],
      { cache },
    );
    await writeImage(appendLayers(emptyImage(), [{ layer }]), {
      kind: 'oci',
      dir: path.join(dir, 'base'),
      ref: 'bookworm',
    });
    await mkdir(path.join(dir, 'wheelhouse'));
    const tool = await writeWheel(path.join(dir, 'wheelhouse'), {
      name: 'tool',
      version: '1.0',
      files: { 'tool/__init__.py': 'def main():\n    print("tool ran")\n' },
      extraMembers: [
        {
          path: 'tool-1.0.dist-info/entry_points.txt',
          data: '[console_scripts]\ntool = tool:main\n',
          listed: true,
        },
      ],
    });
    const lock = {
      lockVersion: '1.0' as const,
      createdBy: 'dstack-factory',
      environments: [
        'implementation_name == "cpython" and python_full_version == "3.11.2" and sys_platform == "linux" and platform_machine == "x86_64"',
      ],
      packages: [
        {
          name: 'tool',
          version: '1.0',
          wheels: [
            {
              name: path.basename(tool),
              path: `wheelhouse/${path.basename(tool)}`,
              hashes: { sha256: await sha256(tool) },
            },
          ],
        },
      ],
    };
    await writeFile(path.join(dir, 'pylock.cp311-linux_x86_64.toml'), stringifyLock(lock));
    await mkdir(path.join(dir, 'src'));
    await writeFile(path.join(dir, 'src', 'app.py'), 'print("v1")\n');
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });
}
