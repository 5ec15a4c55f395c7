// One image of a Docker daemon read back (`docker save`) and checked by @dstack/image's validateImage: what
// expectValidImage does for a test's image, and what the shared images get once, when they are built.
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type Docker from 'dockerode';
import { BlobCache, openImage, parseImageSpec, validateImage, type ImageSpec } from '@dstack/image';

/**
 * Reads `spec` (a daemon's image through `docker`, or any other source) into a temporary cache and validates it.
 * Plain tar layers (the daemon's) are kept as they come: each is hashed against its diff_id and its tar read,
 * nothing compressed or decompressed.
 */
export async function validateImageAt(spec: ImageSpec | string, docker?: Docker): Promise<void> {
  const parsed = typeof spec === 'string' ? parseImageSpec(spec) : spec;
  const dir = await mkdtemp(path.join(os.tmpdir(), 'dstack-validate-'));
  try {
    const image = await openImage(parsed, { cache: new BlobCache(dir), compression: 'none', ...(docker ? { docker: () => docker } : {}) });
    await validateImage(image);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
