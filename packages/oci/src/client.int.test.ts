import { randomBytes } from 'node:crypto';
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { text } from 'node:stream/consumers';
import type { Logger } from 'pino';
import { beforeAll, describe, expect, it } from 'vitest';
import { sharedRegistry, type SharedRegistry } from '@dstack/testing';
import { EMPTY_DIGEST, MEDIA_TYPES, parseReference, RegistryClient, RegistryError, type Digest } from './index.js';

let registry: SharedRegistry;
const runId = randomBytes(4).toString('hex');
const digestOf = (b: Buffer): Digest => `sha256:${createHash('sha256').update(b).digest('hex')}`;

beforeAll(async () => {
  registry = await sharedRegistry();
});

describe('RegistryClient against the registry', () => {
  it('uploads a blob, puts a manifest under a tag, lists, reads and deletes it', async () => {
    const host = registry.host;
    // README usage: begin
    const client = new RegistryClient(); // { credentials: dockerConfigAuths(), insecure: ['registry.lan:5000'], logger }
    const ref = parseReference(`${host}/dstack-test/oci-usage-${runId}:v1`);

    const blob = Buffer.from('hello\n');
    const blobDigest = digestOf(blob);
    expect(await client.blobExists(ref, blobDigest)).toBe(false);
    expect(await client.uploadBlob(ref, blobDigest, blob.length, async () => Readable.from([blob]))).toBe('uploaded');

    const empty = { mediaType: MEDIA_TYPES.ociEmpty, digest: EMPTY_DIGEST, size: 2 };
    await client.uploadBlob(ref, empty.digest, 2, async () => Readable.from([Buffer.from('{}')]));
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: MEDIA_TYPES.ociManifest,
        artifactType: 'application/vnd.example.greeting',
        config: empty,
        layers: [{ mediaType: 'text/plain', digest: blobDigest, size: blob.length }],
      }),
    );
    const digest = await client.putManifest(ref, 'v1', { mediaType: MEDIA_TYPES.ociManifest, bytes: manifest });

    expect(await client.listTags(ref)).toEqual(['v1']);
    expect(await client.resolveManifest(ref, 'v1')).toBe(digest);
    expect((await client.getManifest(ref, 'v1')).bytes.equals(manifest)).toBe(true);
    expect(await text(await client.openBlob(ref, blobDigest))).toBe('hello\n');

    expect(await client.deleteManifest(ref, digest)).toBe(true); // the registry needs storage.delete.enabled
    expect(await client.listTags(ref)).toEqual([]);
    // README usage: end
    expect(await client.resolveManifest(ref, 'v1')).toBeNull();
    expect(await client.deleteManifest(ref, digest)).toBe(false);
  });

  it('mounts a blob from another repository of the same registry, and lists an unknown repository as empty', async () => {
    const client = new RegistryClient();
    const a = parseReference(`${registry.host}/dstack-test/oci-a-${runId}:x`);
    const b = parseReference(`${registry.host}/dstack-test/oci-b-${runId}:x`);
    const blob = randomBytes(1000);
    const d = digestOf(blob);
    expect(await client.uploadBlob(a, d, blob.length, async () => Readable.from([blob]))).toBe('uploaded');
    expect(await client.uploadBlob(b, d, blob.length, async () => Readable.from([blob]), { mountFrom: a.repository })).toBe('mounted');
    expect(await client.blobExists(b, d)).toBe(true);
    expect(await client.listTags(parseReference(`${registry.host}/dstack-test/oci-none-${runId}:x`))).toEqual([]);
  });

  it('lists every tag, sorted (distribution 2.8 ignores n and sends them unsorted in one page)', async () => {
    const client = new RegistryClient();
    const ref = parseReference(`${registry.host}/dstack-test/oci-pages-${runId}:x`);
    await client.uploadBlob(ref, EMPTY_DIGEST, 2, async () => Readable.from([Buffer.from('{}')]));
    const tags = ['e', 'a', 'd', 'b', 'c'];
    for (const tag of tags) {
      const bytes = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MEDIA_TYPES.ociManifest, config: { mediaType: MEDIA_TYPES.ociEmpty, digest: EMPTY_DIGEST, size: 2 }, layers: [], annotations: { tag } }));
      await client.putManifest(ref, tag, { mediaType: MEDIA_TYPES.ociManifest, bytes });
    }
    expect(await client.listTags(ref, { pageSize: 2 })).toEqual(['a', 'b', 'c', 'd', 'e']);
  });

  it('refuses a blob upload whose bytes have another digest, and does not retry it', async () => {
    const client = new RegistryClient({ backoffMs: 1 });
    const ref = parseReference(`${registry.host}/dstack-test/oci-bad-${runId}:x`);
    const wrong = digestOf(Buffer.from('other'));
    const err = await client.uploadBlob(ref, wrong, 5, async () => Readable.from([Buffer.from('hello')])).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RegistryError);
    expect((err as RegistryError).code).toBe('REGISTRY_DIGEST_INVALID');
    expect((err as RegistryError).temporary).toBe(false);
  });

  it('puts every manifest while other writers link its blob (distribution answers that race with DIGEST_INVALID), and does not retry a digest that is not the bytes\'', async () => {
    let retried = 0;
    const logger = { warn: () => void retried++, debug: () => {}, info: () => {} } as unknown as Logger;
    const client = new RegistryClient({ backoffMs: 1, logger });
    const ref = parseReference(`${registry.host}/dstack-test/oci-relink-${runId}:x`);
    const blob = randomBytes(100);
    const d = digestOf(blob);
    await client.uploadBlob(ref, EMPTY_DIGEST, 2, async () => Readable.from([Buffer.from('{}')]));
    await client.uploadBlob(ref, d, blob.length, async () => Readable.from([blob]));
    // Uploading a blob the repository holds rewrites its link file; three writers keep doing so.
    let stop = false;
    const relink = async (): Promise<void> => {
      while (!stop) await new RegistryClient().uploadBlob(ref, d, blob.length, async () => Readable.from([blob]));
    };
    const writers = [relink(), relink(), relink()];
    const manifest = (i: number): Buffer =>
      Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: MEDIA_TYPES.ociManifest,
          config: { mediaType: MEDIA_TYPES.ociEmpty, digest: EMPTY_DIGEST, size: 2 },
          layers: [{ mediaType: 'text/plain', digest: d, size: blob.length }],
          annotations: { n: String(i) },
        }),
      );
    const results: Array<Digest | Error> = [];
    try {
      // At least 50 PUTs, and on until the race has happened once (here about one PUT in twelve meets it).
      for (let i = 0; i < 2000 && (i < 50 || retried === 0); i++) results.push(await client.putManifest(ref, `t${i}`, { mediaType: MEDIA_TYPES.ociManifest, bytes: manifest(i) }).catch((e: Error) => e));
    } finally {
      stop = true;
      await Promise.all(writers);
    }
    expect(results.filter((r) => r instanceof Error)).toEqual([]);
    expect(retried).toBeGreaterThan(0); // the race happened, so the retry is what made every put land

    retried = 0;
    const wrong = await client.putManifest(ref, digestOf(manifest(0)), { mediaType: MEDIA_TYPES.ociManifest, bytes: manifest(1) }).catch((e: unknown) => e);
    expect((wrong as RegistryError).registryCode).toBe('DIGEST_INVALID');
    expect(retried).toBe(0);
  });
});
