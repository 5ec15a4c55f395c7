export { ImageError, RegistryError } from './errors.js';
export { isDigest, sha256Digest, HashingStream, type Digest } from './core/digest.js';
export { BlobCache, BlobWriter } from './cache/blob-cache.js';
export { pruneCache, type PruneResult } from './cache/prune.js';
export { MEDIA_TYPES, type Compression, type Layer, type LayerDescriptor } from './core/layer.js';
export { CachedLayer } from './cache/blob-cache.js';
export { writeLayer, packEntries, planEntries, sourceDateEpoch, type LayerEntry, type LayerSink, type WriteLayerOptions } from './layers/write-layer.js';
export { readAll } from './core/streams.js';
export { FileLayer } from './core/file-layer.js';
export { Image, type ContainerConfig, type Descriptor, type HistoryEntry, type ImageConfigFile, type Manifest, type ManifestFormat, type SerializedManifest } from './core/image.js';
export { appendLayers, mutateConfig, emptyImage, type Addendum } from './core/mutate.js';
export { validateImage } from './validate/validate-image.js';
export { readOciLayout, choosePlatform } from './sources/oci-layout.js';
export { writeOciLayout } from './sinks/oci-layout.js';
export { REF_NAME_ANNOTATION } from './core/layer.js';
export { dockerArchiveStream, writeDockerArchive } from './sinks/docker-archive.js';
export { readDockerArchive, readDockerArchiveStream, type DockerSaveManifestEntry } from './sources/docker-archive.js';
export { parseReference, formatReference, registryScheme, type ImageReference } from './distribution/reference.js';
export { RegistryClient, parseChallenge, type RegistryClientOptions, type RegistryCredentials } from './distribution/client.js';
export { RegistryLayer, readRegistryImage } from './sources/registry.js';
export { pushImage, type PushEvent, type PushOptions } from './sinks/registry.js';
export { readDaemonImage } from './sources/daemon.js';
export { loadIntoDaemon, layersInDaemon } from './sinks/daemon.js';
export { inspectBase, type BaseInfo } from './layers/base-info.js';
export { runtimeEntries, addUser, type RuntimeLayerOptions } from './layers/runtime-venv.js';
export { sourceEntries, parseDockerignore, isIgnored, type SourceLayerOptions } from './layers/app-source.js';
export { planWheelInstall, schemePaths, consoleScript, parseEntryPoints, recordHash, type InstallOptions, type PlannedWheel, type VenvScheme } from './layers/wheels/install.js';
export { writeWheelsLayer, type WheelsLayerOptions } from './layers/wheels/wheels-layer.js';
export { writeSegmentedWheelsLayer, checkSha256, type SegmentedLayerOptions, type SegmentedWheel } from './layers/wheels/segments.js';
export { buildAppImage, type AppImageOptions, type AppImageResult, type AppInput, type ImageLogger, type LayerReport, type WheelInput } from './app/build-app-image.js';
export { wheelsFromLock, baseMarkers, wheelFitsBase, type LockedWheels } from './app/lock.js';
export { buildDockerfile, packBuildContext, type DockerfileBuildOptions } from './app/dockerfile-build.js';
export { buildAppImageOnDaemon, pinFromWheel, type DaemonAppOptions, type DaemonAppResult } from './app/build-on-daemon.js';
export { openImage, type SourceOptions } from './sources/open-image.js';
export { writeImage, type SinkOptions, type SinkResult } from './sinks/write-image.js';
export { parseImageSpec, type ImageSpec } from './core/image-spec.js';
export {
  checkWheelLibraries,
  hostPackageFinder,
  imagePackageFinder,
  libraryCheckError,
  type LibraryProblem,
  type LibraryReport,
  type PackageFinder,
  type WheelLibraryCheckOptions,
} from './check/check-libraries.js';
export { readImageFiles, type ImageFiles } from './check/image-files.js';
