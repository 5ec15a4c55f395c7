import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type Docker from 'dockerode';
import type { AppInput } from './build-app-image.js';
import { buildDockerfile } from './dockerfile-build.js';
import { ImageError } from '../errors.js';

export interface DaemonAppOptions {
  /** The folder of the app Dockerfiles (dstack-factory's `images/app`: Dockerfile, Dockerfile-source, Dockerfile-wheel). */
  dockerfiles: string;
  /** The base image on the daemon (BASE_IMAGE): a runtime image. */
  base: string;
  /** The dependencies' wheel files: the build's wheelhouse (pip install --no-index -f /wheelhouse). */
  wheels: string[];
  /** requirements.txt lines; default: every wheel pinned (`name==version` from its file name). */
  requirements?: string[];
  app?: AppInput;
  /** UID build argument of Dockerfile-source (owner of /app). */
  uid?: number;
  tag: string;
  labels?: Record<string, string>;
  onProgress?: (line: string) => void;
  noCache?: boolean;
}

export interface DaemonAppResult {
  /** The final image id. */
  id: string;
  /** The images built, in order: the dependencies image, then (with an app) the app image (`tag`). */
  tags: string[];
}

/** `name==version` from a wheel file name (PEP 427: name and version are its first two fields). */
export function pinFromWheel(file: string): string {
  const m = /^([^-]+)-([^-]+)-.*\.whl$/.exec(path.basename(file));
  if (!m) throw new ImageError('WHEEL_NAME_INVALID', `not a wheel file name: ${path.basename(file)}`);
  return `${m[1]}==${m[2]}`;
}

/**
 * The seed's way: builds the app through the Dockerfiles of `images/app` on a Docker daemon (dockerode, contexts
 * packed by tar-stream). `Dockerfile` installs the requirements from the wheels with no index (tagged `tag`, or
 * `<tag>-deps` when an app follows); then `Dockerfile-source` (SRC_DIR, UID) or `Dockerfile-wheel`
 * (WHEEL_PACKAGE) on top of it, tagged `tag`. Wheels and sources are sent as they are: no copy on disk.
 */
export async function buildAppImageOnDaemon(docker: Docker, options: DaemonAppOptions): Promise<DaemonAppResult> {
  const work = await fs.mkdtemp(path.join(os.tmpdir(), 'dstack-image-engine-app-'));
  try {
    const wheelhouse: Record<string, string> = {};
    for (const w of options.wheels) wheelhouse[`wheelhouse/${path.basename(w)}`] = w;
    const requirements = options.requirements ?? options.wheels.map(pinFromWheel);
    const deps = path.join(work, 'deps');
    await fs.mkdir(deps);
    await fs.writeFile(path.join(deps, 'requirements.txt'), requirements.join('\n') + '\n');
    if (options.wheels.length === 0) await fs.mkdir(path.join(deps, 'wheelhouse'));
    const depsTag = options.app ? depsTagOf(options.tag) : options.tag;
    const common = {
      ...(options.onProgress ? { onProgress: options.onProgress } : {}),
      ...(options.noCache ? { noCache: true } : {}),
    };
    let id = await buildDockerfile(docker, {
      context: deps,
      tag: depsTag,
      buildArgs: { BASE_IMAGE: options.base },
      extraFiles: { ...wheelhouse, Dockerfile: path.join(options.dockerfiles, 'Dockerfile') },
      ...(options.app ? {} : { labels: options.labels ?? {} }),
      ...common,
    });
    const tags = [depsTag];
    const app = options.app;
    if (app?.kind === 'source') {
      // The source folder is the context (its .dockerignore honoured); the Dockerfile goes in beside it.
      id = await buildDockerfile(docker, {
        context: app.dir,
        dockerfile: '.dstack-factory.Dockerfile-source',
        tag: options.tag,
        buildArgs: { BASE_IMAGE: depsTag, SRC_DIR: '.', UID: String(options.uid ?? 4801) },
        extraFiles: { '.dstack-factory.Dockerfile-source': path.join(options.dockerfiles, 'Dockerfile-source') },
        labels: options.labels ?? {},
        ...common,
      });
      tags.push(options.tag);
    } else if (app?.kind === 'wheel') {
      const empty = path.join(work, 'wheel');
      await fs.mkdir(path.join(empty, 'wheelhouse'), { recursive: true });
      const name = `app/${path.basename(app.path)}`;
      id = await buildDockerfile(docker, {
        context: empty,
        tag: options.tag,
        buildArgs: { BASE_IMAGE: depsTag, WHEEL_PACKAGE: name },
        extraFiles: { ...wheelhouse, [name]: app.path, Dockerfile: path.join(options.dockerfiles, 'Dockerfile-wheel') },
        labels: options.labels ?? {},
        ...common,
      });
      tags.push(options.tag);
    }
    return { id, tags };
  } finally {
    await fs.rm(work, { recursive: true, force: true });
  }
}

/** `repo:tag` -> `repo:tag-deps` (`repo` -> `repo:latest-deps`). */
function depsTagOf(tag: string): string {
  const slash = tag.lastIndexOf('/');
  const colon = tag.lastIndexOf(':');
  return colon > slash ? `${tag}-deps` : `${tag}:latest-deps`;
}
