export { ImageError, RegistryError } from './errors.js';
export { isDigest, sha256Digest, HashingStream, type Digest } from './core/digest.js';
export { BlobCache, BlobWriter, pruneCache, type PruneResult } from './cache/blob-cache.js';
export {
  MEDIA_TYPES,
  CachedLayer,
  writeLayer,
  packEntries,
  planEntries,
  sourceDateEpoch,
  readAll,
  type Compression,
  type Layer,
  type LayerDescriptor,
  type LayerEntry,
  type LayerSink,
  type WriteLayerOptions,
} from './layers/write-layer.js';
export { FileLayer } from './core/file-layer.js';
export {
  Image,
  appendLayers,
  mutateConfig,
  emptyImage,
  validateImage,
  type Addendum,
  type ContainerConfig,
  type Descriptor,
  type HistoryEntry,
  type ImageConfigFile,
  type Manifest,
  type ManifestFormat,
  type SerializedManifest,
} from './core/image.js';
export { readOciLayout, writeOciLayout, choosePlatform, REF_NAME_ANNOTATION } from './sources/oci-layout.js';
export {
  dockerArchiveStream,
  writeDockerArchive,
  readDockerArchive,
  readDockerArchiveStream,
  type DockerSaveManifestEntry,
} from './sources/docker-archive.js';
export { parseReference, formatReference, registryScheme, type ImageReference } from './distribution/reference.js';
export {
  RegistryClient,
  RegistryLayer,
  pushImage,
  readRegistryImage,
  parseChallenge,
  type PushEvent,
  type PushOptions,
  type RegistryClientOptions,
  type RegistryCredentials,
} from './distribution/client.js';
export { readEngineImage, loadIntoEngine, layersInEngine } from './sources/daemon.js';
export { inspectBase, type BaseInfo } from './layers/base-info.js';
export { runtimeEntries, addUser, type RuntimeLayerOptions } from './layers/runtime-venv.js';
export { sourceEntries, parseDockerignore, isIgnored, type SourceLayerOptions } from './layers/app-source.js';
export {
  planWheelInstall,
  schemePaths,
  consoleScript,
  parseEntryPoints,
  recordHash,
  type InstallOptions,
  type PlannedWheel,
  type VenvScheme,
} from './layers/wheels/install.js';
export { writeWheelsLayer, type WheelsLayerOptions } from './layers/wheels/wheels-layer.js';
export { writeSegmentedWheelsLayer, checkSha256, type SegmentedLayerOptions, type SegmentedWheel } from './layers/wheels/segments.js';
export {
  buildAppImage,
  type AppImageOptions,
  type AppImageResult,
  type AppInput,
  type ImageLogger,
  type LayerReport,
  type WheelInput,
} from './app/build-app-image.js';
export { wheelsFromLock, baseMarkers, wheelFitsBase, type LockedWheels } from './app/lock.js';
export { buildDockerfile, packBuildContext, type DockerfileBuildOptions } from './app/dockerfile-build.js';
export { buildAppImageOnEngine, pinFromWheel, type EngineAppOptions, type EngineAppResult } from './app/build-on-daemon.js';
export { openImage, writeImage, parseImageSpec, type ImageSpec, type SourceOptions, type SinkOptions, type SinkResult } from './sources/open-image.js';
