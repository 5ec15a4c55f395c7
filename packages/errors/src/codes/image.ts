import type { CodeEntry } from './entry.js';
import type { OciErrorCode } from './oci.js';
import type { WheelErrorCode } from './wheelhouse.js';

/** The codes @dstack/image throws (as ImageError; a registry's answers are @dstack/oci's RegistryError). */
export const IMAGE_CODES = {
  IMAGE_SPEC_INVALID: {
    summary: 'An image source or output is not KIND:VALUE (docker:, oci:, archive:, registry:).',
    hint: 'Write it like docker:NAME, oci:DIR, archive:FILE or registry:REF.',
  },
  IMAGE_NOT_FOUND: {
    summary: 'The image is not where it was named: not in the Docker daemon, the OCI layout or the archive.',
    hint: 'Build, pull or load it first (the factory image: dstack-factory image factory).',
  },
  IMAGE_AMBIGUOUS: {
    summary: 'An archive holds several images and none was named.',
    hint: 'Name the one to use (archive:FILE with its tag).',
  },
  IMAGE_PLATFORM: {
    summary: 'An image index has no image for the platform asked for.',
    hint: 'Pick a platform the index lists, or build the base for yours.',
  },
  IMAGE_INVALID: {
    summary: 'An image is inconsistent: its manifest, config and layers disagree (counts, diffIDs, digests), or a file is missing.',
    hint: 'The image is damaged: export or build it again.',
  },
  IMAGE_DIGEST_INVALID: {
    summary: 'A digest is not sha256:<64 hex digits>.',
    hint: 'Use the full sha256 digest.',
  },
  IMAGE_DIGEST_MISMATCH: {
    summary: 'A blob read back has another digest than its name says.',
    hint: 'The blob store or layout is damaged: remove it and write the image again.',
  },
  IMAGE_MEDIA_TYPE: {
    summary: 'A layer has a media type other than tar or tar+gzip.',
    hint: 'Use a base whose layers are gzip or uncompressed tar (Docker 20.10 cannot read zstd either).',
  },
  IMAGE_BASE_NO_PYTHON: {
    summary: 'The base image has no python3.X interpreter in /usr/bin or /usr/local/bin.',
    hint: 'Use a base with Python installed (the runtime image, or a Debian base with python3).',
  },
  IMAGE_BASE_PYTHON_VERSION: {
    summary: "The base image states no full Python version: no PYTHON_VERSION, venv, dpkg record, nor a version string in its interpreter or libpython.",
    hint: 'Set PYTHON_VERSION=3.X.Y in the base image\'s environment.',
  },
  IMAGE_BYTECODE_FAILED: {
    summary: 'Compiling the installed modules to .pyc failed: the interpreter did not start, died, or has another Python version than the base.',
    hint: 'Build with --no-compile to leave bytecode out, and report the failure.',
  },
  IMAGE_BYTECODE_NO_PYTHON: {
    summary: "No interpreter of the base's Python minor version to compile .pyc with: none on this machine, and no engine that can run the base.",
    hint: 'Install that Python (pyenv), give a docker: base on a reachable engine, or build with --no-compile.',
  },
  IMAGE_BASE_PLATFORM: {
    summary: "The base image's platform has no wheel tags, or its config names another machine than its C library.",
    hint: 'Use a linux base of a machine wheels are built for (amd64, arm64, arm/v7, ppc64le, s390x, 386), with a config that says it.',
  },
  IMAGE_PATH_INVALID: {
    summary: 'A path would escape the root of a layer.',
    hint: 'Paths in a layer are relative to / and may not climb out with "..".',
  },
  IMAGE_PATH_DUPLICATE: {
    summary: 'A layer would hold two entries for one path, or a path as both file and directory.',
    hint: 'Two inputs write the same path: rename one of them.',
  },
  IMAGE_ENTRY_SIZE: {
    summary: 'A file changed size while it was written into a layer.',
    hint: 'Do not change the source while the image is built; run it again.',
  },
  IMAGE_SOURCE_DATE_EPOCH: {
    summary: 'SOURCE_DATE_EPOCH is not a number of seconds.',
    hint: 'Set it to an integer (git log -1 --format=%ct gives the last commit time) or unset it.',
  },
  IMAGE_SOURCE_INVALID: {
    summary: 'The app source directory cannot be read.',
    hint: 'Check that --source names a readable directory.',
  },
  IMAGE_CACHE_CORRUPT: {
    summary: 'A cached layer segment is shorter than its record says.',
    hint: 'The image cache changed underneath the build: run it again, or remove the cache directory.',
  },
  IMAGE_LAYER_CACHE_INVALID: {
    summary: 'A --cache-from/--cache-to reference holds something other than a dstack-factory layer cache.',
    hint: 'Give the layer cache its own tag or repository (e.g. REPO:cache), never an image\'s.',
  },
  IMAGE_NO_ENGINE: {
    summary: 'A docker: source or output was named but no Docker daemon is at hand.',
    hint: 'Set DOCKER_HOST to a running daemon, or use oci:, archive: or registry: instead.',
  },
  IMAGE_LOAD_FAILED: {
    summary: 'The Docker daemon refused to load the assembled image.',
    hint: 'The message carries the daemon\'s reason; write an archive: output to inspect the image.',
  },
  IMAGE_BUILD_FAILED: {
    summary: 'A Dockerfile build on the Docker daemon failed or could not start.',
    hint: 'The message carries the last lines of the build output; fix the step that failed.',
  },
  IMAGE_ARCH_UNKNOWN: {
    summary: "The image's architecture is not one the shared-library check knows.",
    hint: 'Known: amd64, arm64, 386, arm, ppc64le, s390x, riscv64; --no-check-libs skips the check.',
  },
  IMAGE_LIBRARY_MISSING: {
    summary: 'The base image lacks shared libraries the wheels load (or has them for another machine).',
    hint: 'Add the named Debian packages to the runtime image (EXTRA_PACKAGES), or use wheels that bundle them (auditwheel repair).',
  },
  IMAGE_REBASE_TARGET: {
    summary: "The new base of image rebase is not the same target as the app image's (platform, Python full version or glibc).",
    hint: 'The installed wheels were chosen for the old target: build the app again on the new base (image app).',
  },
  IMAGE_REBASE_UNKNOWN: {
    summary: "image rebase cannot tell the image's base layers from the ones dstack-factory image app added (its history does not name them).",
    hint: 'Rebase works on images dstack-factory image app built; build the app on the new base instead.',
  },
  LOCK_ENVIRONMENT_MISMATCH: {
    summary: "A lock was made for another interpreter than the base image's.",
    hint: "Lock the recipe for the base's Python (image app --requirements does this), or use a base of the lock's Python.",
  },
  LOCK_NO_WHEEL: {
    summary: "A locked package has no wheel that installs on the base's Python and platform.",
    hint: 'Build the wheels for that target (dstack-factory build --python …) and lock again.',
  },
  LOCK_NO_HASH: {
    summary: 'A wheel in the lock has no sha256.',
    hint: 'Write the lock again with dstack-factory build; every wheel needs its hash.',
  },
  LOCK_WHEEL_MISSING: {
    summary: "A wheel the lock names must be read (its layer is not in the local or registry cache) and is in no wheelhouse.",
    hint: 'Fill the wheelhouse (dstack-factory wheelhouse pull registry:HOST/REPO, or dstack-factory build for this recipe), or point --wheelhouse at the right folder or at a registry wheelhouse (registry:HOST/REPO).',
  },
  WHEEL_ENTRY_POINT_INVALID: {
    summary: "A wheel's console or GUI script entry point is not name = module:attr with a safe name.",
    hint: 'Fix entry_points in the project and rebuild the wheel.',
  },
} as const satisfies Record<string, CodeEntry>;

/**
 * What @dstack/image throws: its own codes, the wheel codes its installer shares with @dstack/wheelhouse, and the
 * registry client's (@dstack/oci) it passes on.
 */
export type ImageErrorCode = keyof typeof IMAGE_CODES | WheelErrorCode | OciErrorCode;
