import { Spec, Validation } from '@cyclonedx/cyclonedx-library';
import { describe, expect, it } from 'vitest';
import { EMPTY_DIGEST } from '@dstack/oci';
import { artifactManifest, referrersTag } from './referrers.js';
import { CYCLONEDX_MEDIA_TYPE, cycloneDxSbom, pypiPurl, sbomBytes, type InstalledDistribution } from './sbom.js';

const LAYER = `sha256:${'1'.repeat(64)}` as const;
const APP = `sha256:${'2'.repeat(64)}` as const;
const IMAGE = `sha256:${'3'.repeat(64)}` as const;

const dists: InstalledDistribution[] = [
  {
    name: 'zed',
    version: '1.0+local.1',
    wheel: 'zed-1.0+local.1-py3-none-any.whl',
    sha256: 'a'.repeat(64),
    layer: LAYER,
    role: 'dependencies',
    dependencies: ['alpha', 'not-installed'],
    source: { kind: 'vcs', vcs: 'git', url: 'https://git.example/zed.git', commit: 'c'.repeat(40), requestedRevision: 'v1' },
    builtBy: { executor: 'docker', image: 'dstack-factory/factory:py3.11', imageId: `sha256:${'f'.repeat(64)}` },
  },
  {
    name: 'alpha',
    version: '2.0',
    wheel: 'alpha-2.0-py3-none-any.whl',
    sha256: 'b'.repeat(64),
    layer: LAYER,
    role: 'dependencies',
    source: { kind: 'sdist', url: 'https://files.example/alpha-2.0.tar.gz', sha256: 'd'.repeat(64) },
  },
  { name: 'local-pkg', version: '0.1', wheel: 'local_pkg-0.1-py3-none-any.whl', sha256: 'e'.repeat(64), layer: LAYER, role: 'dependencies', source: { kind: 'directory', path: '/src/local-pkg' } },
  { name: 'pip', version: '23.0.1', wheel: 'pip-23.0.1-py3-none-any.whl', sha256: '9'.repeat(64), layer: LAYER, role: 'dependencies', source: { kind: 'wheel', url: 'file:///opt/wheels/pip-23.0.1-py3-none-any.whl' } },
  { name: 'myapp', version: '1.0', wheel: 'myapp-1.0-py3-none-any.whl', sha256: '8'.repeat(64), layer: APP, role: 'app' },
];

describe('cycloneDxSbom', () => {
  it('is valid CycloneDX 1.6 (the official schema), deterministic, one component per distribution with PURL, hash, source, builder and layer', async () => {
    const sbom = cycloneDxSbom({ digest: IMAGE, name: 'registry.example/app:1', created: '1970-01-01T00:00:00Z', distributions: dists, properties: { 'dstack-factory:layer.dependencies': LAYER }, toolVersion: '0.1.0' });
    const text = sbomBytes(sbom).toString('utf8');
    expect(await new Validation.JsonStrictValidator(Spec.Version.v1dot6).validate(text)).toBeNull();
    expect(sbomBytes(cycloneDxSbom({ digest: IMAGE, name: 'registry.example/app:1', created: '1970-01-01T00:00:00Z', distributions: [...dists].reverse(), properties: { 'dstack-factory:layer.dependencies': LAYER }, toolVersion: '0.1.0' })).toString('utf8')).toBe(text);
    const bom = JSON.parse(text) as { serialNumber: string; components: Record<string, unknown>[]; dependencies: { ref: string; dependsOn: string[] }[] };
    expect(bom.serialNumber).toMatch(/^urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(bom.components.map((c) => c.purl)).toEqual(['pkg:pypi/alpha@2.0', 'pkg:pypi/local-pkg@0.1', 'pkg:pypi/myapp@1.0', 'pkg:pypi/pip@23.0.1', 'pkg:pypi/zed@1.0%2Blocal.1']);
    expect(bom.components[0]).toEqual({
      type: 'library',
      'bom-ref': 'pkg:pypi/alpha@2.0',
      name: 'alpha',
      version: '2.0',
      hashes: [{ alg: 'SHA-256', content: 'b'.repeat(64) }],
      purl: 'pkg:pypi/alpha@2.0',
      externalReferences: [{ type: 'source-distribution', url: 'https://files.example/alpha-2.0.tar.gz', hashes: [{ alg: 'SHA-256', content: 'd'.repeat(64) }] }],
      properties: [
        { name: 'dstack-factory:wheel', value: 'alpha-2.0-py3-none-any.whl' },
        { name: 'dstack-factory:layer', value: LAYER },
        { name: 'dstack-factory:layer.role', value: 'dependencies' },
        { name: 'dstack-factory:source.kind', value: 'sdist' },
        { name: 'dstack-factory:source.url', value: 'https://files.example/alpha-2.0.tar.gz' },
        { name: 'dstack-factory:source.sha256', value: 'd'.repeat(64) },
      ],
    });
    const zed = bom.components[4]!;
    expect(zed.externalReferences).toEqual([{ type: 'vcs', url: `git+https://git.example/zed.git@${'c'.repeat(40)}`, comment: `commit ${'c'.repeat(40)}` }]);
    expect((zed.properties as { name: string; value: string }[]).filter((p) => p.name.startsWith('dstack-factory:built-by.'))).toEqual([
      { name: 'dstack-factory:built-by.executor', value: 'docker' },
      { name: 'dstack-factory:built-by.image', value: 'dstack-factory/factory:py3.11' },
      { name: 'dstack-factory:built-by.imageId', value: `sha256:${'f'.repeat(64)}` },
    ]);
    // The image depends on every distribution; each on those of the lock's dependencies it holds.
    expect(bom.dependencies[0]).toEqual({ ref: `image@${IMAGE}`, dependsOn: bom.components.map((c) => c.purl) });
    expect(bom.dependencies.find((d) => d.ref === 'pkg:pypi/zed@1.0%2Blocal.1')?.dependsOn).toEqual(['pkg:pypi/alpha@2.0']);
  });

  it.each([
    ['Django', '4.2.5', 'pkg:pypi/django@4.2.5'],
    ['zope.interface', '6.0', 'pkg:pypi/zope-interface@6.0'],
    ['typing_extensions', '4.8.0', 'pkg:pypi/typing-extensions@4.8.0'],
    ['foo', '1!2.0', 'pkg:pypi/foo@1!2.0'],
  ])('PURL of %s %s is %s', (name, version, purl) => {
    expect(pypiPurl(name, version)).toBe(purl);
  });
});

describe('the SBOM as an OCI 1.1 referrer', () => {
  it('an artifact manifest: artifactType, the empty config, the blob, the subject; the fallback tag is sha256-<hex>', () => {
    const subject = { mediaType: 'application/vnd.docker.distribution.manifest.v2+json', digest: IMAGE, size: 1234 };
    const a = artifactManifest({ artifactType: CYCLONEDX_MEDIA_TYPE, blob: { digest: APP, size: 99 }, subject });
    expect(JSON.parse(a.bytes.toString('utf8'))).toEqual({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      artifactType: 'application/vnd.cyclonedx+json',
      config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: EMPTY_DIGEST, size: 2 },
      layers: [{ mediaType: 'application/vnd.cyclonedx+json', digest: APP, size: 99 }],
      subject,
    });
    expect(a.descriptor).toEqual({ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: a.digest, size: a.bytes.length, artifactType: CYCLONEDX_MEDIA_TYPE });
    expect(referrersTag(IMAGE)).toBe(`sha256-${'3'.repeat(64)}`);
  });
});
