// What an engine can run: binfmt_misc entries read from a folder made here (the real one is the kernel's).
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { emulatedPlatforms, enginePlatforms, requirePlatform, runsPlatform } from './platforms.js';

let dir: string;
const engine = { version: async () => ({ Os: 'linux', Arch: 'amd64' }) } as unknown as Docker;
beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'dstack-binfmt-'));
  await writeFile(path.join(dir, 'status'), 'enabled\n');
  await writeFile(path.join(dir, 'register'), '');
  await writeFile(path.join(dir, 'qemu-aarch64'), 'enabled\ninterpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P\nflags: PF\n');
  await writeFile(path.join(dir, 'qemu-arm'), 'enabled\ninterpreter /usr/libexec/qemu-binfmt/arm-binfmt-P\n');
  await writeFile(path.join(dir, 'qemu-s390x'), 'disabled\ninterpreter /usr/libexec/qemu-binfmt/s390x-binfmt-P\n');
  await writeFile(path.join(dir, 'python3.11'), 'enabled\ninterpreter /usr/bin/python3.11\n');
});
afterAll(() => rm(dir, { recursive: true, force: true }));

describe('engine platforms', () => {
  it('reads the enabled qemu handlers as OCI platforms; a disabled one and other interpreters are left out', async () => {
    expect(await emulatedPlatforms(dir)).toEqual(['linux/arm64', 'linux/arm/v7']);
    expect(await emulatedPlatforms(path.join(dir, 'absent'))).toEqual([]);
  });

  it('a local engine: its own platform and the emulated ones; a remote one: emulation unknown', async () => {
    const local = await enginePlatforms(engine, { dockerHost: 'unix:///run/docker.sock', binfmtDir: dir });
    expect(local).toEqual({ native: 'linux/amd64', emulated: ['linux/arm64', 'linux/arm/v7'], emulation: 'binfmt_misc' });
    expect(['linux/amd64', 'linux/arm64/v8', 'linux/s390x'].map((p) => runsPlatform(local, p))).toEqual(['native', 'emulated', 'no']);
    const remote = await enginePlatforms(engine, { dockerHost: 'tcp://10.0.0.5:2375', binfmtDir: dir });
    expect(runsPlatform(remote, 'linux/arm64')).toBe('unknown');
  });

  it('refuses a platform the engine cannot run, naming the remedies', async () => {
    const none = await enginePlatforms(engine, { dockerHost: 'unix:///run/docker.sock', binfmtDir: path.join(dir, 'absent') });
    expect(() => requirePlatform(none, 'linux/arm64', 'the factory image for linux/arm64', 'unix:///run/docker.sock')).toThrow(
      'the factory image for linux/arm64 needs a linux/arm64 container, and the Docker engine at unix:///run/docker.sock runs linux/amd64 only (no emulation of linux/arm64 in binfmt_misc)',
    );
    try {
      requirePlatform(none, 'linux/arm64', 'x', 'h');
    } catch (err) {
      expect((err as { code: string; hint: string }).code).toBe('ENGINE_PLATFORM');
      expect((err as { hint: string }).hint).toBe(
        'enable emulation on this machine (qemu-user-static and binfmt_misc: sudo bash tools/system/setup.sh), point DOCKER_HOST at a linux/arm64 engine, or lock elsewhere and pass --lock linux/arm64=FILE',
      );
    }
  });
});
