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
