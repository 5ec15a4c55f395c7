// Platforms as OCI names them (os/architecture[/variant]): parsed from `--platform`, read from configs and indexes.
import { ImageError } from '../errors.js';
import type { Image } from './image.js';

export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
}

/** Parses `linux/arm64`, `linux/arm64/v8`, `linux/arm/v7`. */
export function parsePlatform(text: string): Platform {
  const m = /^([a-z0-9]+)\/([a-z0-9_]+)(?:\/([a-z0-9]+))?$/.exec(text.trim());
  if (!m) throw new ImageError('IMAGE_PLATFORM', `not a platform: "${text}" (write it as os/architecture[/variant], e.g. linux/arm64)`);
  const [, os, architecture, variant] = m as unknown as [string, string, string, string | undefined];
  return variant ? { os, architecture, variant } : { os, architecture };
}

export function formatPlatform(p: Platform): string {
  return `${p.os}/${p.architecture}${p.variant ? `/${p.variant}` : ''}`;
}

/** An image's platform, from its config. */
export function platformOf(image: Image): Platform {
  const { os, architecture, variant } = image.config;
  return variant ? { os, architecture, variant } : { os, architecture };
}

/**
 * Whether `have` serves `want`: os and architecture equal, and the variant when `want` names one (arm64's only
 * variant, v8, counts as named when absent, as containerd's matcher does).
 */
export function platformMatches(have: Platform, want: Platform): boolean {
  if (have.os !== want.os || have.architecture !== want.architecture) return false;
  if (!want.variant) return true;
  const norm = (p: Platform): string | undefined => p.variant ?? (p.architecture === 'arm64' ? 'v8' : undefined);
  return norm(have) === norm(want);
}

/** One order for platforms (by their text), so that the same set gives the same index whatever order it was named in. */
export function comparePlatforms(a: Platform, b: Platform): number {
  const x = formatPlatform(a);
  const y = formatPlatform(b);
  return x < y ? -1 : x > y ? 1 : 0;
}
