// The public API of @dstack/oci: the OCI distribution API client @dstack/image (images) and @dstack/wheelhouse's
// users (wheels as OCI artifacts) share. The list is recorded in packages/oci/api.md (tools/docs/api-report).

export { OciError, RegistryError } from './errors.js';
export { formatReference, parseReference, registryScheme, type ImageReference } from './reference.js';
export { EMPTY_DIGEST, MEDIA_TYPES } from './media-types.js';
export {
  MANIFEST_ACCEPT,
  type Challenge,
  parseChallenge,
  RegistryClient,
  type Digest,
  type ManifestBytes,
  type RegistryClientOptions,
  type RegistryCredentials,
} from './client.js';
export { DOCKER_HUB_AUTH_KEY, dockerConfigAuths, dockerConfigCredentials } from './credentials.js';
