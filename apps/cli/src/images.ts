import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
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
 * The docker executor on the factory image (`explicit`, else $FACTORY_IMAGE, else the default name), on the
 * engine at $DOCKER_HOST: its interpreter, not a host one, is the target (Decision 3). @dstack/engine's docker
 * side (dockerode) is loaded only here.
 */
export async function factoryExecutor(
  env: NodeJS.ProcessEnv,
  explicit: string | undefined,
  logger: CliContext['logger'],
): Promise<{ image: string; executor: DockerExecutor }> {
  const { DockerExecutor, dockerFromEnv } = await import('@dstack/engine');
  const image = explicit ?? env.FACTORY_IMAGE ?? defaultImage('factory', env);
  const executor = new DockerExecutor({
    image,
    docker: dockerFromEnv(env.DOCKER_HOST),
    ...(env.DOCKER_HOST ? { dockerHost: env.DOCKER_HOST } : {}),
    logger: logger.child({ component: 'docker-executor' }),
  });
  return { image, executor };
}
