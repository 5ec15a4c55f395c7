import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { dockerConfigAuths, dockerConfigCredentials, formatReference, OciError, parseChallenge, parseReference, registryScheme } from './index.js';

describe('references', () => {
  it('parses them as Docker does, and formats them back', () => {
    expect(parseReference('python:3.11')).toEqual({ registry: 'registry-1.docker.io', repository: 'library/python', tag: '3.11', digest: null });
    expect(parseReference('127.0.0.1:5077/a/b')).toEqual({ registry: '127.0.0.1:5077', repository: 'a/b', tag: 'latest', digest: null });
    const d = `sha256:${'a'.repeat(64)}`;
    expect(parseReference(`ghcr.io/team/wheels@${d}`)).toEqual({ registry: 'ghcr.io', repository: 'team/wheels', tag: null, digest: d });
    expect(formatReference(parseReference('localhost/x:1'))).toBe('localhost/x:1');
  });

  it('refuses a bad name, tag or digest with IMAGE_REFERENCE_INVALID', () => {
    const bad = (r: string): unknown => {
      try {
        parseReference(r);
      } catch (e) {
        return e;
      }
      return null;
    };
    expect(bad('Host.io/UPPER:1')).toBeInstanceOf(OciError);
    expect((bad('host.io/UPPER:1') as OciError).message).toBe('bad repository name in image reference host.io/UPPER:1');
    expect((bad(`host.io/a:${'t'.repeat(129)}`) as OciError).message).toBe(`bad tag in image reference host.io/a:${'t'.repeat(129)}`);
    expect((bad('host.io/a@sha256:12') as OciError).code).toBe('IMAGE_REFERENCE_INVALID');
  });

  it('reaches loopback registries and named insecure ones over plain HTTP', () => {
    expect(registryScheme('127.0.0.1:5077')).toBe('http');
    expect(registryScheme('localhost:5000')).toBe('http');
    expect(registryScheme('registry.lan:5000', ['registry.lan:5000'])).toBe('http');
    expect(registryScheme('ghcr.io')).toBe('https');
  });

  it('parses a WWW-Authenticate challenge', () => {
    expect(parseChallenge('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/python:pull"')).toEqual({
      scheme: 'bearer',
      params: { realm: 'https://auth.docker.io/token', service: 'registry.docker.io', scope: 'repository:library/python:pull' },
    });
    expect(parseChallenge('Basic realm="x"')).toEqual({ scheme: 'basic', params: { realm: 'x' } });
  });
});

describe('docker config credentials', () => {
  it('reads what docker login stored, by host, Docker Hub under its names', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'dstack-oci-docker-config-'));
    try {
      const b64 = (s: string): string => Buffer.from(s).toString('base64');
      writeFileSync(
        path.join(dir, 'config.json'),
        JSON.stringify({ auths: { 'https://index.docker.io/v1/': { auth: b64('hub:pw') }, '127.0.0.1:5077': { auth: b64('ci:s3c:ret') }, 'https://ghcr.io': { auth: b64('me:tok') }, 'helper.io': {} } }),
      );
      const env = { DOCKER_CONFIG: dir };
      expect(dockerConfigCredentials('127.0.0.1:5077', env)).toEqual({ username: 'ci', password: 's3c:ret' });
      expect(dockerConfigCredentials('ghcr.io', env)).toEqual({ username: 'me', password: 'tok' });
      expect(dockerConfigCredentials('registry-1.docker.io', env)).toEqual({ username: 'hub', password: 'pw' });
      expect(dockerConfigCredentials('helper.io', env)).toBeNull();
      expect(dockerConfigAuths(env)).toEqual({
        'registry-1.docker.io': { username: 'hub', password: 'pw' },
        '127.0.0.1:5077': { username: 'ci', password: 's3c:ret' },
        'ghcr.io': { username: 'me', password: 'tok' },
      });
      expect(dockerConfigCredentials('ghcr.io', { DOCKER_CONFIG: path.join(dir, 'none') })).toBeNull();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
