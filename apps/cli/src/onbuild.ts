import { CliError, UsageError } from './errors.js';

/** The onbuild runtime flavours (Decision 22): one Dockerfile each, because the classic builder fails an
 *  `ONBUILD COPY` of a path the child's context lacks. */
export const ONBUILD_FLAVOURS = ['requirements', 'source', 'wheel'] as const;
export type OnbuildFlavour = (typeof ONBUILD_FLAVOURS)[number];

export interface OnbuildBuild {
  flavour: OnbuildFlavour;
  /** The Dockerfile in images/runtime. */
  dockerfile: string;
  /** The tag: the plain runtime's tag plus `-onbuild`, `-onbuild-source` or `-onbuild-wheel`. */
  tag: string;
}

/** `--onbuild` (true: requirements) or `--onbuild=FLAVOUR`, on top of the plain runtime's tag. */
export function onbuildBuild(value: string | true, runtimeTag: string): OnbuildBuild {
  const flavour = value === true ? 'requirements' : value;
  if (!(ONBUILD_FLAVOURS as readonly string[]).includes(flavour)) {
    throw new UsageError(
      `--onbuild takes ${ONBUILD_FLAVOURS.join(', ')} (default requirements), not "${flavour}"`,
    );
  }
  const suffix = flavour === 'requirements' ? '-onbuild' : `-onbuild-${flavour}`;
  return {
    flavour: flavour as OnbuildFlavour,
    dockerfile: `Dockerfile${suffix}`,
    tag: `${runtimeTag}${suffix}`,
  };
}

/** The error when the runtime an onbuild flavour stands on is not in the engine (else the classic builder
 *  would try to pull it from Docker Hub and fail with "pull access denied"). */
export function missingRuntime(base: string, cause: unknown): CliError {
  return new CliError(
    'IMAGE_BASE_MISSING',
    `the onbuild runtime stands on ${base}, which is not in the Docker engine`,
    {
      hint: `build it first: \`dstack-factory image runtime\` (or \`docker-compose build runtime\`), or name another with --base-image`,
      cause,
    },
  );
}
