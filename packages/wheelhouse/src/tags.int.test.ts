// Differential test: our tag logic against the `packaging` library on this machine (python3 -c "import packaging").
import { execFileSync } from 'node:child_process';
import { beforeAll, describe, expect, it } from 'vitest';
import { describeTarget, detectTarget, parseWheelFilename, wheelTagRank, type TargetSpec } from './index.js';

const PY = process.env.PYTHON ?? 'python3';

// Each target twice: our spec, and the facts packaging is given (its glibc/musl detection patched to them).
const TARGETS: { spec: TargetSpec; py: { version: [number, number]; abi: string; arch: string; glibc?: [number, number]; musl?: [number, number]; platforms?: string[] } }[] = [
  { spec: { pythonFullVersion: '3.11.7', platforms: ['manylinux_2_36_x86_64'] }, py: { version: [3, 11], abi: 'cp311', arch: 'x86_64', glibc: [2, 36] } },
  { spec: { pythonFullVersion: '3.10.13', platforms: ['manylinux_2_17_aarch64'] }, py: { version: [3, 10], abi: 'cp310', arch: 'aarch64', glibc: [2, 17] } },
  { spec: { pythonFullVersion: '3.9.18', platforms: ['musllinux_1_2_x86_64'] }, py: { version: [3, 9], abi: 'cp39', arch: 'x86_64', musl: [1, 2] } },
  { spec: { pythonFullVersion: '3.12.1', platforms: ['manylinux_2_5_i686'] }, py: { version: [3, 12], abi: 'cp312', arch: 'i686', glibc: [2, 5] } },
  { spec: { pythonFullVersion: '3.8.18', platforms: ['linux_x86_64'] }, py: { version: [3, 8], abi: 'cp38', arch: 'x86_64', platforms: ['linux_x86_64'] } },
  { spec: { pythonFullVersion: '3.13.0', platforms: ['manylinux_2_28_x86_64'], abi: 'cp313t' }, py: { version: [3, 13], abi: 'cp313t', arch: 'x86_64', glibc: [2, 28] } },
  { spec: { pythonFullVersion: '3.11.2', platforms: ['manylinux2014_x86_64'] }, py: { version: [3, 11], abi: 'cp311', arch: 'x86_64', glibc: [2, 17] } },
  {
    spec: { pythonFullVersion: '3.12.1', platforms: ['manylinux_2_31_x86_64', 'musllinux_1_1_x86_64'] },
    py: { version: [3, 12], abi: 'cp312', arch: 'x86_64', glibc: [2, 31], musl: [1, 1] },
  },
];

const TAGS = [
  'py3-none-any', 'py2.py3-none-any', 'py311-none-any', 'py310-none-any', 'py2-none-any', 'py30-none-any', 'py313-none-any',
  'cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64', 'cp311-cp311-manylinux_2_28_x86_64', 'cp311-cp311-manylinux_2_36_x86_64',
  'cp311-cp311-manylinux_2_37_x86_64', 'cp311-cp311-manylinux1_x86_64', 'cp311-cp311-manylinux2010_x86_64', 'cp311-cp311-linux_x86_64',
  'cp311-cp311-musllinux_1_1_x86_64', 'cp311-cp311-musllinux_1_2_x86_64', 'cp311-cp311-musllinux_1_3_x86_64',
  'cp311-abi3-manylinux_2_17_x86_64', 'cp37-abi3-manylinux_2_17_x86_64.manylinux2014_x86_64', 'cp38-abi3-linux_x86_64',
  'cp312-abi3-manylinux_2_17_x86_64', 'cp310-cp310-manylinux_2_17_aarch64.manylinux2014_aarch64', 'cp310-cp310-manylinux_2_12_aarch64',
  'cp310-abi3-manylinux_2_17_aarch64', 'cp39-cp39-musllinux_1_2_x86_64', 'cp39-cp39-musllinux_1_0_x86_64', 'cp39-cp39-manylinux_2_17_x86_64',
  'cp312-cp312-manylinux1_i686', 'cp312-cp312-manylinux_2_5_i686', 'cp312-cp312-manylinux_2_4_i686', 'cp312-none-linux_i686',
  'cp312-cp312-win_amd64', 'cp311-cp311-macosx_11_0_arm64', 'cp311-none-any', 'cp310-none-any', 'cp38-cp38-linux_x86_64',
  'cp38-none-linux_x86_64', 'py38-none-linux_x86_64', 'py3-none-linux_x86_64', 'py3-none-manylinux_2_17_x86_64',
  'pp310-pypy310_pp73-manylinux_2_17_x86_64', 'cp313-cp313t-manylinux_2_17_x86_64', 'cp313-cp313-manylinux_2_28_x86_64',
  'cp313-abi3-manylinux_2_28_x86_64', 'cp32-abi3-manylinux_2_28_x86_64', 'cp311-cp311d-linux_x86_64', 'py3-none-musllinux_1_2_x86_64',
  'cp311-cp311-linux_aarch64', 'cp313-abi3t-manylinux_2_28_x86_64', 'cp312-abi3t-linux_x86_64', 'cp312-cp312-musllinux_1_1_x86_64.manylinux_2_31_x86_64', 'cp36.cp37.cp38.cp39-abi3-manylinux_2_24_i686',
];
const WHEELS = [...TAGS.map((t) => `demo-1.0-${t}.whl`), 'Demo.Pkg-2.0.post1-7b-py3-none-any.whl', 'demo_pkg-1!3.0rc1-py2.py3-none-any.whl'];

