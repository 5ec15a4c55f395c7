import type { CodeEntry } from './entry.js';

/** The codes only @dstack/engine throws (it throws some of the image's, wheelhouse's and CLI's too). */
export const ENGINE_CODES = {
  ARCHIVE_FAILED: {
    summary: 'A wheel could not be copied into the archive (ARCHIVE / --archive): no space, no permission, or the copy did not match the wheelhouse.',
    hint: 'Check the archive folder; the wheelhouse is unchanged and the next build tries again.',
  },
  EXECUTOR_FAILED: {
    summary: 'The executor could not run: an interpreter that does not start, no flock, a container missing its output.',
    hint: 'The message names the command or file; run again with --verbose to see the cause.',
  },
  DOCKER_UNAVAILABLE: {
    summary: 'No Docker daemon answers at DOCKER_HOST, or it stopped answering during a build.',
    hint: 'Start dockerd (or set DOCKER_HOST to a running one), or build with --executor local.',
  },
  ENGINE_PLATFORM: {
    summary: 'The Docker engine cannot run containers of a platform a build or lock needs: not its own, and no emulation for it.',
    hint: 'Enable emulation on the engine\'s machine (qemu-user-static with binfmt_misc: sudo bash tools/system/setup.sh), point DOCKER_HOST at an engine of that platform, or lock elsewhere and pass --lock PLATFORM=FILE.',
  },
  PYTHON_NOT_FOUND: {
    summary: 'No interpreter of the Python version or path asked for is on this machine.',
    hint: 'Install it (e.g. `pyenv install 3.11`) or pass --python with the path of an interpreter.',
  },
  PYTHON_MISMATCH: {
    summary: 'The factory image has another Python than the build asks for.',
    hint: 'Build a factory image of that Python (dstack-factory image factory --py-version X.Y, on a base that has it).',
  },
  LOCK_UPGRADE_INVALID: {
    summary: 'build --upgrade NAME has no lock to keep, or the lock does not name the project.',
    hint: 'Build the recipe once so its lock exists; a project the lock lacks goes into the recipe (then build --refresh).',
  },
  LOCK_INCOMPLETE: {
    summary: 'A lock names a wheel the wheelhouse does not hold.',
    hint: 'Run the build with --refresh to lock and fill the wheelhouse again.',
  },
} as const satisfies Record<string, CodeEntry>;

/** What @dstack/engine throws: its own codes, and those of the image, target and usage problems it meets. */
export type EngineErrorCode =
  | keyof typeof ENGINE_CODES
  | 'IMAGE_BUILD_FAILED'
  | 'IMAGE_NOT_FOUND'
  | 'TARGET_DETECT_FAILED'
  | 'USAGE';
