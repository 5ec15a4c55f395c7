import { createReadStream, promises as fs } from 'node:fs';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { Readable } from 'node:stream';
import type Docker from 'dockerode';
import tar from 'tar-stream';
import { ImageError } from '../errors.js';
import { readDockerignore } from '../layers/dockerignore.js';

export interface DockerfileBuildOptions {
  /** The build context directory. */
  context: string;
  /** Dockerfile path relative to the context (default "Dockerfile"). */
  dockerfile?: string;
  tag: string;
  buildArgs?: Record<string, string>;
  labels?: Record<string, string>;
  /** Extra files put into the context (name relative to its root -> a file on disk), e.g. a wheelhouse. */
  extraFiles?: Record<string, string>;
  /** Each line of build output (steps, RUN output, status). */
  onProgress?: (line: string) => void;
  noCache?: boolean;
  pull?: boolean;
  /**
   * The platform to build for (`linux/arm64`), as `docker build --platform`: the classic builder of Docker 20.10
   * takes it, and runs the RUN steps of a foreign platform under the engine machine's emulation.
   */
  platform?: string;
}

/** The context as a tar stream (tar-stream): .dockerignore honoured, sorted, fixed times and owners. */
export async function packBuildContext(context: string, extraFiles: Record<string, string> = {}): Promise<Readable> {
  const rules = await readDockerignore(context);
  const files: { name: string; full: string }[] = [];
  const walk = async (rel: string): Promise<void> => {
    for (const name of (await fs.readdir(path.join(context, rel))).sort()) {
      const r = rel ? `${rel}/${name}` : name;
      const full = path.join(context, r);
      const st = await fs.lstat(full);
      // An ignored directory is still walked when an exception ("!dir/keep") may bring part of it back.
      if (st.isDirectory()) {
        if (!rules.hasExceptions && rules.ignores(r)) continue;
        await walk(r);
        continue;
      }
      // Dockerfile and .dockerignore always go (the builder needs them even when ignored).
      if (rules.ignores(r) && r !== 'Dockerfile' && r !== '.dockerignore') continue;
      files.push({ name: r, full });
    }
  };
  await walk('');
  for (const [name, full] of Object.entries(extraFiles)) files.push({ name, full });
  files.sort((a, b) => (a.name < b.name ? -1 : 1));
  const pack = tar.pack();
  void (async () => {
    try {
      for (const f of files) {
        const st = await fs.lstat(f.full);
        const common = { name: f.name, mtime: new Date(0), uid: 0, gid: 0, mode: st.mode & 0o7777 };
        if (st.isSymbolicLink()) {
          const link = await fs.readlink(f.full);
          await new Promise<void>((res, rej) => pack.entry({ ...common, type: 'symlink', linkname: link }, (e) => (e ? rej(e) : res())));
        } else {
          await pipeline(createReadStream(f.full), pack.entry({ ...common, size: st.size }));
        }
      }
      pack.finalize();
    } catch (err) {
      pack.destroy(err as Error);
    }
  })();
  return pack as unknown as Readable;
}

/**
 * Builds a Dockerfile on a Docker daemon through dockerode (the context packed by tar-stream); progress comes
 * from the build stream, and an errorDetail in it is a failure (the HTTP status of a build is 200 either way).
 * Returns the image id.
 */
export async function buildDockerfile(docker: Docker, options: DockerfileBuildOptions): Promise<string> {
  const context = await packBuildContext(options.context, options.extraFiles);
  let stream: NodeJS.ReadableStream;
  try {
    stream = await docker.buildImage(context as unknown as NodeJS.ReadableStream, {
      t: options.tag,
      dockerfile: options.dockerfile ?? 'Dockerfile',
      buildargs: options.buildArgs ?? {},
      labels: options.labels ?? {},
      rm: true,
      forcerm: true,
      nocache: options.noCache ?? false,
      pull: options.pull ?? false,
      ...(options.platform ? { platform: options.platform } : {}),
    });
  } catch (err) {
    throw new ImageError('IMAGE_BUILD_FAILED', `docker build of ${options.tag} could not start: ${(err as Error).message}`, { cause: err });
  }
  let id: string | null = null;
  let failure: string | null = null;
  // The build's last lines: a RUN step's own message (a refused PY_VERSION, apt's error) is in them.
  const tail: string[] = [];
  await new Promise<void>((resolve, reject) => {
    docker.modem.followProgress(
      stream,
      (err: Error | null) => (err ? reject(new ImageError('IMAGE_BUILD_FAILED', `docker build of ${options.tag}: ${err.message}`, { cause: err })) : resolve()),
      (event: { stream?: string; status?: string; error?: string; errorDetail?: { message?: string }; aux?: { ID?: string } }) => {
        if (event.errorDetail || event.error) failure ??= event.errorDetail?.message ?? event.error ?? 'unknown error';
        if (event.aux?.ID) id = event.aux.ID;
        const text = event.stream ?? event.status;
        if (text) {
          for (const line of text.split('\n')) {
            if (!line.trim()) continue;
            tail.push(line.trimEnd());
            if (tail.length > 8) tail.shift();
            options.onProgress?.(line.trimEnd());
          }
        }
      },
    );
  });
  if (failure) {
    throw new ImageError('IMAGE_BUILD_FAILED', `docker build of ${options.tag} failed: ${failure}`, tail.length > 0 ? { hint: `the build's last lines:\n${tail.join('\n')}` } : {});
  }
  if (!id) id = (await docker.getImage(options.tag).inspect()).Id;
  return id!;
}
