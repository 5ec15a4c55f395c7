// Real ELF files for the shared-library check's tests: small C sources compiled with the host's gcc (and
// Debian's aarch64 cross compiler for a foreign architecture; tools/system/setup.sh installs both).
import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface CompileOptions {
  /** Where the source and the output go. */
  dir: string;
  /** Output file name, e.g. `libdep.so.1` or `ext.cpython-311-x86_64-linux-gnu.so`. */
  output: string;
  /** C source (default: one exported function). */
  source?: string;
  /** `gcc` (default) or a cross compiler such as `aarch64-linux-gnu-gcc`. */
  cc?: string;
  /** Build an executable instead of a shared object. */
  executable?: boolean;
  /** Extra arguments after the source: `-L DIR`, `-lpq`, `-Wl,-soname,…`, `-Wl,-rpath,$ORIGIN/…`. */
  args?: string[];
}

/** Compiles a C source into a shared object (or an executable); returns its path. */
export async function compileElf(options: CompileOptions): Promise<string> {
  const src = join(options.dir, `${options.output}.c`);
  const out = join(options.dir, options.output);
  await writeFile(src, options.source ?? `int ${options.output.replace(/[^A-Za-z0-9]/g, '_')}_answer(void) { return 42; }\n`);
  const cc = options.cc ?? 'gcc';
  const kind = options.executable ? [] : ['-shared', '-fPIC'];
  try {
    // --no-as-needed: every library named is recorded in DT_NEEDED, used or not (some gcc default to --as-needed).
    await run(cc, [...kind, '-O0', '-Wl,--no-as-needed', '-o', out, src, ...(options.args ?? [])]);
  } catch (error) {
    const e = error as { code?: string; stderr?: string };
    if (e.code === 'ENOENT') throw new Error(`${cc} is not installed: run sudo bash tools/system/setup.sh`, { cause: error });
    throw new Error(`${cc} failed for ${options.output}: ${e.stderr ?? String(error)}`, { cause: error });
  }
  return out;
}

/** Debian's compiler and multiarch triplet per wheel machine: the host's gcc, or the aarch64 cross compiler. */
const COMPILERS: Record<'x86_64' | 'aarch64', { cc: string; triplet: string }> = {
  x86_64: { cc: 'x86_64-linux-gnu-gcc', triplet: 'x86_64-linux-gnu' },
  aarch64: { cc: 'aarch64-linux-gnu-gcc', triplet: 'aarch64-linux-gnu' },
};

/**
 * A CPython 3.11 C extension module, compiled for `machine` (aarch64 with Debian's gcc-aarch64-linux-gnu
 * against libpython3.11-dev:arm64's headers; tools/system/setup.sh installs both): `import <name>` and
 * `<name>.machine()` answers the machine it was compiled for. Returns the .so's path (`<name>.cpython-311-<triplet>.so`).
 */
export async function compilePythonExtension(options: { dir: string; name: string; machine: 'x86_64' | 'aarch64' }): Promise<string> {
  const { cc, triplet } = COMPILERS[options.machine];
  const { name } = options;
  const source = `#define PY_SSIZE_T_CLEAN
#include <Python.h>
static PyObject *machine(PyObject *self, PyObject *args) { return PyUnicode_FromString("${options.machine}"); }
static PyMethodDef methods[] = {{"machine", machine, METH_NOARGS, "the machine this module was compiled for"}, {NULL, NULL, 0, NULL}};
static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "${name}", NULL, -1, methods};
PyMODINIT_FUNC PyInit_${name}(void) { return PyModule_Create(&module); }
`;
  // Debian's /usr/include/python3.11/pyconfig.h includes the architecture's own (/usr/include/<triplet>/python3.11).
  return compileElf({ dir: options.dir, output: `${name}.cpython-311-${triplet}.so`, source, cc, args: ['-I/usr/include/python3.11', `-I/usr/include/${triplet}/python3.11`] });
}
