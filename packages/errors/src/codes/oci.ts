import type { CodeEntry } from './entry.js';

/** The codes @dstack/oci throws: a bad image reference (OciError), and a registry's answers (RegistryError). */
export const OCI_CODES = {
  IMAGE_REFERENCE_INVALID: {
    summary: 'An image reference has a bad repository name, tag or digest.',
    hint: 'Write it as [registry/]repository[:tag][@sha256:…], lower-case repository names.',
  },
  REGISTRY_UNREACHABLE: {
    summary: 'The registry (or its token service) could not be reached.',
    hint: 'Check the address and the network; the request is retried as the error is temporary.',
  },
  REGISTRY_UNAUTHORIZED: {
    summary: 'The registry refused the credentials, or asked for some that were not given.',
    hint: 'Log in to the registry (docker login writes ~/.docker/config.json) or give credentials.',
  },
  REGISTRY_NOT_FOUND: {
    summary: 'The registry has no such repository, manifest or blob.',
    hint: 'Check the reference; push the image first.',
  },
  REGISTRY_DIGEST_INVALID: {
    summary: 'The registry sent, or says it stored, content whose digest differs from the one asked for.',
    hint: 'The registry or a proxy changed the content: retrying will not help; check what sits in between.',
  },
  REGISTRY_BLOB_UPLOAD_INVALID: {
    summary: 'The registry refused a blob upload as invalid.',
    hint: 'Push again; if it persists, the registry and this tool disagree on the upload protocol.',
  },
  REGISTRY_SIZE_INVALID: {
    summary: 'The registry says a blob does not have the size it was announced with.',
    hint: 'Push again; the upload was cut or changed on the way.',
  },
  REGISTRY_MANIFEST_BLOB_UNKNOWN: {
    summary: 'The registry refused a manifest naming a blob it does not hold.',
    hint: 'Push the layers and config before the manifest (a push does); push again.',
  },
  REGISTRY_MANIFEST_INVALID: {
    summary: 'The registry refused a manifest as invalid.',
    hint: 'The registry may not accept this media type (OCI vs Docker v2); try the other format.',
  },
  REGISTRY_ERROR: {
    summary: 'The registry answered with an error not covered by another code.',
    hint: 'The message carries the HTTP status and the registry\'s own message.',
  },
} as const satisfies Record<string, CodeEntry>;

/** What @dstack/oci throws. */
export type OciErrorCode = keyof typeof OCI_CODES;

/** The codes of a registry's answers (RegistryError). */
export type RegistryErrorCode = Extract<OciErrorCode, `REGISTRY_${string}`>;
