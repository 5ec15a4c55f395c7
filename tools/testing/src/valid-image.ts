// expectValidImage: every image a test makes goes through @dstack/image's validateImage (issue 18), the images a
// test loads into or builds on the Docker daemon too: they are read back from the daemon (`docker save`) and checked.
import { parseImageSpec } from '@dstack/image';
import { sharedEngine } from './docker.js';
import { validateImageAt } from './validate-daemon-image.js';

/**
 * Reads an image a test made and checks it with validateImage (config, both manifests, every layer's digests, sizes,
 * diff_ids and tar paths). `ref` is an image spec (`docker:NAME`, `oci:DIR[:REF]`, `archive:FILE`, `registry:REF`);
 * a bare name means `docker:NAME` on the shared engine. A daemon image is exported once (`docker save`) into a cache
 * that is removed afterwards, its layers kept as the plain tars the daemon gives: each is hashed against its diff_id
 * and its tar read, nothing compressed or decompressed (the daemon's export is most of the cost: a few seconds for
 * an image on the runtime).
 */
export async function expectValidImage(ref: string): Promise<void> {
  const spec = parseImageSpec(/^(docker|oci|archive|registry):/.test(ref) ? ref : `docker:${ref}`);
  await validateImageAt(spec, spec.kind === 'docker' ? (await sharedEngine()).docker : undefined);
}
