import type { CodeEntry } from './entry.js';

const REBUILD =
  'The wheel is refused: rebuild it from its source with a standard tool (pip wheel, python -m build).';

/** The codes @dstack/wheelhouse throws (as WheelError): a refused wheel, the store, targets. */
export const WHEEL_CODES = {
  WHEEL_NAME_INVALID: {
    summary: 'A file name is not a PEP 427 wheel name.',
    hint: 'A wheel is named {name}-{version}(-{build})?-{python}-{abi}-{platform}.whl; rename it or rebuild it.',
  },
  WHEEL_NOT_ZIP: {
    summary: 'The file is not a readable zip archive.',
    hint: 'The file is damaged or not a wheel: download or build it again.',
  },
  WHEEL_ENCRYPTED: { summary: 'A member of the wheel is encrypted.', hint: REBUILD },
  WHEEL_DIST_INFO_MISSING: { summary: 'The wheel has no .dist-info directory.', hint: REBUILD },
  WHEEL_DIST_INFO_DUPLICATE: { summary: 'The wheel has more than one .dist-info directory.', hint: REBUILD },
  WHEEL_DIST_INFO_MISMATCH: {
    summary: 'The .dist-info directory or METADATA names another project or version than the file name.',
    hint: 'Rename the file to what its METADATA says, or rebuild the wheel.',
  },
  WHEEL_WHEEL_FILE_MISSING: { summary: 'The wheel has no .dist-info/WHEEL file.', hint: REBUILD },
  WHEEL_VERSION_UNSUPPORTED: {
    summary: "The wheel's Wheel-Version is not 1.x.",
    hint: 'Build the wheel with a tool that writes Wheel-Version 1.0.',
  },
  WHEEL_METADATA_MISSING: { summary: 'The wheel has no .dist-info/METADATA file.', hint: REBUILD },
  WHEEL_METADATA_INVALID: {
    summary:
      'METADATA lacks Metadata-Version, Name or Version, or has a Metadata-Version outside 1.0 to 2.4.',
    hint: REBUILD,
  },
  WHEEL_PATH_UNSAFE: {
    summary: 'A member path is absolute, climbs out with "..", or is a special file.',
    hint: 'The wheel is refused: it would write outside its install location. Rebuild it from a trusted source.',
  },
  WHEEL_MEMBER_DUPLICATE: { summary: 'A member name appears twice in the zip.', hint: REBUILD },
  WHEEL_SYMLINK: {
    summary: 'A member is a symbolic link (wheels hold regular files only).',
    hint: 'Build the wheel without symbolic links (copy the target file instead).',
  },
  WHEEL_WHITEOUT: {
    summary:
      'A member is an OCI/AUFS whiteout (.wh.*) that would delete files of the layers below in an image.',
    hint: 'Rename that file in the project and rebuild the wheel.',
  },
  WHEEL_RECORD_MISSING: { summary: 'The wheel has no .dist-info/RECORD file.', hint: REBUILD },
  WHEEL_RECORD_INVALID: {
    summary: 'A RECORD line has no hash, or a hash weaker than sha256.',
    hint: REBUILD,
  },
  WHEEL_RECORD_MISMATCH: {
    summary: "A member's size or hash differs from RECORD, or RECORD and the zip list different files.",
    hint: 'The wheel was changed after it was built: rebuild it from a trusted source.',
  },
  WHEEL_BOMB: {
    summary: 'The wheel expands past the size, ratio or member-count limits, or its members overlap.',
    hint: 'The wheel is refused as a zip bomb; raise the limits only for a wheel you trust.',
  },
  WHEEL_HASH_MISMATCH: {
    summary: "A wheel's sha256 differs from the one expected (an upload's form, a lock, the store's index).",
    hint: 'The wheel and the record of it disagree: fetch the wheel again, or make the lock again.',
  },
  WHEEL_CONFLICT: {
    summary:
      'Different bytes for a release already in the wheelhouse (same canonical name, equal version, build tag and tags, under any spelling), or two wheels that install the same file.',
    hint: 'One release, one wheel: remove the existing wheel first (or add with overwrite); for two wheels, drop one.',
  },
  WHEEL_PROJECT_UNSETTLED: {
    summary:
      "A registry store's project manifest could not be made to match the project's wheel tags: other writers kept changing them through every rebuild. The wheels themselves are stored; readers fall back to their own manifests.",
    hint: "Nothing is lost: the wheel is stored, and readers read the project's wheels from their own manifests. The project's next add or remove rebuilds its manifest (pushing the same wheel again does not: it is present).",
  },
  WHEEL_BUILD_TAG: {
    summary: "A wheel's file name has a build tag, and this upload or `wheelhouse add` does not take them.",
    hint: 'Upload the wheel without the build tag, or allow build tags (server: allow_build_tags = true; wheelhouse add --allow-build-tag).',
  },
  WHEEL_NOT_FOUND: {
    summary: 'No wheel of that name (or project and version) is in the wheelhouse.',
    hint: '`dstack-factory wheelhouse list` shows what is there; add or build the wheel first.',
  },
  TARGET_INVALID: {
    summary: 'A target is given with a Python version that is not like 3.11.7.',
    hint: 'Give the full version of the interpreter (python -c "import platform; print(platform.python_version())").',
  },
  TARGET_DETECT_FAILED: {
    summary: 'The interpreter (local, or in the factory image) did not answer what it is.',
    hint: 'Pass the path of a working Python 3 interpreter, or check the factory image runs python.',
  },
  ELF_INVALID: {
    summary:
      'A file that starts like ELF (in a wheel, or on disk) has headers or a dynamic segment that cannot be read.',
    hint: 'The shared library is truncated or damaged: rebuild the wheel that holds it.',
  },
} as const satisfies Record<string, CodeEntry>;

export type WheelErrorCode = keyof typeof WHEEL_CODES;
