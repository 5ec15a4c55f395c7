export { ImageError, RegistryError } from './errors.js';
export { isDigest, sha256Digest, HashingStream, type Digest } from './digest.js';
export { BlobCache } from './blobs.js';
export {
  MEDIA_TYPES,
  CachedLayer,
  writeLayer,
  planEntries,
  sourceDateEpoch,
  readAll,
  type Layer,
  type LayerDescriptor,
  type LayerEntry,
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
