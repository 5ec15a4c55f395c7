// The factory image, built through dockerode from images/factory with a tar-stream context, and reused by
// content: its tag carries a hash of the Dockerfile, the build script and the build arguments (and the base
// image's id), so an unchanged factory is never rebuilt and a changed script always is.
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import type Docker from 'dockerode';
import type { Logger } from 'pino';
import { pack as tarPack } from 'tar-stream';
import { FACTORY_SCRIPT } from '../protocol.js';
import { EngineError } from '../errors.js';

/** images/factory of this repository: the Dockerfile and the build script. */
export const FACTORY_CONTEXT = path.dirname(FACTORY_SCRIPT);
export const FACTORY_REPOSITORY = 'dstack-factory/factory';
/** Label holding the full content hash of an image built by `buildImage`. */
export const CONTENT_LABEL = 'org.dstack-factory.content';

export interface BuildImageOptions {
  docker: Docker;
  /** The build context directory. */
  context: string;
  /** Image repository; the tag is `<repository>:c-<hash16>` unless `tag` is given. */
  repository: string;
  tag?: string;
  dockerfile?: string;
  buildArgs?: Record<string, string>;
  /** Rebuild even when an image of the same content exists. */
  force?: boolean;
  /** Each line of the build's output. */
  onLine?: (line: string) => void;
  logger?: Logger;
}

/** The files of a build context, sorted; skips `__pycache__`, `*.pyc`, `.git`. */
async function contextFiles(dir: string, rel = ''): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await fs.readdir(path.join(dir, rel), { withFileTypes: true })) {
    if (entry.name === '__pycache__' || entry.name === '.git' || entry.name.endsWith('.pyc')) continue;
    const name = rel ? `${rel}/${entry.name}` : entry.name;
    if (entry.isDirectory()) out.push(...(await contextFiles(dir, name)));
    else if (entry.isFile()) out.push(name);
  }
  return out.sort();
}

/**
 * Builds an image on the engine (the classic builder of Docker 20.10 and later) and returns its tag.
 * Reused when an image with the same content hash exists. An `errorDetail` in the build stream (which the
 * engine sends with HTTP 200) is a failure: EngineError IMAGE_BUILD_FAILED with the engine's message.
 */
export async function buildImage(options: BuildImageOptions): Promise<string> {
  const { docker } = options;
  const files = await contextFiles(options.context);
  const hash = createHash('sha256');
  hash.update(`dockerfile=${options.dockerfile ?? 'Dockerfile'}\0`);
  for (const [k, v] of Object.entries(options.buildArgs ?? {}).sort(([a], [b]) => (a < b ? -1 : 1))) {
    hash.update(`arg=${k}=${v}\0`);
    if (k === 'BASE_IMAGE') {
      const base = await docker
        .getImage(v)
        .inspect()
        .catch(() => null);
      if (base) hash.update(`base=${base.Id}\0`);
    }
  }
  const contents = new Map<string, Buffer>();
  for (const f of files) {
    const data = await fs.readFile(path.join(options.context, f));
    contents.set(f, data);
    hash.update(`file=${f}\0`).update(data).update('\0');
  }
  const digest = hash.digest('hex');
  const tag = options.tag ?? `${options.repository}:c-${digest.slice(0, 16)}`;
  if (!options.force) {
    const existing = await docker
      .getImage(tag)
      .inspect()
      .catch(() => null);
    if (existing && existing.Config?.Labels?.[CONTENT_LABEL] === digest) return tag;
  }

  const pack = tarPack();
  for (const [name, data] of contents) {
    const mode = (await fs.stat(path.join(options.context, name))).mode & 0o777;
    pack.entry({ name, mode, mtime: new Date(0), uid: 0, gid: 0 }, data);
  }
  pack.finalize();
  let stream: NodeJS.ReadableStream;
  try {
    stream = await docker.buildImage(pack as unknown as NodeJS.ReadableStream, {
      t: tag,
      dockerfile: options.dockerfile ?? 'Dockerfile',
      buildargs: options.buildArgs ?? {},
      labels: { [CONTENT_LABEL]: digest },
      rm: true,
      forcerm: true,
    });
  } catch (cause) {
    throw new EngineError(
      'IMAGE_BUILD_FAILED',
      `the engine refused to build ${tag}: ${(cause as Error).message}`,
      { cause },
    );
  }
  const tail: string[] = [];
  await new Promise<void>((resolve, reject) => {
    docker.modem.followProgress(
      stream,
      (
        err: Error | null,
        output: Array<{ error?: string; errorDetail?: { message?: string; code?: number } }>,
      ) => {
        if (err)
          return reject(
            new EngineError('IMAGE_BUILD_FAILED', `building ${tag} failed: ${err.message}`, { cause: err }),
          );
        const failed = output.find((o) => o.errorDetail || o.error);
        if (failed) {
          const message = failed.errorDetail?.message ?? failed.error ?? 'unknown error';
          return reject(
            new EngineError(
              'IMAGE_BUILD_FAILED',
              `building ${tag} from ${options.context} failed: ${message}`,
              {
                hint: tail.length > 0 ? `last output:\n${tail.join('\n')}` : undefined,
              },
            ),
          );
        }
        resolve();
      },
      (event: { stream?: string; status?: string }) => {
        const text = event.stream ?? event.status;
        if (!text) return;
        for (const line of text.split('\n')) {
          if (!line.trim()) continue;
          tail.push(line.trimEnd());
          if (tail.length > 20) tail.shift();
          options.onLine?.(line.trimEnd());
          options.logger?.debug({ line: line.trimEnd() }, 'build');
        }
      },
    );
  });
  return tag;
}

/** The factory image (images/factory) on `baseImage`, built once per content. Returns its tag. */
export function ensureFactoryImage(options: {
  docker: Docker;
  baseImage: string;
  pyVersion?: string;
  onLine?: (line: string) => void;
  logger?: Logger;
}): Promise<string> {
  return buildImage({
    docker: options.docker,
    context: FACTORY_CONTEXT,
    repository: FACTORY_REPOSITORY,
    buildArgs: { BASE_IMAGE: options.baseImage, PY_VERSION: options.pyVersion ?? '3.11' },
    ...(options.onLine ? { onLine: options.onLine } : {}),
    ...(options.logger ? { logger: options.logger } : {}),
  });
}
