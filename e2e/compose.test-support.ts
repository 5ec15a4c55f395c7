// Shared fixtures of the end-to-end tests: the example app's two dependencies (a C extension linking zlib,
// a package in a local git repository), the app's wheel, containers serving it on 127.0.0.1 (Decision 15),
// and HTTP checks of what it answers.
import { execFile } from 'node:child_process';
import { cp, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { createServer } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import type Docker from 'dockerode';
import {
  buildSourceWheel,
  makeGitRepo,
  testLabel,
  writeCExtPackage,
  writePurePackage,
} from '@dstack/testing';

const exec = promisify(execFile);

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
/** e2e/webapp: the example app (src/, requirements.txt, docker-compose.yml). */
export const webappDir = path.join(repoRoot, 'e2e/webapp');
/** zlib's crc32 of b"dstack": what zcrc.crc() returns when its C extension really links zlib. */
export const EXPECTED_CRC = 2771214488;
/** The label value of every container and image these tests make (with @dstack/testing's testLabel). */
export const E2E_LABEL = { [testLabel]: 'e2e' };

export interface AppDeps {
  /** The C-extension source tree (setup.py + pyproject.toml, links zlib). */
  zcrcDir: string;
  /** The git repository of `greeting` (tag v2.0). */
  greetingDir: string;
  /** `git+file://…@v2.0#egg=greeting` */
  greetingUrl: string;
}

/** Writes the app's dependencies under `dir`: zcrc 1.0 (C, zlib) and greeting 2.0 in a git repo. */
export async function writeAppDeps(dir: string): Promise<AppDeps> {
  await mkdir(dir, { recursive: true });
  const zcrcDir = await writeCExtPackage(dir, { name: 'zcrc', version: '1.0', library: 'z' });
  const greetingDir = await writePurePackage(dir, { name: 'greeting', version: '2.0' });
  const greetingUrl = await makeGitRepo(greetingDir, 'v2.0', 'greeting');
  return { zcrcDir, greetingDir, greetingUrl };
}

/** A copy of the example app (src/, requirements.txt, docker-compose.yml) in `dir`. */
export async function copyWebapp(dir: string): Promise<string> {
  await cp(webappDir, dir, {
    recursive: true,
    filter: (src) => !src.includes('__pycache__') && !src.endsWith('/wheelhouse'),
  });
  return dir;
}

/**
 * The app's own wheel (webapp-1.0-py3-none-any.whl), built offline with `bootstrap` wheels from a copy of
 * src/ (setuptools leaves build/ and *.egg-info in the tree it builds).
 */
export async function buildWebappWheel(
  python: string,
  appDir: string,
  outDir: string,
  bootstrap: string,
): Promise<string> {
  const copy = await mkdtemp(path.join(tmpdir(), 'dstack-e2e-webapp-src-'));
  try {
    await cp(path.join(appDir, 'src'), copy, { recursive: true });
    return await buildSourceWheel(python, copy, outDir, bootstrap);
  } finally {
    await rm(copy, { recursive: true, force: true });
  }
}

/** A TCP port free on 127.0.0.1 right now. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

export interface AppAnswer {
  app: string;
  crc: number;
  native: string;
  greeting: string;
  greeting_file: string;
  uid: number;
  python: string;
  prefix: string;
  app_file: string;
}

/** GETs `url` until it answers 200 (the server may still be starting); its JSON body. */
export async function waitForApp(
  url: string,
  timeoutMs = 30_000,
  logs?: () => Promise<string>,
): Promise<AppAnswer> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown = null;
  while (Date.now() < deadline) {
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(3000) });
      const text = await res.text();
      if (res.status === 200) return JSON.parse(text) as AppAnswer;
      last = `HTTP ${res.status}: ${text.slice(0, 500)}`;
    } catch (error) {
      last = error;
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  const why =
    last instanceof Error ? `${last.message}${last.cause ? ` (${String(last.cause)})` : ''}` : String(last);
  throw new Error(
    `${url} did not answer 200 within ${timeoutMs} ms: ${why}${logs ? `\ncontainer logs:\n${await logs()}` : ''}`,
  );
}

export interface Served {
  container: Docker.Container;
  url: string;
  logs: () => Promise<string>;
}

/**
 * Runs `image` detached (like `docker run -d -p 127.0.0.1::8000 IMAGE CMD`) with the test label, and returns
 * the URL of its port 8000 published on 127.0.0.1 (a port the engine picks).
 */
export async function serve(
  docker: Docker,
  image: string,
  options: { cmd?: string[]; user?: string; binds?: string[]; env?: string[] } = {},
): Promise<Served> {
  const container = await docker.createContainer({
    Image: image,
    ...(options.cmd ? { Cmd: options.cmd } : {}),
    ...(options.user ? { User: options.user } : {}),
    ...(options.env ? { Env: options.env } : {}),
    Labels: E2E_LABEL,
    ExposedPorts: { '8000/tcp': {} },
    HostConfig: {
      PortBindings: { '8000/tcp': [{ HostIp: '127.0.0.1', HostPort: '' }] },
      ...(options.binds ? { Binds: options.binds } : {}),
    },
  });
  const logs = async (): Promise<string> => {
    try {
      const buf = (await container.logs({ stdout: true, stderr: true, follow: false })) as unknown as Buffer;
      // Multiplexed frames: strip the 8-byte headers.
      const out: Buffer[] = [];
      for (let i = 0; i + 8 <= buf.length;) {
        const size = buf.readUInt32BE(i + 4);
        out.push(buf.subarray(i + 8, i + 8 + size));
        i += 8 + size;
      }
      return Buffer.concat(out).toString();
    } catch (error) {
      return `(no logs: ${(error as Error).message})`;
    }
  };
  await container.start();
  const info = await container.inspect();
  const binding = info.NetworkSettings.Ports['8000/tcp']?.[0];
  if (!binding) throw new Error(`${image}: port 8000 is not published: ${await logs()}`);
  if (binding.HostIp !== '127.0.0.1')
    throw new Error(`${image}: published on ${binding.HostIp}, not 127.0.0.1`);
  return { container, url: `http://127.0.0.1:${binding.HostPort}/`, logs };
}

/** Removes every container and image carrying the e2e label (containers first). */
export async function removeLabelled(docker: Docker): Promise<void> {
  const filters = JSON.stringify({ label: [`${testLabel}=e2e`] });
  for (const c of await docker.listContainers({ all: true, filters })) {
    await docker
      .getContainer(c.Id)
      .remove({ force: true })
      .catch(() => undefined);
  }
}

/** `git` of the host, for checks. */
export async function gitHead(dir: string): Promise<string> {
  return (await exec('git', ['-C', dir, 'rev-parse', 'HEAD'])).stdout.trim();
}

/** Writes a file, creating its folder. */
export async function write(file: string, text: string): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(file, text);
}
