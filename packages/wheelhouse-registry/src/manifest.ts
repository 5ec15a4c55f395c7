// A wheel as an OCI artifact: an image manifest (distribution 2.8 accepts it; it refuses the withdrawn artifact
// manifest type) with this project's artifactType, the empty config, the wheel and its METADATA as the two
// layers, and the store's record in annotations. A project's manifest gathers every wheel of one project (one
// GET for a reader instead of one per wheel); the wheels' own manifests stay the record it is rebuilt from.
import { parseWheelFilename, type WheelEntry } from '@dstack/wheelhouse';
import { EMPTY_DIGEST, MEDIA_TYPES, type Digest } from '@dstack/oci';

export const WHEEL_ARTIFACT_TYPE = 'application/vnd.dstack-factory.wheel.v1';
export const WHEEL_MEDIA_TYPE = 'application/vnd.dstack-factory.wheel.v1+zip';
export const METADATA_MEDIA_TYPE = 'application/vnd.dstack-factory.wheel.metadata.v1';
/** A project's manifest: every wheel of the project and its METADATA, tagged `project.<canonical name>` (tags.ts). */
export const PROJECT_ARTIFACT_TYPE = 'application/vnd.dstack-factory.project.v1';

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
  /** On a wheel's layer in its project's manifest: the wheel's own tag and manifest digest. */
  tag: 'dev.dstack-factory.wheel.tag',
  manifest: 'dev.dstack-factory.wheel.manifest',
  /** On a project's manifest: its canonical name, and the wheel tags (JSON list) it was built from. */
  project: 'dev.dstack-factory.project.name',
  projectTags: 'dev.dstack-factory.project.tags',
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

/** The store's record of a wheel as annotations (on its own manifest, and on its layer in its project's). */
function recordAnnotations(entry: WheelEntry): Record<string, string> {
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
  return annotations;
}

const layersOf = (entry: WheelEntry, metadataSize: number): [Descriptor, Descriptor] => [
  { mediaType: WHEEL_MEDIA_TYPE, digest: `sha256:${entry.sha256}`, size: entry.size, annotations: { [ANNOTATIONS.title]: entry.filename } },
  { mediaType: METADATA_MEDIA_TYPE, digest: `sha256:${entry.metadataSha256}`, size: metadataSize, annotations: { [ANNOTATIONS.title]: `${entry.filename}.metadata` } },
];

/** The manifest of a wheel: its bytes as sent (the digest is of these bytes). */
export function wheelManifest(entry: WheelEntry, metadataSize: number): Buffer {
  const manifest: WheelManifest = {
    schemaVersion: 2,
    mediaType: MEDIA_TYPES.ociManifest,
    artifactType: WHEEL_ARTIFACT_TYPE,
    config: { mediaType: MEDIA_TYPES.ociEmpty, digest: EMPTY_DIGEST, size: 2 },
    layers: layersOf(entry, metadataSize),
    annotations: recordAnnotations(entry),
  };
  return Buffer.from(JSON.stringify(manifest));
}

type WheelRecord = { entry: WheelEntry; wheel: Digest; metadata: Digest; metadataSize: number };

/** A wheel's record from its annotations and its two layers. Throws (plain Error) when they are not a wheel's. */
function recordOf(a: Record<string, string>, wheel: Descriptor | undefined, metadata: Descriptor | undefined): WheelRecord {
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

/** A wheel read back from its manifest: the entry and where its two blobs are. Throws (plain Error) when it is not one. */
export function readWheelManifest(bytes: Buffer): WheelRecord {
  const m = JSON.parse(bytes.toString('utf8')) as Partial<WheelManifest>;
  if (m.artifactType !== WHEEL_ARTIFACT_TYPE) throw new Error(`artifactType is ${String(m.artifactType)}, not ${WHEEL_ARTIFACT_TYPE}`);
  const [wheel, metadata] = m.layers ?? [];
  return recordOf(m.annotations ?? {}, wheel, metadata);
}

/** A wheel as its project's manifest holds it: its own manifest's tag and digest, and its record. */
export type ProjectWheel = WheelRecord & { tag: string; digest: Digest };

/**
 * The manifest of a project: every wheel of it (two layers each, the wheel's carrying the wheel's record, its
 * tag and its own manifest's digest) and, in `dev.dstack-factory.project.tags`, the wheel tags it was built from
 * (a tag whose manifest is not a wheel's is among them, without layers). Layers in tag order, no timestamp: the
 * same tags give the same bytes.
 */
export function projectManifest(name: string, tags: string[], wheels: ProjectWheel[]): Buffer {
  const layers = [...wheels]
    .sort((a, b) => (a.tag < b.tag ? -1 : a.tag > b.tag ? 1 : 0))
    .flatMap((w) => {
      const [wheel, metadata] = layersOf(w.entry, w.metadataSize);
      wheel.annotations = { ...recordAnnotations(w.entry), [ANNOTATIONS.tag]: w.tag, [ANNOTATIONS.manifest]: w.digest };
      return [wheel, metadata];
    });
  const manifest: WheelManifest = {
    schemaVersion: 2,
    mediaType: MEDIA_TYPES.ociManifest,
    artifactType: PROJECT_ARTIFACT_TYPE,
    config: { mediaType: MEDIA_TYPES.ociEmpty, digest: EMPTY_DIGEST, size: 2 },
    layers,
    annotations: { [ANNOTATIONS.title]: name, [ANNOTATIONS.project]: name, [ANNOTATIONS.projectTags]: JSON.stringify([...tags].sort()) },
  };
  return Buffer.from(JSON.stringify(manifest));
}

/** A project's manifest read back: its name, the tags it was built from, its wheels. Throws (plain Error) when it is not one. */
export function readProjectManifest(bytes: Buffer): { name: string; tags: string[]; wheels: ProjectWheel[] } {
  const m = JSON.parse(bytes.toString('utf8')) as Partial<WheelManifest>;
  if (m.artifactType !== PROJECT_ARTIFACT_TYPE) throw new Error(`artifactType is ${String(m.artifactType)}, not ${PROJECT_ARTIFACT_TYPE}`);
  const a = m.annotations ?? {};
  const tags = JSON.parse(a[ANNOTATIONS.projectTags] ?? 'null') as unknown;
  if (!Array.isArray(tags) || !tags.every((t) => typeof t === 'string')) throw new Error(`its ${ANNOTATIONS.projectTags} annotation is not a list of tags`);
  const layers = m.layers ?? [];
  const wheels: ProjectWheel[] = [];
  for (let i = 0; i < layers.length; i += 2) {
    const la = layers[i]!.annotations ?? {};
    const tag = la[ANNOTATIONS.tag];
    const digest = la[ANNOTATIONS.manifest];
    if (!tag || !digest || !/^sha256:[0-9a-f]{64}$/.test(digest)) throw new Error(`layer ${i} names no wheel tag or manifest digest`);
    wheels.push({ ...recordOf(la, layers[i], layers[i + 1]), tag, digest: digest as Digest });
  }
  return { name: a[ANNOTATIONS.project] ?? '', tags: tags as string[], wheels };
}
