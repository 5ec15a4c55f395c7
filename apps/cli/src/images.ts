/**
 * The names the factory and runtime images get when none is given: the ones docker-compose.yml gives them
 * (`dstack-factory/factory:py3.11`), so that either way of building finds the other's images.
 */
export function defaultImage(which: 'factory' | 'runtime', env: NodeJS.ProcessEnv, pyVersion?: string): string {
  return `dstack-factory/${which}:py${pyVersion ?? (env.PY_VERSION || '3.11')}`;
}
