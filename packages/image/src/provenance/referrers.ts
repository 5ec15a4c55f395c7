// OCI 1.1 referrers: an artifact (an SBOM) attached to an image manifest through its `subject`, found through the
// referrers API, or — on registries without it, such as distribution 2.8, which answers 404 there — through the
// referrers tag schema: an image index under the tag `sha256-<hex of the subject digest>` listing the referrers.
import { Readable } from 'node:stream';
import { EMPTY_DIGEST, MEDIA_TYPES, RegistryError, type ImageReference, type RegistryClient } from '@dstack/oci';
import { sha256Digest, type Digest } from '../core/digest.js';
import type { Descriptor } from '../core/image.js';

export interface ReferrerDescriptor extends Descriptor {
  artifactType?: string;
}

interface IndexDoc {
  schemaVersion: 2;
  mediaType: string;
  manifests: ReferrerDescriptor[];
}

/** The referrers tag schema's tag for a subject digest: `sha256-<hex>`. */
export function referrersTag(subject: Digest): string {
  return subject.replace(':', '-');
}

/** The artifact manifest of one blob attached to `subject` (OCI 1.1: artifactType, the empty config, subject). */
export function artifactManifest(options: {
  artifactType: string;
  blob: { digest: Digest; size: number };
  subject: Descriptor;
  annotations?: Record<string, string>;
}): { bytes: Buffer; digest: Digest; descriptor: ReferrerDescriptor } {
  const manifest = {
    schemaVersion: 2,
    mediaType: MEDIA_TYPES.ociManifest,
    artifactType: options.artifactType,
    config: { mediaType: MEDIA_TYPES.ociEmpty, digest: EMPTY_DIGEST, size: 2 },
    layers: [{ mediaType: options.artifactType, digest: options.blob.digest, size: options.blob.size }],
    subject: { mediaType: options.subject.mediaType, digest: options.subject.digest, size: options.subject.size },
    ...(options.annotations && Object.keys(options.annotations).length ? { annotations: options.annotations } : {}),
  };
  const bytes = Buffer.from(JSON.stringify(manifest));
  const digest = sha256Digest(bytes);
  return {
    bytes,
    digest,
    descriptor: {
      mediaType: MEDIA_TYPES.ociManifest,
      digest,
      size: bytes.length,
      artifactType: options.artifactType,
      ...(manifest.annotations ? { annotations: manifest.annotations } : {}),
    },
  };
}

/** The referrers API's answer for `subject` (an image index), or null when the registry has no referrers API (404). */
async function referrersApi(client: RegistryClient, ref: ImageReference, subject: Digest): Promise<IndexDoc | null> {
  return client.retry(`GET referrers ${subject}`, async () => {
    const res = await client.request(ref, 'GET', `/v2/${ref.repository}/referrers/${subject}`, { headers: { accept: MEDIA_TYPES.ociIndex } });
    if (res.status === 404) {
      await res.arrayBuffer().catch(() => undefined);
      return null;
    }
    if (!res.ok) return client.fail(res, `GET ${ref.registry}/${ref.repository} referrers of ${subject}`);
    const body = (await res.json()) as Partial<IndexDoc>;
    // A registry that serves something else on that path (an HTML page, a 200 without an index) has no such API.
    return body.mediaType === MEDIA_TYPES.ociIndex || Array.isArray(body.manifests) ? { schemaVersion: 2, mediaType: MEDIA_TYPES.ociIndex, manifests: body.manifests ?? [] } : null;
  });
}

/** The index under the referrers tag, or an empty one when the tag does not exist yet. */
async function tagIndex(client: RegistryClient, ref: ImageReference, subject: Digest): Promise<IndexDoc> {
  try {
    const m = await client.getManifest(ref, referrersTag(subject), MEDIA_TYPES.ociIndex);
    const doc = JSON.parse(m.bytes.toString('utf8')) as Partial<IndexDoc>;
    return { schemaVersion: 2, mediaType: MEDIA_TYPES.ociIndex, manifests: doc.manifests ?? [] };
  } catch (err) {
    if (err instanceof RegistryError && err.code === 'REGISTRY_NOT_FOUND') return { schemaVersion: 2, mediaType: MEDIA_TYPES.ociIndex, manifests: [] };
    throw err;
  }
}

