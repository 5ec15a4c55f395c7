// Issue 8's hardening on a registry store (issue 21): what the server refuses over a folder it refuses over
// `registry:HOST/REPO` too, with the same codes, and nothing reaches the registry.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RegistryClient } from '@dstack/oci';
import { RegistryWheelStore } from '@dstack/wheelhouse-registry';
import { buildWheel, hostileWheels, sharedRegistry } from '@dstack/testing';
import type { FastifyInstance } from 'fastify';
import { DEFAULT_CONFIG, type ServerConfig } from './config.js';
import { captureLog, multipartBody, sha256 } from './fixtures.test-support.js';
import { buildServer } from './server.js';

const TOKEN = 'registry-store-upload';
let app: FastifyInstance;
let url: string;
let store: RegistryWheelStore;

beforeAll(async () => {
  const registry = await sharedRegistry();
  store = new RegistryWheelStore(`registry:${registry.host}/dstack-test/server-hardening-${randomBytes(4).toString('hex')}`, { cacheMs: 0 });
  const config: ServerConfig = {
    ...DEFAULT_CONFIG,
    wheelhouse: store.location,
    indexCacheSeconds: 0,
    maxUploadBytes: 64 * 1024,
    tokens: [{ name: 'ci', token: TOKEN, scopes: ['read', 'upload'] }],
  };
  app = buildServer({ store, config, logger: captureLog().logger });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const address = app.server.address();
  url = `http://127.0.0.1:${typeof address === 'object' && address !== null ? address.port : 0}`;
});
afterAll(async () => {
  await app?.close();
});

async function upload(filename: string, data: Buffer, token: string | null = TOKEN): Promise<{ status: number; code: string | undefined }> {
  const { body, contentType } = multipartBody({ ':action': 'file_upload', sha256_digest: sha256(data) }, { name: filename, data });
  const res = await fetch(`${url}/`, { method: 'POST', headers: { 'content-type': contentType, ...(token ? { authorization: `Bearer ${token}` } : {}) }, body });
  const json = (await res.json()) as { error?: { code: string } };
  return { status: res.status, code: json.error?.code };
}

describe('the server over a registry store refuses what it refuses over a folder', () => {
  it.each(hostileWheels().filter((h) => h.limits === undefined).map((h) => [h.id, h] as const))('%s', async (_id, h) => {
    expect(await upload(h.filename, await h.bytes())).toEqual({ status: 400, code: h.code });
  });

  it('answers 401 without a token and 413 past max_upload_bytes; the registry holds nothing after all of it', async () => {
    const good = await buildWheel({ name: 'fine', version: '1.0' });
    expect(await upload('fine-1.0-py3-none-any.whl', good, null)).toEqual({ status: 401, code: 'AUTH_REQUIRED' });
    const big = await buildWheel({ name: 'big', version: '1.0', files: { 'big/blob.bin': randomBytes(200 * 1024) } });
    expect((await upload('big-1.0-py3-none-any.whl', big)).status).toBe(413);
    expect(await new RegistryClient().listTags(store.ref)).toEqual([]);
    expect(await upload('fine-1.0-py3-none-any.whl', good)).toEqual({ status: 200, code: undefined });
    // The wheel's manifest and its project's.
    expect((await new RegistryClient().listTags(store.ref)).map((t) => t.replace(/--.*$/, '')).sort()).toEqual(['fine-1.0-py3-none-any', 'project.fine']);
  });
});
