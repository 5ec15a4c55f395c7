// Where an image lives, as the CLI and openImage/writeImage name it: docker:, oci:, archive:, registry:.
import { ImageError } from '../errors.js';

/** Where an image comes from or goes: `docker:NAME`, `oci:DIR[:REF]`, `archive:FILE`, `registry:REF` (or a bare REF). */
export type ImageSpec =
  | { kind: 'docker'; name: string }
  | { kind: 'oci'; dir: string; ref: string | null }
  | { kind: 'archive'; file: string }
  | { kind: 'registry'; ref: string };

export function parseImageSpec(spec: string): ImageSpec {
  const m = /^(docker|docker-daemon|oci|archive|docker-archive|registry|docker-registry):(.*)$/.exec(spec);
  if (!m) return { kind: 'registry', ref: spec };
  const [, kind, rest] = m as unknown as [string, string, string];
  if (rest === '') throw new ImageError('IMAGE_SPEC_INVALID', `nothing after "${kind}:" in ${spec}`);
  switch (kind) {
    case 'docker':
    case 'docker-daemon':
      return { kind: 'docker', name: rest };
    case 'oci': {
      const colon = rest.lastIndexOf(':');
      return colon > 0 ? { kind: 'oci', dir: rest.slice(0, colon), ref: rest.slice(colon + 1) } : { kind: 'oci', dir: rest, ref: null };
    }
    case 'archive':
    case 'docker-archive':
      return { kind: 'archive', file: rest };
    default:
      return { kind: 'registry', ref: rest.replace(/^\/\//, '') };
  }
}