export interface AttachResult {
  /** The artifact manifest's digest. */
  digest: Digest;
  /** How a reader finds it: the registry's referrers API, or the `sha256-<hex>` tag (set here). */
  via: 'referrers-api' | 'tag';
  tag?: string;
}

/**
 * Pushes `content` as an OCI 1.1 artifact whose subject is the image manifest `subject` in `ref`'s repository:
 * the empty config and the blob, then the artifact manifest by digest. When the registry's referrers API does not
 * list it (none there: 404), the referrers tag `sha256-<hex>` gets an image index with it added (other referrers kept).
 */
export async function attachReferrer(
  client: RegistryClient,
  ref: ImageReference,
  options: { subject: Descriptor; artifactType: string; content: Buffer; annotations?: Record<string, string> },
): Promise<AttachResult> {
  const empty = Buffer.from('{}');
  if (!(await client.blobExists(ref, EMPTY_DIGEST, { push: true }))) {
    await client.uploadBlob(ref, EMPTY_DIGEST, empty.length, async () => Readable.from([empty]));
  }
  const blob = { digest: sha256Digest(options.content), size: options.content.length };
  if (!(await client.blobExists(ref, blob.digest, { push: true }))) {
    await client.uploadBlob(ref, blob.digest, blob.size, async () => Readable.from([options.content]));
  }
  const artifact = artifactManifest({ artifactType: options.artifactType, blob, subject: options.subject, ...(options.annotations ? { annotations: options.annotations } : {}) });
  await client.putManifest(ref, artifact.digest, { mediaType: MEDIA_TYPES.ociManifest, bytes: artifact.bytes, digest: artifact.digest });
  const api = await referrersApi(client, ref, options.subject.digest);
  if (api?.manifests.some((m) => m.digest === artifact.digest)) return { digest: artifact.digest, via: 'referrers-api' };
  const tag = referrersTag(options.subject.digest);
  const index = await tagIndex(client, ref, options.subject.digest);
  index.manifests = [...index.manifests.filter((m) => m.digest !== artifact.digest), artifact.descriptor];
  await client.putManifest(ref, tag, { mediaType: MEDIA_TYPES.ociIndex, bytes: Buffer.from(JSON.stringify(index)) });
  return { digest: artifact.digest, via: 'tag', tag };
}

export interface FoundReferrer {
  descriptor: ReferrerDescriptor;
  via: 'referrers-api' | 'tag';
}

/** The referrers of `subject` of one artifact type: through the referrers API, else the referrers tag. */
export async function findReferrers(client: RegistryClient, ref: ImageReference, subject: Digest, artifactType: string): Promise<FoundReferrer[]> {
  const api = await referrersApi(client, ref, subject);
  const [index, via] = api ? [api, 'referrers-api' as const] : [await tagIndex(client, ref, subject), 'tag' as const];
  return index.manifests.filter((m) => m.artifactType === artifactType).map((descriptor) => ({ descriptor, via }));
}

/** The one blob of an artifact manifest (e.g. the SBOM), checked against its digest. */
export async function readArtifact(client: RegistryClient, ref: ImageReference, manifest: Digest): Promise<{ content: Buffer; mediaType: string; subject: Digest | null }> {
  const m = await client.getManifest(ref, manifest, MEDIA_TYPES.ociManifest);
  const doc = JSON.parse(m.bytes.toString('utf8')) as { layers?: Descriptor[]; subject?: Descriptor };
  const layer = doc.layers?.[0];
  if (!layer) throw new RegistryError('REGISTRY_ERROR', `${ref.registry}/${ref.repository}@${manifest}: an artifact manifest without a blob`);
  return { content: await client.readBlob(ref, layer.digest, 'artifact'), mediaType: layer.mediaType, subject: doc.subject?.digest ?? null };
}
