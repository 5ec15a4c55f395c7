import { describe, expect, it } from 'vitest';
import {
  describeTarget,
  describeTargetText,
  machineOfGlibcLoader,
  machineOfMuslLoader,
  machineOfOciPlatform,
  ociPlatformOfMachine,
  parseTargetName,
  targetFromLock,
  targetFromTags,
  wheelCompatibility,
} from './index.js';

const bookworm = describeTarget({ pythonFullVersion: '3.11.2', architecture: 'x86_64', libc: { kind: 'glibc', version: '2.36' } });
const alpineArm = describeTarget({ pythonFullVersion: '3.12.1', architecture: 'aarch64', libc: { kind: 'musl', version: '1.2' } });
const threaded = describeTarget({ pythonFullVersion: '3.13.0', architecture: 'x86_64', libc: { kind: 'glibc', version: '2.36' }, abi: 'cp313t' });

const why = (wheel: string, target = bookworm) => {
  const fit = wheelCompatibility(wheel, target, { subject: 'the base' });
  return fit.ok ? `fits at ${fit.rank} by ${fit.tag}` : fit.reason;
};

describe('Target', () => {
  it('describes a Debian bookworm interpreter from its facts', () => {
    expect(bookworm).toMatchObject({
      id: 'cp311-linux_x86_64',
      name: 'cp3_11_2-manylinux_2_36_x86_64',
      implementation: 'cp',
      pythonVersion: '3.11',
      pythonFullVersion: '3.11.2',
      abi: 'cp311',
      os: 'linux',
      architecture: 'x86_64',
      libc: { kind: 'glibc', version: '2.36' },
    });
    expect(bookworm.tags[0]).toBe('cp311-cp311-manylinux_2_36_x86_64');
    expect(describeTargetText(bookworm)).toBe('CPython 3.11.2 on linux x86_64 with glibc 2.36');
    // The same target from its platform tag.
    expect(describeTarget({ pythonFullVersion: '3.11.2', platforms: ['manylinux_2_36_x86_64'] })).toEqual(bookworm);
  });

  it('names targets so that the host 3.11.7 and the base 3.11.2, glibc and musl, GIL and free-threaded never share a lock', () => {
    const host = describeTarget({ pythonFullVersion: '3.11.7', architecture: 'x86_64', libc: { kind: 'glibc', version: '2.36' } });
    expect(host.id).toBe(bookworm.id);
    expect(host.name).toBe('cp3_11_7-manylinux_2_36_x86_64');
    expect(alpineArm.name).toBe('cp3_12_1-musllinux_1_2_aarch64');
    expect(threaded.name).toBe('cp3_13_0t-manylinux_2_36_x86_64');
    expect(describeTarget({ pythonFullVersion: '3.13.0rc1', architecture: 'riscv64' }).name).toBe('cp3_13_0rc1-linux_riscv64');
    for (const t of [bookworm, host, alpineArm, threaded]) expect(t.name).not.toContain('.');
  });

  it('reads target names back', () => {
    for (const t of [bookworm, alpineArm, threaded]) {
      const back = parseTargetName(t.name)!;
      expect({ ...back, interpreter: null }).toEqual(t);
    }
    expect(parseTargetName('cp311-linux_x86_64')).toBeNull();
    expect(parseTargetName('default')).toBeNull();
  });

  it('takes libc and architecture from the tags an interpreter reports', () => {
    const t = targetFromTags({ interpreter: 'docker:f', implementation: 'cp', pythonFullVersion: '3.11.2', tags: bookworm.tags, markers: bookworm.markers });
    expect(t).toEqual({ ...bookworm, interpreter: 'docker:f' });
  });

  it('maps OCI platforms to the machine names of tags and back', () => {
    expect(machineOfOciPlatform('amd64')).toBe('x86_64');
    expect(machineOfOciPlatform('arm64', 'v8')).toBe('aarch64');
    expect(machineOfOciPlatform('arm', 'v7')).toBe('armv7l');
    expect(machineOfOciPlatform('ppc64le')).toBe('ppc64le');
    expect(machineOfOciPlatform('s390x')).toBe('s390x');
    expect(machineOfOciPlatform('386')).toBe('i686');
    expect(machineOfOciPlatform('mips64le')).toBeNull();
    expect(ociPlatformOfMachine('aarch64')).toEqual({ architecture: 'arm64' });
    expect(ociPlatformOfMachine('armv7l')).toEqual({ architecture: 'arm', variant: 'v7' });
    expect(machineOfGlibcLoader('ld-linux-aarch64.so.1')).toBe('aarch64');
    expect(machineOfGlibcLoader('ld-linux-x86-64.so.2')).toBe('x86_64');
    expect(machineOfMuslLoader('ld-musl-x86_64.so.1')).toBe('x86_64');
    expect(machineOfMuslLoader('ld-musl-armhf.so.1')).toBe('armv7l');
  });
});

