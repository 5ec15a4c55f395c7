// expectValidImage: every image a test makes goes through @dstack/image's validateImage (issue 18), the images a
// test loads into or builds on the Docker daemon too: they are read back from the daemon (`docker save`) and checked.
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { BlobCache, openImage, parseImageSpec, validateImage } from '@dstack/image';
import { sharedEngine } from './docker.js';

/**
 * Reads an image a test made and checks it with validateImage (config, both manifests, every layer's digests, sizes,
 * diff_ids and tar paths). `ref` is an image spec (`docker:NAME`, `oci:DIR[:REF]`, `archive:FILE`, `registry:REF`);
 * a bare name means `docker:NAME` on the shared engine. A daemon image is exported once, into a cache that is removed
 * afterwards: call it once per image made, on the smallest image that shows what the test made (an export costs
 * about 1 s per 100 MB).
 */
export async function expectValidImage(ref: string): Promise<void> {
  const spec = parseImageSpec(/^(docker|oci|archive|registry):/.test(ref) ? ref : `docker:${ref}`);
  const dir = await mkdtemp(path.join(os.tmpdir(), 'dstack-validate-'));
  try {
    const docker = spec.kind === 'docker' ? (await sharedEngine()).docker : undefined;
    const image = await openImage(spec, {
      cache: new BlobCache(dir),
      ...(docker ? { docker: () => docker } : {}),
    });
    await validateImage(image);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
