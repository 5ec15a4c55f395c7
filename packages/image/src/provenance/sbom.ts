// An app image's SBOM: CycloneDX 1.6 JSON, one component per installed distribution (the lock's wheels and the
// venv's pip), each with its PURL, the wheel's sha256, what the wheel was built from, who built it, and the layer
// that holds it. Deterministic: the same image and records give the same bytes.
import { createHash } from 'node:crypto';
import { canonicalizeName } from '@dstack/recipe';
import type { WheelSource } from '@dstack/wheelhouse';
import type { Digest } from '../core/digest.js';

/** The SBOM's media type (an OCI artifact's artifactType, the file's content). */
export const CYCLONEDX_MEDIA_TYPE = 'application/vnd.cyclonedx+json';

/** One distribution installed in an app image, and where its wheel came from. */
export interface InstalledDistribution {
  /** Canonical (PEP 503) name. */
  name: string;
  version: string;
  /** The wheel's file name. */
  wheel: string;
  /** Hex sha256 of the wheel. */
  sha256: string;
  /** The layer its files are in, and that layer's role in the app image. */
  layer: Digest;
  role: 'dependencies' | 'app';
  /** Names (canonical) of the distributions of the image it requires, when the lock says. */
  dependencies?: string[];
  /** What the wheel was built (or fetched) from: the lock's record, else the wheelhouse's. */
  source?: WheelSource | null;
  /** Who built it (executor, interpreter, target, factory image id): the wheelhouse's record. */
  builtBy?: Record<string, string> | null;
}

export interface SbomOptions {
  /** The digest the image is known by where it was written (registry / OCI layout manifest). */
  digest: Digest;
  /** A name for the image (the output it was written to). */
  name: string;
  /** The image's creation time (its config's `created`): the SBOM's timestamp. */
  created?: string;
  distributions: InstalledDistribution[];
  /** More facts on the image itself (e.g. the lock digest label, the layers). */
  properties?: Record<string, string>;
  /** The producing tool's version. */
  toolVersion?: string;
}

interface Property {
  name: string;
  value: string;
}

/** PURL of a Python distribution (purl-spec's pypi type: lower case, `_` as `-`). */
export function pypiPurl(name: string, version: string): string {
  const n = canonicalizeName(name).replace(/_/g, '-');
  return `pkg:pypi/${encodeURIComponent(n)}@${encodeURIComponent(version)}`;
}

/** RFC 9562 version 5 (SHA-1, name-based) UUID of `name` in the URL namespace: a stable serial number per image. */
function uuidV5(name: string): string {
  const namespace = Buffer.from('6ba7b8119dad11d180b400c04fd430c8', 'hex');
  const h = createHash('sha1').update(namespace).update(name).digest();
  h[6] = (h[6]! & 0x0f) | 0x50;
  h[8] = (h[8]! & 0x3f) | 0x80;
  const x = h.subarray(0, 16).toString('hex');
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20, 32)}`;
}

const sha256Hash = (hex: string) => ({ alg: 'SHA-256', content: hex });

function sourceFacts(source: WheelSource | null | undefined): { refs: object[]; props: Property[] } {
  if (!source) return { refs: [], props: [] };
  const p = (name: string, value: string | undefined): Property[] => (value ? [{ name: `dstack-factory:source.${name}`, value }] : []);
  switch (source.kind) {
    case 'sdist':
      return {
        refs: [{ type: 'source-distribution', url: source.url, ...(source.sha256 ? { hashes: [sha256Hash(source.sha256)] } : {}) }],
        props: [...p('kind', 'sdist'), ...p('url', source.url), ...p('sha256', source.sha256 ?? undefined)],
      };
    case 'vcs':
      return {
        refs: [{ type: 'vcs', url: `${source.vcs}+${source.url}@${source.commit}`, comment: `commit ${source.commit}` }],
        props: [
          ...p('kind', 'vcs'),
          ...p('vcs', source.vcs),
          ...p('url', source.url),
          ...p('commit', source.commit),
          ...p('requestedRevision', source.requestedRevision),
          ...p('subdirectory', source.subdirectory),
        ],
      };
    case 'directory':
      return { refs: [], props: [...p('kind', 'directory'), ...p('path', source.path), ...p('subdirectory', source.subdirectory)] };
    case 'wheel':
      return { refs: [{ type: 'distribution', url: source.url }], props: [...p('kind', 'wheel'), ...p('url', source.url)] };
  }
}

/**
 * The CycloneDX 1.6 SBOM of an app image. Components are the installed distributions, sorted by name, each
 * `pkg:pypi/NAME@VERSION` with the wheel's SHA-256 as its hash, the sdist (with its hash) or VCS checkout as an
 * external reference, and `dstack-factory:*` properties: the wheel's file name, the layer digest and role, the
 * source's fields and the builder's (`dstack-factory:built-by.<key>`). The metadata component is the image
 * (type container, version = its digest). Dependencies follow the lock.
 */
export function cycloneDxSbom(options: SbomOptions): Record<string, unknown> {
  const dists = [...options.distributions].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : a.version < b.version ? -1 : 1));
  const refOf = new Map(dists.map((d) => [d.name, pypiPurl(d.name, d.version)]));
  const imageRef = `image@${options.digest}`;
  const components = dists.map((d) => {
    const { refs, props } = sourceFacts(d.source);
    const builder = Object.entries(d.builtBy ?? {})
      .sort(([a], [b]) => (a < b ? -1 : 1))
      .map(([k, v]) => ({ name: `dstack-factory:built-by.${k}`, value: v }));
    return {
      type: 'library',
      'bom-ref': refOf.get(d.name),
      name: d.name,
      version: d.version,
      hashes: [sha256Hash(d.sha256)],
      purl: refOf.get(d.name),
      ...(refs.length ? { externalReferences: refs } : {}),
      properties: [
        { name: 'dstack-factory:wheel', value: d.wheel },
        { name: 'dstack-factory:layer', value: d.layer },
        { name: 'dstack-factory:layer.role', value: d.role },
        ...props,
        ...builder,
      ],
    };
  });
  const dependencies = [
    { ref: imageRef, dependsOn: dists.map((d) => refOf.get(d.name)!) },
    ...dists.map((d) => ({
      ref: refOf.get(d.name)!,
      dependsOn: [...new Set(d.dependencies ?? [])].filter((n) => refOf.has(n)).sort().map((n) => refOf.get(n)!),
    })),
  ];
  const imageProps = Object.entries(options.properties ?? {})
    .sort(([a], [b]) => (a < b ? -1 : 1))
    .map(([name, value]) => ({ name, value }));
  return {
    $schema: 'http://cyclonedx.org/schema/bom-1.6.schema.json',
    bomFormat: 'CycloneDX',
    specVersion: '1.6',
    serialNumber: `urn:uuid:${uuidV5(`oci:${options.digest}`)}`,
    version: 1,
    metadata: {
      ...(options.created ? { timestamp: options.created } : {}),
      tools: { components: [{ type: 'application', name: 'dstack-factory', ...(options.toolVersion ? { version: options.toolVersion } : {}) }] },
      component: {
        type: 'container',
        'bom-ref': imageRef,
        name: options.name,
        version: options.digest,
        hashes: [sha256Hash(options.digest.slice('sha256:'.length))],
        ...(imageProps.length ? { properties: imageProps } : {}),
      },
    },
    components,
    dependencies,
  };
}

/** The SBOM's bytes as written to files and registries: JSON, two-space indented, a final newline. */
export function sbomBytes(sbom: Record<string, unknown>): Buffer {
  return Buffer.from(`${JSON.stringify(sbom, null, 2)}\n`);
}
