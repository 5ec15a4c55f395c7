// The public API of @dstack/wheelhouse-registry: a WheelStore in an OCI registry, and copying wheels between
// stores. The list is recorded in packages/wheelhouse-registry/api.md (tools/docs/api-report).
export { RegistryWheelStore, parseRegistryLocation, type RegistryWheelStoreOptions } from './registry-store.js';
export { copyWheels, type CopyEvent, type CopyOptions, type CopyResult } from './copy.js';
export { isRegistryLocation, openWheelStore, storeLocation } from './open-store.js';
export { wheelTag } from './tags.js';
export { ANNOTATIONS, METADATA_MEDIA_TYPE, PROJECT_ARTIFACT_TYPE, WHEEL_ARTIFACT_TYPE, WHEEL_MEDIA_TYPE } from './manifest.js';
export { projectTag } from './tags.js';
