// A wheel as an OCI artifact: an image manifest (distribution 2.8 accepts it; it refuses the withdrawn artifact
// manifest type) with this project's artifactType, the empty config, the wheel and its METADATA as the two
// layers, and the store's record in annotations.
import { parseWheelFilename, type WheelEntry } from '@dstack/wheelhouse';
import { EMPTY_DIGEST, MEDIA_TYPES, type Digest } from '@dstack/oci';

export const WHEEL_ARTIFACT_TYPE = 'application/vnd.dstack-factory.wheel.v1';
export const WHEEL_MEDIA_TYPE = 'application/vnd.dstack-factory.wheel.v1+zip';
export const METADATA_MEDIA_TYPE = 'application/vnd.dstack-factory.wheel.metadata.v1';

/** The annotation keys (OCI's title and created, and this project's). */
export const ANNOTATIONS = {
  title: 'org.opencontainers.image.title',
  created: 'org.opencontainers.image.created',
  filename: 'dev.dstack-factory.wheel.filename',
  sha256: 'dev.dstack-factory.wheel.sha256',
  metadataSha256: 'dev.dstack-factory.wheel.metadata.sha256',
  requiresPython: 'dev.dstack-factory.wheel.requires-python',
  builtBy: 'dev.dstack-factory.wheel.built-by',
  needs: 'dev.dstack-factory.wheel.needs',
} as const;

interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
}

export interface WheelManifest {
  schemaVersion: 2;
  mediaType: string;
  artifactType: string;
  config: Descriptor;
  layers: Descriptor[];
  annotations: Record<string, string>;
}

/** The manifest of a wheel: its bytes as sent (the digest is of these bytes). */
export function wheelManifest(entry: WheelEntry, metadataSize: number): Buffer {
  const annotations: Record<string, string> = {
    [ANNOTATIONS.title]: entry.filename,
    [ANNOTATIONS.created]: entry.addedAt,
    [ANNOTATIONS.filename]: entry.filename,
    [ANNOTATIONS.sha256]: entry.sha256,
    [ANNOTATIONS.metadataSha256]: entry.metadataSha256,
  };
  if (entry.requiresPython !== null) annotations[ANNOTATIONS.requiresPython] = entry.requiresPython;
  if (entry.builtBy !== null) annotations[ANNOTATIONS.builtBy] = JSON.stringify(entry.builtBy);
  if (entry.needs !== undefined) annotations[ANNOTATIONS.needs] = JSON.stringify(entry.needs);
  const manifest: WheelManifest = {
    schemaVersion: 2,
    mediaType: MEDIA_TYPES.ociManifest,
    artifactType: WHEEL_ARTIFACT_TYPE,
    config: { mediaType: MEDIA_TYPES.ociEmpty, digest: EMPTY_DIGEST, size: 2 },
    layers: [
      { mediaType: WHEEL_MEDIA_TYPE, digest: `sha256:${entry.sha256}`, size: entry.size, annotations: { [ANNOTATIONS.title]: entry.filename } },
      { mediaType: METADATA_MEDIA_TYPE, digest: `sha256:${entry.metadataSha256}`, size: metadataSize, annotations: { [ANNOTATIONS.title]: `${entry.filename}.metadata` } },
    ],
    annotations,
  };
  return Buffer.from(JSON.stringify(manifest));
}

/** A wheel read back from its manifest: the entry and where its two blobs are. Throws (plain Error) when it is not one. */
export function readWheelManifest(bytes: Buffer): { entry: WheelEntry; wheel: Digest; metadata: Digest; metadataSize: number } {
  const m = JSON.parse(bytes.toString('utf8')) as Partial<WheelManifest>;
  if (m.artifactType !== WHEEL_ARTIFACT_TYPE) throw new Error(`artifactType is ${String(m.artifactType)}, not ${WHEEL_ARTIFACT_TYPE}`);
  const a = m.annotations ?? {};
  const [wheel, metadata] = m.layers ?? [];
  const filename = a[ANNOTATIONS.filename];
  if (!filename || !wheel || !metadata || wheel.mediaType !== WHEEL_MEDIA_TYPE || metadata.mediaType !== METADATA_MEDIA_TYPE) {
    throw new Error('not a wheel manifest: its file name annotation or its wheel and METADATA layers are missing');
  }
  const sha256 = a[ANNOTATIONS.sha256] ?? '';
  const metadataSha256 = a[ANNOTATIONS.metadataSha256] ?? '';
  if (wheel.digest !== `sha256:${sha256}` || metadata.digest !== `sha256:${metadataSha256}`) {
    throw new Error('its annotations and its layers name different digests');
  }
  const parsed = parseWheelFilename(filename);
  const builtBy = a[ANNOTATIONS.builtBy];
  const needs = a[ANNOTATIONS.needs];
  const entry: WheelEntry = {
    filename,
    name: parsed.normalizedName,
    version: parsed.version,
    sha256,
    size: wheel.size,
    requiresPython: a[ANNOTATIONS.requiresPython] ?? null,
    metadataSha256,
    addedAt: a[ANNOTATIONS.created] ?? '',
    builtBy: builtBy ? (JSON.parse(builtBy) as Record<string, string>) : null,
    ...(needs ? { needs: JSON.parse(needs) as string[] } : {}),
  };
  return { entry, wheel: wheel.digest as Digest, metadata: metadata.digest as Digest, metadataSize: metadata.size };
}
