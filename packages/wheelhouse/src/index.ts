// @dstack/wheelhouse: wheels (PEP 427 names, PEP 425/600 tags, METADATA), validation of hostile wheels,
// an atomic sha256-verified store, queries, and the simple repository API (PEP 503/691/658).
export { canonicalizeName, type NormalizedName } from '@dstack/recipe';
export { WheelError, type WheelErrorCode } from './errors.js';
export {
  parseWheelFilename,
  isWheelFilename,
  escapedFilename,
  releaseKey,
  versionKey,
  type WheelFilename,
} from './filename.js';
export {
  describeTarget,
  detectTarget,
  expandPlatforms,
  manylinuxPlatforms,
  musllinuxPlatforms,
  targetFromTags,
  targetName,
  targetTags,
  wheelTagRank,
  type Target,
  type TargetSpec,
} from './tags.js';
export { describeTargetText, wheelCompatibility, type CompatibilityOptions, type WheelFit } from './compat.js';
export { parseTargetName, targetFromLock } from './lock-target.js';
export {
  ARCHITECTURES,
  LEGACY_MANYLINUX,
  machineOfGlibcLoader,
  machineOfMuslLoader,
  machineOfOciPlatform,
  ociPlatformOfMachine,
  platformNeeds,
  type Architecture,
  type Libc,
  type PlatformNeeds,
} from './platforms.js';
export { openZip, SMALL_MEMBER_BYTES, type OpenZip, type ZipMember } from './zip.js';
export { parseMetadata, type WheelMetadata } from './metadata.js';
export {
  bufferSource,
  externalNeeds,
  machineName,
  readElf,
  readElfFile,
  readElfStream,
  readWheelElfFiles,
  streamSource,
  type ByteSource,
  type ElfInfo,
  type WheelElfFile,
} from './elf.js';
export { DEFAULT_LIMITS, readWheelMetadata, validateWheel, type WheelLimits } from './validate.js';
export {
  FsWheelStore,
  compareEntries,
  openWheelhouse,
  wheelhouseStats,
  type AddOptions,
  type AddResult,
  type WheelEntry,
  type WheelSource,
  type WheelStore,
  type WheelhouseStats,
} from './store.js';
export { sourceFromLockTable, sourceLockTable } from './source.js';
export { bestWheel, requiresPythonAllows, whyNoWheel, type WheelRequirement } from './query.js';
export {
  SIMPLE_HTML_CONTENT_TYPE,
  SIMPLE_JSON_CONTENT_TYPE,
  escapeHtml,
  renderProjectList,
  renderProjectPage,
  writeStaticIndex,
  type ApiVersion,
  type RenderOptions,
  type SimpleFormat,
} from './simple.js';
