import { DockerExecutor, dockerFromEnv } from '@dstack/engine';
import type { CliContext } from './context.js';

/**
 * The names the factory and runtime images get when none is given: the ones docker-compose.yml gives them
 * (`dstack-factory/factory:py3.11`), so that either way of building finds the other's images.
 */
export function defaultImage(which: 'factory' | 'runtime', env: NodeJS.ProcessEnv, pyVersion?: string): string {
  return `dstack-factory/${which}:py${pyVersion ?? (env.PY_VERSION || '3.11')}`;
}

/**
 * The docker executor on the factory image (`explicit`, else $FACTORY_IMAGE, else the default name), on the
 * engine at $DOCKER_HOST: its interpreter, not a host one, is the target (Decision 3).
 */
export function factoryExecutor(env: NodeJS.ProcessEnv, explicit: string | undefined, logger: CliContext['logger']): { image: string; executor: DockerExecutor } {
  const image = explicit ?? env.FACTORY_IMAGE ?? defaultImage('factory', env);
  const executor = new DockerExecutor({
    image,
    docker: dockerFromEnv(env.DOCKER_HOST),
    ...(env.DOCKER_HOST ? { dockerHost: env.DOCKER_HOST } : {}),
    logger: logger.child({ component: 'docker-executor' }),
  });
  return { image, executor };
}
