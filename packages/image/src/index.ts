export { ImageError, RegistryError } from './errors.js';
export { isDigest, sha256Digest, HashingStream, type Digest } from './digest.js';
export { BlobCache, BlobWriter, pruneCache, type PruneResult } from './blobs.js';
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
} from './layer.js';
export { FileLayer } from './file-layer.js';
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
} from './image.js';
export { readOciLayout, writeOciLayout, choosePlatform, REF_NAME_ANNOTATION } from './oci-layout.js';
export {
  dockerArchiveStream,
  writeDockerArchive,
  readDockerArchive,
  readDockerArchiveStream,
  type DockerSaveManifestEntry,
} from './docker-archive.js';
export { parseReference, formatReference, registryScheme, type ImageReference } from './reference.js';
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
} from './registry.js';
export { readEngineImage, loadIntoEngine, layersInEngine } from './engine.js';
export { inspectBase, type BaseInfo } from './base.js';
export { runtimeEntries, addUser, type RuntimeLayerOptions } from './runtime-layer.js';
export { sourceEntries, parseDockerignore, isIgnored, type SourceLayerOptions } from './source-layer.js';
export {
  planWheelInstall,
  schemePaths,
  consoleScript,
  parseEntryPoints,
  recordHash,
  type InstallOptions,
  type PlannedWheel,
  type VenvScheme,
} from './wheel-install.js';
export { writeWheelsLayer, type WheelsLayerOptions } from './wheels-layer.js';
export { writeSegmentedWheelsLayer, checkSha256, type SegmentedLayerOptions, type SegmentedWheel } from './segments.js';
export {
  buildAppImage,
  type AppImageOptions,
  type AppImageResult,
  type AppInput,
  type ImageLogger,
  type LayerReport,
  type WheelInput,
} from './build.js';
export { wheelsFromLock, baseMarkers, wheelFitsBase, type LockedWheels } from './lock.js';
export { buildDockerfile, packBuildContext, type DockerfileBuildOptions } from './dockerfile-build.js';
export { buildAppImageOnEngine, pinFromWheel, type EngineAppOptions, type EngineAppResult } from './app-engine.js';
export { openImage, writeImage, parseImageSpec, type ImageSpec, type SourceOptions, type SinkOptions, type SinkResult } from './spec.js';
