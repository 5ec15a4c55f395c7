// Which platforms a Docker engine can run: its own, and those its machine emulates (qemu through binfmt_misc).
// Only running foreign code needs this (Decision 24): building wheels and locking; assembling an image never does.
import { promises as fs } from 'node:fs';
import path from 'node:path';
import type Docker from 'dockerode';
import { ociPlatformOfMachine } from '@dstack/wheelhouse';
import { EngineError } from '../errors.js';

export interface EnginePlatforms {
  /** The engine's own platform (`linux/amd64`). */
  native: string;
  /** Platforms run under emulation, from binfmt_misc: known for an engine on this machine (a unix socket) only. */
  emulated: string[];
  /** Where `emulated` comes from: this machine's binfmt_misc, or unknown (a remote engine's machine is not read). */
  emulation: 'binfmt_misc' | 'unknown';
}

/** qemu's names that are not PEP 425 machine names. */
const QEMU_MACHINES: Record<string, string> = { arm: 'armv7l', i386: 'i686' };

/** `linux/arm64`, `linux/arm/v7` for a qemu binfmt_misc entry (qemu-aarch64, aarch64), or null. */
function platformOfBinfmt(name: string): string | null {
  const machine = name.replace(/^qemu-/, '');
  const p = ociPlatformOfMachine(QEMU_MACHINES[machine] ?? machine);
  return p ? `linux/${p.architecture}${p.variant ? `/${p.variant}` : ''}` : null;
}

/** The platforms the kernel's enabled binfmt_misc handlers run (none when binfmt_misc is absent or disabled). */
export async function emulatedPlatforms(binfmtDir = '/proc/sys/fs/binfmt_misc'): Promise<string[]> {
  let names: string[];
  try {
    if ((await fs.readFile(path.join(binfmtDir, 'status'), 'utf8')).trim() !== 'enabled') return [];
    names = await fs.readdir(binfmtDir);
  } catch {
    return [];
  }
  const out = new Set<string>();
  for (const name of names.sort()) {
    if (name === 'status' || name === 'register') continue;
    const text = await fs.readFile(path.join(binfmtDir, name), 'utf8').catch(() => '');
    if (!text.startsWith('enabled')) continue;
    const p = platformOfBinfmt(name);
    if (p) out.add(p);
  }
  return [...out];
}

/** The platforms `docker` can run: its own (`docker version`), and what binfmt_misc emulates when it is local. */
export async function enginePlatforms(docker: Docker, options: { dockerHost?: string; binfmtDir?: string } = {}): Promise<EnginePlatforms> {
  const host = options.dockerHost ?? process.env.DOCKER_HOST ?? 'unix:///var/run/docker.sock';
  let version: Docker.DockerVersion;
  try {
    version = await docker.version();
  } catch (cause) {
    throw new EngineError('DOCKER_UNAVAILABLE', `no Docker engine answers at ${host}: ${(cause as Error).message}`, { cause });
  }
  const native = `${version.Os}/${version.Arch}`;
  if (!host.startsWith('unix://')) return { native, emulated: [], emulation: 'unknown' };
  const emulated = (await emulatedPlatforms(options.binfmtDir)).filter((p) => p !== native);
  return { native, emulated, emulation: 'binfmt_misc' };
}

/** Whether the engine runs `platform` (`linux/arm64`; a variant is ignored): natively, emulated, or unknown. */
export function runsPlatform(engine: EnginePlatforms, platform: string): 'native' | 'emulated' | 'no' | 'unknown' {
  const key = (p: string): string => p.split('/').slice(0, 2).join('/');
  if (key(engine.native) === key(platform)) return 'native';
  if (engine.emulated.some((p) => key(p) === key(platform))) return 'emulated';
  return engine.emulation === 'unknown' ? 'unknown' : 'no';
}

/** Throws ENGINE_PLATFORM, naming the remedies, when the engine (on this machine) cannot run `platform`. */
export function requirePlatform(engine: EnginePlatforms, platform: string, what: string, host: string): void {
  if (runsPlatform(engine, platform) !== 'no') return;
  throw new EngineError(
    'ENGINE_PLATFORM',
    `${what} needs a ${platform} container, and the Docker engine at ${host} runs ${[engine.native, ...engine.emulated].join(', ')} only (no emulation of ${platform} in binfmt_misc)`,
    {
      hint: `enable emulation on this machine (qemu-user-static and binfmt_misc: sudo bash tools/system/setup.sh), point DOCKER_HOST at a ${platform} engine, or lock elsewhere and pass --lock ${platform}=FILE`,
    },
  );
}