const SCRIPT = String.raw`
import json, sys
from packaging import _manylinux, _musllinux, tags, utils
req = json.load(sys.stdin)
out = {'targets': [], 'wheels': []}
for w in req['wheels']:
    name, version, build, ts = utils.parse_wheel_filename(w)
    out['wheels'].append({'name': name, 'version': str(version), 'build': list(build) if build else None, 'tags': sorted(str(t) for t in ts)})
_manylinux._have_compatible_abi = lambda executable, archs: True
for t in req['targets']:
    plats = t.get('platforms')
    if plats is None:
        plats = []
        if t.get('glibc'):
            _manylinux._get_glibc_version = lambda g=tuple(t['glibc']): g
            plats += list(_manylinux.platform_tags([t['arch']]))
        if t.get('musl'):
            _musllinux._get_musl_version = lambda exe, m=t['musl']: _musllinux._MuslVersion(m[0], m[1])
            plats += list(_musllinux.platform_tags([t['arch']]))
        plats.append('linux_' + t['arch'])
    v = tuple(t['version'])
    interp = 'cp%d%d' % v
    supported = [str(x) for x in tags.cpython_tags(v, [t['abi']], plats)] + [str(x) for x in tags.compatible_tags(v, interp, plats)]
    index = {}
    for i, s in enumerate(supported):
        index.setdefault(s, i)
    ranks = []
    for w in req['wheels']:
        ts = utils.parse_wheel_filename(w)[3]
        found = [index[str(x)] for x in ts if str(x) in index]
        ranks.append(min(found) if found else None)
    out['targets'].append({'tags': supported, 'ranks': ranks})
print(json.dumps(out))
`;

interface PyOut {
  targets: { tags: string[]; ranks: (number | null)[] }[];
  wheels: { name: string; version: string; build: [number, string] | null; tags: string[] }[];
}

let py: PyOut;
beforeAll(() => {
  try {
    execFileSync(PY, ['-c', 'import packaging.tags']);
  } catch {
    throw new Error(`${PY} with the "packaging" library is needed: apt-get install python3-packaging, or pip install packaging`);
  }
  const stdout = execFileSync(PY, ['-c', SCRIPT], {
    input: JSON.stringify({ wheels: WHEELS, targets: TARGETS.map((t) => t.py) }),
    encoding: 'utf8',
  });
  py = JSON.parse(stdout) as PyOut;
});

