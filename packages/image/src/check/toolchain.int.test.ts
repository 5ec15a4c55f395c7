// The original's toolchain (issue 20 point 6): the factory image compiles against its -dev set (gfortran,
// HDF5 through HDF5_DIR, SASL, LDAP, FFTW, OpenBLAS), and the runtime image loads what that links, checked
// daemonlessly with the shared-library check; the bare base refuses it and names the Debian packages.
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { baseImageName, runInContainer, sharedEngine, sharedFactoryImage, sharedRuntimeImage, writeWheel } from '@dstack/testing';
import { BlobCache } from '../cache/blob-cache.js';
import { readDaemonImage } from '../sources/daemon.js';
import { checkWheelLibraries, imagePackageFinder } from './check-libraries.js';
import { readImageFiles } from './image-files.js';

const EXT = 'cpython-311-x86_64-linux-gnu.so';
let tmp: string;

beforeAll(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'dstack-toolchain-'));
});

afterAll(async () => {
  if (tmp) await fs.rm(tmp, { recursive: true, force: true });
});

describe("the original's toolchain in the factory, its runtime counterparts in the runtime", () => {
  it('links gfortran, HDF5 ($HDF5_DIR), SASL, LDAP, FFTW and OpenBLAS in the factory; the runtime loads it all', async () => {
    const [factory, runtime] = await Promise.all([sharedFactoryImage(), sharedRuntimeImage()]);
    const src = path.join(tmp, 'src');
    await fs.mkdir(src, { recursive: true });
    await fs.writeFile(
      path.join(src, 'tool.c'),
      '#include <hdf5.h>\n#include <sasl/sasl.h>\n#include <ldap.h>\n#include <fftw3.h>\n#include <cblas.h>\n' +
        'int tool(void) { unsigned a, b, c; H5get_libversion(&a, &b, &c); fftw_cleanup(); return (int)a + (sasl_errstring(0, 0, 0) != 0) + (ldap_err2string(0) != 0) + (int)cblas_ddot(0, 0, 1, 0, 1); }\n',
    );
    await fs.writeFile(path.join(src, 'f.f90'), 'subroutine hello()\n  print *, "hello"\nend subroutine\n');
    const build = await runInContainer(
      factory,
      [
        'sh',
        '-c',
        'set -e; mkdir -p /out; hg --version -q; cd /src; gfortran -fPIC -c f.f90 -o f.o; ' +
          `gcc -shared -fPIC -I"$HDF5_DIR/include" -I/usr/include/x86_64-linux-gnu/openblas-pthread tool.c f.o -o /out/_tool.${EXT} ` +
          '-L"$HDF5_DIR/lib" -lhdf5 -lsasl2 -lldap -lfftw3 -lopenblas -lgfortran',
      ],
      { input: { dir: src, path: '/src' }, outputPath: '/out', timeoutMs: 180_000 },
    );
    expect(build.stderr).toBe('');
    expect(build.stdout).toMatch(/^Mercurial Distributed SCM \(version \d+\.\d+/);
    expect(build.exitCode).toBe(0);
    const so = build.files.get(`_tool.${EXT}`);
    expect(so?.subarray(1, 4).toString()).toBe('ELF');
    const wheel = await writeWheel(tmp, { name: 'toolchain', version: '1.0', tag: 'cp311-cp311-linux_x86_64', files: { 'toolchain/__init__.py': '', [`toolchain/_tool.${EXT}`]: so! } });

    const { docker } = await sharedEngine();
    const cache = new BlobCache(path.join(tmp, 'cache'));
    const scheme = { prefix: '/env', pythonVersion: '3.11' };
    const onRuntime = await checkWheelLibraries({ base: await readDaemonImage(docker, runtime, { cache }), wheels: [{ path: wheel }], scheme, cache });
    expect(onRuntime.problems).toEqual([]);
    expect(onRuntime.checked).toBe(1);
    // The bare base has none of them: the check names what is missing and the runtime's package holding it.
    const runtimeFiles = await readImageFiles(await readDaemonImage(docker, runtime, { cache }), { cache });
    const onBase = await checkWheelLibraries({
      base: await readDaemonImage(docker, baseImageName, { cache }),
      wheels: [{ path: wheel }],
      scheme,
      cache,
      packages: imagePackageFinder(runtimeFiles, 'the runtime image'),
    });
    expect(onBase.problems.map((p) => [p.library, p.packages[0]]).sort()).toEqual([
      ['libfftw3.so.3', 'libfftw3-double3'],
      ['libgfortran.so.5', 'libgfortran5'],
      ['libhdf5_serial.so.103', 'libhdf5-103-1'],
      ['libldap-2.5.so.0', 'libldap-2.5-0'],
      ['libopenblas.so.0', 'libopenblas0-pthread'],
      ['libsasl2.so.2', 'libsasl2-2'],
    ]);
  }, 600_000);
});
