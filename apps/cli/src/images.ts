import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type Docker from 'dockerode';
import type { DockerExecutor } from '@dstack/engine';
import type { CliContext } from './context.js';

/**
 * images/ of dstack-factory (the Dockerfiles of `image factory|runtime|app`, the files `init` copies): the copy the
 * build puts into dist/images/ (tools/pack/copy-images.mjs), so an installed CLI finds it inside itself; run from
 * src/, the repository's top-level images/. The one place that knows where it is.
 */
const PACKAGED_IMAGES = fileURLToPath(new URL('./images', import.meta.url));
export const IMAGES_DIR = existsSync(PACKAGED_IMAGES)
  ? PACKAGED_IMAGES
  : fileURLToPath(new URL('../../../images/', import.meta.url)).replace(/\/$/, '');

/**
 * The names the factory and runtime images get when none is given: the ones docker-compose.yml gives them
 * (`dstack-factory/factory:py3.11`), so that either way of building finds the other's images.
 */
export function defaultImage(which: 'factory' | 'runtime', env: NodeJS.ProcessEnv, pyVersion?: string): string {
  return `dstack-factory/${which}:py${pyVersion ?? (env.PY_VERSION || '3.11')}`;
}

/**
 * The tag of one platform's factory or runtime image, `<tag>-<architecture>[-<variant>]`
 * (dstack-factory/factory:py3.11-arm64, …:py3.11-amd64): a Docker 20.10 engine keeps one platform per tag, so
 * the images of several platforms are tagged apart.
 */
export function platformTag(tag: string, platform: string): string {
  const [, architecture, variant] = platform.split('/');
  const suffix = `${architecture}${variant ? `-${variant}` : ''}`;
  const slash = tag.lastIndexOf('/');
  return tag.slice(slash + 1).includes(':') ? `${tag}-${suffix}` : `${tag}:${suffix}`;
}

/**
 * The engine image of `tag` for `platform`: `platformTag(tag, platform)` when the engine has it, else `tag` itself
 * when it is an image of that platform (the engine's own, built without --platform), else the platform tag (to be
 * built: its absence is reported by whoever uses it).
 */
export async function imageForPlatform(docker: Docker, tag: string, platform: string): Promise<string> {
  const tagged = platformTag(tag, platform);
  if (await docker.getImage(tagged).inspect().then(() => true, () => false)) return tagged;
  const plain = await docker.getImage(tag).inspect().catch(() => null);
  const [os, architecture] = platform.split('/');
  if (plain && plain.Os === os && plain.Architecture === architecture) return tag;
  return tagged;
}

/**
 * The base to build a platform's image FROM: `platformTag(base, platform)` when the engine has it (a base kept per
 * platform, as tools/system/base-image.sh's bookworm-arm64), else `base` itself (an index the engine resolves).
 */
export async function baseForPlatform(docker: Docker, base: string, platform: string): Promise<string> {
  const tagged = platformTag(base, platform);
  return (await docker.getImage(tagged).inspect().then(() => true, () => false)) ? tagged : base;
}

/**
 * The docker executor on the factory image (`explicit`, else $FACTORY_IMAGE, else the default name), on the
 * engine at $DOCKER_HOST: its interpreter, not a host one, is the target (Decision 3). @dstack/engine's docker
 * side (dockerode) is loaded only here.
 */
export async function factoryExecutor(
  env: NodeJS.ProcessEnv,
  explicit: string | undefined,
  logger: CliContext['logger'],
  platform?: string,
): Promise<{ image: string; executor: DockerExecutor }> {
  const { DockerExecutor, dockerFromEnv, enginePlatforms, requirePlatform } = await import('@dstack/engine');
  const docker = dockerFromEnv(env.DOCKER_HOST);
  let image = explicit ?? env.FACTORY_IMAGE ?? defaultImage('factory', env);
  if (platform) {
    // A foreign platform runs only where the engine runs it: say so, with the remedies, before any container.
    requirePlatform(await enginePlatforms(docker, { ...(env.DOCKER_HOST ? { dockerHost: env.DOCKER_HOST } : {}) }), platform, `the factory image for ${platform}`, env.DOCKER_HOST ?? 'unix:///var/run/docker.sock');
    image = await imageForPlatform(docker, image, platform);
  }
  const executor = new DockerExecutor({
    image,
    docker,
    ...(env.DOCKER_HOST ? { dockerHost: env.DOCKER_HOST } : {}),
    logger: logger.child({ component: 'docker-executor' }),
  });
  return { image, executor };
}
