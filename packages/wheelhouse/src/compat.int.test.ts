// Differential test of the one wheel-compatibility function against the packaging pip vendors
// (pip._vendor.packaging.tags: what pip itself installs by), on cp311/cp312 × x86_64/aarch64 × glibc 2.28 / 2.36 / musl 1.2.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { describeTarget, wheelCompatibility, type Libc } from './index.js';

// pip 24.2 (vendoring packaging 24.1) with Python 3.13; the target versions are passed to packaging, not run.
const PIP_PYTHON = process.env.PIP_REFERENCE_PYTHON ?? '/root/.pyenv/versions/3.13.0/bin/python';

const TARGETS = ['3.11.7', '3.12.1'].flatMap((version) =>
  ['x86_64', 'aarch64'].flatMap((architecture) =>
    ([{ kind: 'glibc', version: '2.28' }, { kind: 'glibc', version: '2.36' }, { kind: 'musl', version: '1.2' }] as Libc[]).map((libc) => ({
      version,
      architecture,
      libc,
    })),
  ),
);

const PLATFORMS = (arch: string) => [
  `manylinux_2_17_${arch}.manylinux2014_${arch}`, `manylinux2014_${arch}`, `manylinux_2_28_${arch}`, `manylinux_2_27_${arch}`,
  `manylinux_2_29_${arch}`, `manylinux_2_36_${arch}`, `manylinux_2_37_${arch}`, `manylinux_2_39_${arch}`, `manylinux_2_5_${arch}.manylinux1_${arch}`,
  `manylinux2010_${arch}`, `manylinux_2_12_${arch}`, `musllinux_1_1_${arch}`, `musllinux_1_2_${arch}`, `musllinux_1_3_${arch}`, `linux_${arch}`,
  `musllinux_1_2_${arch}.manylinux_2_31_${arch}`, `manylinux_3_1_${arch}`,
];
const OTHER_ARCHES = ['armv7l', 'ppc64le', 's390x', 'i686'].flatMap((a) => [`manylinux_2_17_${a}`, `musllinux_1_1_${a}`, `manylinux2014_${a}`]);
const PY_ABIS = ['cp311-cp311', 'cp312-cp312', 'cp311-abi3', 'cp37-abi3', 'cp312-abi3', 'cp313-abi3', 'cp311-none', 'py3-none', 'cp312-cp312t', 'pp310-pypy310_pp73'];
const WHEELS = [
  ...PY_ABIS.flatMap((pa) => [...PLATFORMS('x86_64'), ...PLATFORMS('aarch64')].map((p) => `demo-1.0-${pa}-${p}.whl`)),
  ...OTHER_ARCHES.map((p) => `demo-1.0-cp311-cp311-${p}.whl`),
  ...['py3-none-any', 'py2.py3-none-any', 'py2-none-any', 'py311-none-any', 'py313-none-any', 'cp311-none-any', 'cp312-none-any',
    'cp311-cp311-win_amd64', 'cp312-cp312-macosx_11_0_arm64', 'cp36.cp37.cp38.cp39-abi3-manylinux_2_24_x86_64'].map((t) => `demo-1.0-${t}.whl`),
];

const SCRIPT = String.raw`
import json, sys
from pip._vendor.packaging import _manylinux, _musllinux, tags, utils, __version__
req = json.load(sys.stdin)
_manylinux._have_compatible_abi = lambda executable, archs: True
out = {'packaging': __version__, 'targets': []}
for t in req['targets']:
    arch = t['architecture']
    major, minor = (int(x) for x in t['libc']['version'].split('.'))
    if t['libc']['kind'] == 'glibc':
        _manylinux._get_glibc_version = lambda g=(major, minor): g
        plats = list(_manylinux.platform_tags([arch]))
    else:
        _musllinux._get_musl_version = lambda exe, m=(major, minor): _musllinux._MuslVersion(m[0], m[1])
        plats = list(_musllinux.platform_tags([arch]))
    plats.append('linux_' + arch)
    v = tuple(int(x) for x in t['version'].split('.')[:2])
    interp = 'cp%d%d' % v
    supported = [str(x) for x in tags.cpython_tags(v, [interp], plats)] + [str(x) for x in tags.compatible_tags(v, interp, plats)]
    index = {}
    for i, s in enumerate(supported):
        index.setdefault(s, i)
    ranks = []
    for w in req['wheels']:
        found = [index[str(x)] for x in utils.parse_wheel_filename(w)[3] if str(x) in index]
        ranks.append(min(found) if found else None)
    out['targets'].append({'tags': supported, 'ranks': ranks})
print(json.dumps(out))
`;

interface PyOut {
  packaging: string;
  targets: { tags: string[]; ranks: (number | null)[] }[];
}

let py: PyOut;
beforeAll(() => {
  if (!existsSync(PIP_PYTHON)) throw new Error(`the reference pip needs Python 3.13 at ${PIP_PYTHON}: pyenv install 3.13.0 (or set PIP_REFERENCE_PYTHON)`);
  const stdout = execFileSync(PIP_PYTHON, ['-I', '-c', SCRIPT], { input: JSON.stringify({ wheels: WHEELS, targets: TARGETS }), encoding: 'utf8' });
  py = JSON.parse(stdout) as PyOut;
});

describe('wheelCompatibility agrees with pip._vendor.packaging.tags', () => {
  it('covers 12 targets and hundreds of wheels', () => {
    expect(TARGETS).toHaveLength(12);
    expect(WHEELS.length).toBeGreaterThan(300);
    expect(py.packaging).toMatch(/^2[2-9]\./);
  });

  TARGETS.forEach((t, ti) => {
    it(`cp${t.version.split('.').slice(0, 2).join('')} ${t.architecture} ${t.libc.kind} ${t.libc.version}: same tags, same verdict and rank for every wheel`, () => {
      const target = describeTarget({ pythonFullVersion: t.version, architecture: t.architecture, libc: t.libc });
      expect(target.tags).toEqual(py.targets[ti]!.tags);
      const verdicts = WHEELS.map((w) => {
        const fit = wheelCompatibility(w, target);
        return fit.ok ? fit.rank : null;
      });
      expect(verdicts).toEqual(py.targets[ti]!.ranks);
      // Every refusal says why, naming a part of the wheel's tag.
      for (const w of WHEELS) {
        const fit = wheelCompatibility(w, target, { subject: 'the base' });
        if (!fit.ok) expect(fit.reason).toMatch(/; the base('s)? /);
      }
    });
  });
});
