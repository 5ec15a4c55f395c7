// Image references (registry/repository:tag@digest) and the scheme a registry is reached with.
import { OciError } from './errors.js';

/** A parsed image reference: registry host, repository, and a tag or digest. */
export interface ImageReference {
  /** "127.0.0.1:5077", "registry-1.docker.io". */
  registry: string;
  /** "library/python", "team/app". */
  repository: string;
  tag: string | null;
  digest: string | null;
}

const DOCKER_HUB = 'registry-1.docker.io';

/** Parses `[host[:port]/]name[:tag][@sha256:…]` the way Docker does (docker.io and library/ defaults). */
export function parseReference(ref: string): ImageReference {
  let rest = ref.trim();
  let digest: string | null = null;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!/^sha256:[0-9a-f]{64}$/.test(digest)) throw new OciError('IMAGE_REFERENCE_INVALID', `bad digest in image reference ${ref}`);
  }
  let registry = DOCKER_HUB;
  const slash = rest.indexOf('/');
  if (slash >= 0) {
    const first = rest.slice(0, slash);
    if (first.includes('.') || first.includes(':') || first === 'localhost') {
      registry = first === 'docker.io' || first === 'index.docker.io' ? DOCKER_HUB : first;
      rest = rest.slice(slash + 1);
    }
  }
  let tag: string | null = null;
  const colon = rest.lastIndexOf(':');
  if (colon >= 0) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
  }
  if (!digest && !tag) tag = 'latest';
  if (registry === DOCKER_HUB && !rest.includes('/')) rest = `library/${rest}`;
  if (!/^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$/.test(rest)) {
    throw new OciError('IMAGE_REFERENCE_INVALID', `bad repository name in image reference ${ref}`);
  }
  if (tag !== null && !/^[\w][\w.-]{0,127}$/.test(tag)) throw new OciError('IMAGE_REFERENCE_INVALID', `bad tag in image reference ${ref}`);
  return { registry, repository: rest, tag, digest };
}

export function formatReference(r: ImageReference): string {
  return `${r.registry}/${r.repository}${r.tag ? `:${r.tag}` : ''}${r.digest ? `@${r.digest}` : ''}`;
}

/** Loopback registries speak plain HTTP (as Docker treats 127.0.0.0/8 as insecure); others HTTPS unless named. */
export function registryScheme(registry: string, insecure: string[] = []): 'http' | 'https' {
  const host = registry.replace(/:\d+$/, '');
  if (/^127\.\d+\.\d+\.\d+$/.test(host) || host === 'localhost' || host === '[::1]') return 'http';
  return insecure.includes(registry) || insecure.includes(host) ? 'http' : 'https';
}