describe('tags agree with packaging.tags', () => {
  it('has at least 200 (wheel, target) pairs', () => {
    expect(WHEELS.length * TARGETS.length).toBeGreaterThanOrEqual(200);
  });

  it('parses every wheel file name as packaging.utils.parse_wheel_filename does', () => {
    WHEELS.forEach((w, i) => {
      const ours = parseWheelFilename(w);
      const theirs = py.wheels[i]!;
      expect({ name: ours.normalizedName, tags: [...ours.tags].sort() }).toEqual({ name: theirs.name, tags: theirs.tags });
      expect(theirs.build === null ? null : `${theirs.build[0]}${theirs.build[1]}`).toBe(ours.build);
    });
  });

  TARGETS.forEach((t, ti) => {
    it(`target ${t.spec.pythonFullVersion} ${(t.spec.platforms ?? []).join(',')}${t.spec.abi ? ` ${t.spec.abi}` : ''}: same tag list and same rank for every wheel`, () => {
      const target = describeTarget(t.spec);
      expect(target.tags).toEqual(py.targets[ti]!.tags);
      const ours = WHEELS.map((w) => wheelTagRank(parseWheelFilename(w), target));
      expect(ours).toEqual(py.targets[ti]!.ranks);
      // The order they put the compatible wheels in is the same too (ranks equal implies it; checked explicitly).
      const order = (ranks: (number | null)[]) =>
        WHEELS.map((w, i) => [w, ranks[i]] as const)
          .filter((x) => x[1] !== null)
          .sort((a, b) => a[1]! - b[1]! || (a[0] < b[0] ? -1 : 1))
          .map((x) => x[0]);
      expect(order(ours)).toEqual(order(py.targets[ti]!.ranks));
    });
  });
});

describe('detectTarget', () => {
  it('detects python3.11 as the same target describeTarget gives for its glibc', async () => {
    const target = await detectTarget('/root/.pyenv/versions/3.11.7/bin/python');
    const glibc = execFileSync('/root/.pyenv/versions/3.11.7/bin/python', ['-c', 'import os; print(os.confstr("CS_GNU_LIBC_VERSION").split()[1])'], { encoding: 'utf8' }).trim();
    const described = describeTarget({ pythonFullVersion: '3.11.7', platforms: [`manylinux_${glibc.replace('.', '_')}_x86_64`] });
    expect(target.id).toBe('cp311-linux_x86_64');
    expect(target.pythonFullVersion).toBe('3.11.7');
    expect(target.pythonVersion).toBe('3.11');
    expect(target.markers.python_full_version).toBe('3.11.7');
    expect(target.markers.sys_platform).toBe('linux');
    expect(target.markers.platform_machine).toBe('x86_64');
    // pip 23.x vendors packaging 21.3, whose sys_tags() has no "cp311-none-any" (packaging >= 22 added it):
    // detectTarget reports what the interpreter's pip will accept.
    expect(target.tags).toEqual(described.tags.filter((t) => t !== 'cp311-none-any'));
  });

  it('detects a venv without pip (no packaging to import) by computing the tags', async () => {
    const { mkdtemp, rm } = await import('node:fs/promises');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const dir = await mkdtemp(join(tmpdir(), 'wh-venv-'));
    try {
      execFileSync('/root/.pyenv/versions/3.10.13/bin/python', ['-m', 'venv', '--without-pip', join(dir, 'v')]);
      const python = join(dir, 'v', 'bin', 'python');
      const target = await detectTarget(python);
      const glibc = execFileSync(python, ['-c', 'import os; print(os.confstr("CS_GNU_LIBC_VERSION").split()[1])'], { encoding: 'utf8' }).trim();
      expect(target.id).toBe('cp310-linux_x86_64');
      expect(target.interpreter).toBe(python);
      expect(target.pythonFullVersion).toBe('3.10.13');
      expect(target.tags).toEqual(describeTarget({ pythonFullVersion: '3.10.13', platforms: [`manylinux_${glibc.replace('.', '_')}_x86_64`] }).tags);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('refuses what is not an interpreter with TARGET_DETECT_FAILED', async () => {
    await expect(detectTarget('/bin/false')).rejects.toMatchObject({ code: 'TARGET_DETECT_FAILED' });
  });
});
