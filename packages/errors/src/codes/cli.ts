import type { CodeEntry } from './entry.js';

/** The codes only the CLI (dstack-factory) throws. */
export const CLI_CODES = {
  USAGE: {
    summary: 'The command line is wrong: options that exclude each other, a malformed value, a missing argument.',
    hint: 'dstack-factory COMMAND --help shows the options; docs/cli.md has them all. Exit status 2.',
  },
  BUILD_FAILED: {
    summary: 'Building the wheels needed for an image failed.',
    hint: 'Run dstack-factory build with the same recipe to see which wheel failed and why.',
  },
  LOCK_NO_INTERPRETER: {
    summary: "No interpreter of the base image's full Python version is at hand to lock --requirements with.",
    hint: "Pass --python with an interpreter of the base's version, or --factory-image built on the same base, or --lock a lock made for it.",
  },
  LOCK_NO_MATCHING_WHEEL: {
    summary: "Locking --requirements for the base, pip found no distribution that fits it; each of the wheelhouse's wheels is named with why it does not.",
    hint: 'Build the wheel for the base (a factory image made from it), or choose a base the wheels fit.',
  },
  LOCK_UNREADABLE: {
    summary: '`lock diff`: a lock file named on the command line cannot be read.',
    hint: 'Give the paths of two PEP 751 locks (pylock.<target>.toml).',
  },
  IMAGE_BASE_MISSING: {
    summary: 'The runtime image an onbuild flavour stands on is not in the Docker daemon (the classic builder would try Docker Hub).',
    hint: 'Build it first (dstack-factory image runtime, or docker-compose build runtime), or name another with --base-image.',
  },
  IMAGE_VERIFY_FAILED: {
    summary: '`image verify`: the chain from the image back to its lock is broken; each break names the file at fault (an installed file, a wheel, the lock).',
    hint: 'Rebuild the image from the lock (image app --lock), or find out who changed the file named.',
  },
  IMAGE_BASE_INDEX_FAILED: {
    summary: '`image runtime`: the image was built and tagged, but its base index (a last layer with its facts and file index) could not be written.',
    hint: 'Run it again (the engine\'s build cache makes it quick), or leave the index out with --no-base-index: app builds on the image then read its layers.',
  },
  IMAGE_PUSH_FAILED: {
    summary: "`image factory|runtime --push`: the engine could not push the built tag to its registry.",
    hint: 'Name the registry in the tag (--tag REGISTRY/NAME:TAG), and log the engine in to it when it needs credentials.',
  },
} as const satisfies Record<string, CodeEntry>;

/** What the CLI throws itself: its own codes, and a recipe or wheel that is not there. */
export type CliErrorCode = keyof typeof CLI_CODES | 'RECIPE_NOT_FOUND' | 'WHEEL_NOT_FOUND';