describe('wheelCompatibility', () => {
  it('ranks what fits as pip does', () => {
    expect(why('a-1-cp311-cp311-manylinux_2_36_x86_64.whl')).toBe('fits at 0 by cp311-cp311-manylinux_2_36_x86_64');
    expect(why('a-1-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl')).toBe('fits at 19 by cp311-cp311-manylinux_2_17_x86_64');
    expect(why('a-1-cp37-abi3-manylinux2014_x86_64.whl')).toMatch(/^fits at \d+ by cp37-abi3-manylinux2014_x86_64$/);
    expect(why('a-1-py3-none-any.whl')).toBe(`fits at ${bookworm.tags.indexOf('py3-none-any')} by py3-none-any`);
  });

  it('refuses naming the wheel tag and the target', () => {
    expect(why('a-1-cp311-cp311-manylinux_2_39_x86_64.whl')).toBe('manylinux_2_39 needs glibc ≥ 2.39; the base has glibc 2.36');
    expect(why('a-1-cp311-cp311-musllinux_1_2_x86_64.whl')).toBe('musllinux_1_2 needs musl; the base has glibc 2.36');
    expect(why('a-1-cp312-cp312-manylinux2014_aarch64.whl', alpineArm)).toBe('manylinux2014 needs glibc; the base has musl 1.2');
    expect(why('a-1-cp312-cp312-musllinux_1_3_aarch64.whl', alpineArm)).toBe('musllinux_1_3 needs musl ≥ 1.3; the base has musl 1.2');
    expect(why('a-1-cp311-cp311-manylinux_2_17_aarch64.manylinux2014_aarch64.whl')).toBe('manylinux_2_17_aarch64 is for aarch64; the base is x86_64');
    expect(why('a-1-cp311-cp311-win_amd64.whl')).toBe('win_amd64 is for another platform; the base is linux x86_64');
    expect(why('a-1-cp312-cp312-manylinux_2_17_x86_64.whl')).toBe('cp312-cp312 is for CPython 3.12; the base has CPython 3.11.2');
    expect(why('a-1-cp312-abi3-manylinux_2_17_x86_64.whl')).toBe('cp312-abi3 needs CPython ≥ 3.12; the base has CPython 3.11.2');
    expect(why('a-1-pp310-pypy310_pp73-manylinux_2_17_x86_64.whl')).toBe('pp310-pypy310_pp73 is for PyPy; the base has CPython 3.11.2');
    expect(why('a-1-py2-none-any.whl')).toBe('py2-none is for Python 2; the base has CPython 3.11.2');
    expect(why('a-1-cp313-cp313-manylinux_2_17_x86_64.whl', threaded)).toBe("cp313-cp313 needs the ABI cp313; the base's is cp313t");
    expect(why('a-1-cp312-abi3-manylinux_2_17_x86_64.whl', threaded)).toBe("cp312-abi3 needs a build with the GIL; the base's ABI is cp313t");
    expect(wheelCompatibility('a-1-cp311-cp311-manylinux_2_39_x86_64.whl', bookworm)).toEqual({
      ok: false,
      reason: 'manylinux_2_39 needs glibc ≥ 2.39; the target has glibc 2.36',
    });
  });
});

describe('targetFromLock', () => {
  const environments = ['implementation_name == "cpython" and python_full_version == "3.11.2" and sys_platform == "linux" and platform_machine == "x86_64"'];

  it('reads the environment and the libc from the target name the lock carries', () => {
    const t = targetFromLock({ environments, tool: { 'dstack-factory': { target: 'cp3_11_2-manylinux_2_36_x86_64' } } }, '/x/pylock.cp311-linux_x86_64.toml')!;
    expect({ ...t, interpreter: null, markers: null }).toEqual({ ...bookworm, markers: null });
    expect(t.interpreter).toBe('lock:/x/pylock.cp311-linux_x86_64.toml');
  });

  it('reads the libc from the file name, and leaves it unknown when nothing says it', () => {
    expect(targetFromLock({ environments }, 'locks/pylock.cp3_11_2-manylinux_2_36_x86_64.toml')!.libc).toEqual({ kind: 'glibc', version: '2.36' });
    const old = targetFromLock({ environments, tool: { 'dstack-factory': { target: 'cp311-linux_x86_64' } } }, 'pylock.cp311-linux_x86_64.toml')!;
    expect(old.libc).toBeNull();
    expect(old.name).toBe('cp3_11_2-linux_x86_64');
    expect(wheelCompatibility('a-1-cp311-cp311-manylinux_2_17_x86_64.whl', old)).toEqual({
      ok: false,
      reason: "manylinux_2_17 needs glibc; the target's C library is not known",
    });
    // A name for another version is not taken.
    expect(targetFromLock({ environments }, 'pylock.cp3_11_7-musllinux_1_2_x86_64.toml')!.libc).toBeNull();
  });

  it('gives null for a lock without a single plain environment', () => {
    expect(targetFromLock({})).toBeNull();
    expect(targetFromLock({ environments: ['python_version >= "3.8"'] })).toBeNull();
  });
});
