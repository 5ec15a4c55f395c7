// The public API of @dstack/image: what a user needs to open and write images, build layers and app images,
// and tell its errors apart. Everything else stays internal (tests import it by path); the list is recorded in
// packages/image/api.md and changes only on purpose (tools/api-report).

// Errors.
export { ImageError, RegistryError } from './errors.js';

// Images and layers (core/): immutable values; mutations return new images.
export type { Digest } from './core/digest.js';
export type { Compression, Layer } from './core/layer.js';
export {
  Image,
  type ContainerConfig,
  type Descriptor,
  type HistoryEntry,
  type ImageConfigFile,
  type Manifest,
  type ManifestFormat,
  type SerializedManifest,
} from './core/image.js';
export { appendLayers, emptyImage, mutateConfig, type Addendum } from './core/mutate.js';
export { ImageIndex, type IndexEntry, type SerializedIndex } from './core/image-index.js';
export { formatPlatform, parsePlatform, platformMatches, platformOf, type Platform } from './core/platform.js';

// Where images come from and go (sources/, sinks/): docker:NAME, oci:DIR[:REF], archive:FILE, registry:REF.
export { parseImageSpec, type ImageSpec } from './core/image-spec.js';
export { imagePlatforms, openImage, type SourceOptions } from './sources/open-image.js';
export { destinationDigest, writeImage, writeImageIndex, type SinkOptions, type SinkResult } from './sinks/write-image.js';
// The registry client is @dstack/oci's (re-exported under the names this package always had).
export { RegistryClient, type RegistryClientOptions, type RegistryCredentials } from '@dstack/oci';
export type { PushEvent } from './sinks/registry.js';
export { indexDaemonImage } from './sinks/daemon.js';

// The cache every layer is written into (cache/).
export { BlobCache, type BlobWriter, type CachedLayer } from './cache/blob-cache.js';
export { DryRunCache } from './cache/dry-run-cache.js';
export { pruneCache, type PruneResult } from './cache/prune.js';
// The layer cache in a registry (--cache-from / --cache-to): read as the blob cache's remote, written like a sink.
export type { BlobRemote } from './cache/blob-cache.js';
export {
  exportLayerCache,
  mountFromCache,
  recordUse,
  RegistryLayerCache,
  type CacheRecord,
  type ExportOptions,
  type ExportResult,
  type RegistryCacheOptions,
  type UsedRecord,
} from './sinks/registry-cache.js';
export { fetchRegistryLayers } from './sources/fetch-layers.js';

// Layer builders (layers/).
export { writeLayer, sourceDateEpoch, type LayerEntry, type WriteLayerOptions } from './layers/write-layer.js';
export { inspectBase, type BaseInfo } from './layers/base-info.js';
export { runtimeEntries, type RuntimeLayerOptions } from './layers/runtime-venv.js';
export { sourceEntries, type SourceLayerOptions } from './layers/app-source.js';
export { writeWheelsLayer, type WheelsLayerOptions } from './layers/wheels/wheels-layer.js';
export type { VenvScheme } from './layers/wheels/install.js';
export {
  engineBytecodeCompiler,
  findHostBytecodeCompiler,
  hostBytecodeCompiler,
  type BytecodeCompiler,
  type BytecodeOptions,
  type PySource,
} from './layers/wheels/bytecode.js';
export { WheelMissingError, wheelFiles, type WheelFile } from './layers/wheels/wheel-file.js';

// App images (app/): daemonless, or with the images/app Dockerfiles on a Docker daemon.
export {
  buildAppImage,
  writeDependenciesLayer,
  type DependenciesLayerOptions,
  type AppImageOptions,
  type AppImageResult,
  type AppInput,
  type LayerReport,
  type WheelInput,
} from './app/build-app-image.js';
export { lockedWheelsBeforeBase, wheelsFromLock, type LockedWheelOptions, type LockedWheels } from './app/lock.js';
export { readBase, type BaseRead, type ReadBaseOptions } from './app/read-base.js';
export { BASE_INDEX_PATH, withBaseIndex } from './app/base-index.js';
export { buildDockerfile, type DockerfileBuildOptions } from './app/dockerfile-build.js';
export { buildAppImageOnDaemon, type DaemonAppOptions, type DaemonAppResult } from './app/build-on-daemon.js';

// Checks: an image's shared libraries for its wheels (check/), an image's digests and sizes (validate/).
export {
  checkWheelLibraries,
  hostPackageFinder,
  imagePackageFinder,
  libraryCheckError,
  withPackages,
  type LibraryProblem,
  type LibraryReport,
  type PackageFinder,
  type WheelLibraryCheckOptions,
} from './check/check-libraries.js';
export { readImageFiles, cachedImageFiles, type ImageFiles } from './check/image-files.js';
export { checkImageLibraries, imageVenv } from './check/check-image.js';
export { validateImage } from './validate/validate-image.js';
export { rebaseAppImage, rebaseTarget, type RebaseOptions, type RebaseResult, type RebaseTarget } from './app/rebase-app-image.js';

// Provenance (provenance/): an app image's CycloneDX SBOM, OCI 1.1 referrers (with the tag fallback), `image verify`.
export {
  CYCLONEDX_MEDIA_TYPE,
  cycloneDxSbom,
  pypiPurl,
  sbomBytes,
  type InstalledDistribution,
  type SbomOptions,
} from './provenance/sbom.js';
export { installedDistributions } from './provenance/distributions.js';
export {
  artifactManifest,
  attachReferrer,
  findReferrers,
  readArtifact,
  referrersTag,
  type AttachResult,
  type FoundReferrer,
  type ReferrerDescriptor,
} from './provenance/referrers.js';
export {
  LOCK_DIGEST_LABEL,
  verifyAppImage,
  type VerifiedDistribution,
  type VerifyProblem,
  type VerifyReport,
} from './provenance/verify.js';
