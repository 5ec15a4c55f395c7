import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hostileWheels, isolatedPipEnv } from '@dstack/testing';
import { BlobCache } from '../../cache/blob-cache.js';
import { consoleScript, formatCsv, parseCsv, parseEntryPoints, planWheelInstall, recordHash } from './install.js';
import { writeWheelsLayer } from './wheels-layer.js';
import { hostBytecodeCompiler } from './bytecode.js';
import { installerFixtures, makeWheel } from '../../fixtures/wheel.test-support.js';

const run = promisify(execFile);
const PYTHON = '/root/.pyenv/versions/3.11.7/bin/python';
const scheme = { prefix: '/env', pythonVersion: '3.11' };
let tmp: string;
let wheelDir: string;
let wheels: string[];

beforeAll(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'dstack-image-wheel-'));
  wheelDir = path.join(tmp, 'wheels');
  await fs.mkdir(wheelDir);
  wheels = [];
  for (const w of installerFixtures()) wheels.push(await makeWheel(wheelDir, w));
});
afterAll(async () => {
  await fs.rm(tmp, { recursive: true, force: true });
});

/** Every file under `root` (relative path -> "mode contents" or "-> link"), skipping `skip`. */
async function tree(root: string, skip: Set<string> = new Set()): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const walk = async (rel: string): Promise<void> => {
    for (const d of await fs.readdir(path.join(root, rel), { withFileTypes: true })) {
      const r = rel ? `${rel}/${d.name}` : d.name;
      if (skip.has(r)) continue;
      const full = path.join(root, r);
      if (d.isSymbolicLink()) out.set(r, `-> ${await fs.readlink(full)}`);
      else if (d.isDirectory()) await walk(r);
      else {
        const st = await fs.stat(full);
        const body = await fs.readFile(full);
        const shown = r.endsWith('.pyc') ? `pyc sha256:${createHash('sha256').update(body).digest('hex')}` : body.toString('utf8');
        out.set(r, `${(st.mode & 0o111) !== 0 ? 'x' : '-'} ${shown}`);
      }
    }
  };
  await walk('');
  return out;
}

describe('wheel installer', () => {
  it('lays out wheels exactly as pip install does (paths, contents, modes, RECORD)', async () => {
    // Real pip into a real venv, isolated from this machine's pip configuration.
    const venv = path.join(tmp, 'venv');
    await run(PYTHON, ['-m', 'venv', '--without-pip', venv], { env: isolatedPipEnv() });
    const before = new Set((await tree(venv)).keys());
    await run(
      PYTHON,
      ['-m', 'pip', '--python', `${venv}/bin/python`, 'install', '--no-index', '--find-links', wheelDir, '--no-compile', 'alpha', 'beta-pkg'],
      { env: isolatedPipEnv() },
    );
    const pipTree = new Map<string, string>();
    const rewritten = new Set<string>();
    for (const [p, v] of await tree(venv)) {
      if (before.has(p)) continue;
      if (v.includes(venv)) rewritten.add(`env/${p}`);
      pipTree.set(`env/${p}`, v.replaceAll(venv, '/env'));
    }
    // pip's RECORD hashes the launchers with the test venv's path in their "#!" line: re-hash those rows for /env.
    for (const [p, v] of pipTree) {
      if (!p.endsWith('.dist-info/RECORD')) continue;
      const lib = path.posix.dirname(path.posix.dirname(p));
      const rows = parseCsv(v.slice(2)).map((r) => {
        const target = path.posix.join(lib, r[0]!);
        if (!rewritten.has(target)) return r;
        const body = Buffer.from(pipTree.get(target)!.slice(2));
        return [r[0]!, recordHash(body), String(body.length)];
      });
      pipTree.set(p, `- ${formatCsv(rows)}`);
    }
    // Ours, with INSTALLER set to what pip writes so that RECORD compares byte for byte.
    const cache = new BlobCache(path.join(tmp, 'cache'));
    const layer = await writeWheelsLayer(wheels, { scheme, cache, installer: 'pip' });
    const rootfs = path.join(tmp, 'rootfs');
    await fs.mkdir(rootfs);
    await run('sh', ['-c', `gzip -dc < ${cache.pathOf(layer.digest)} | tar -x -C ${rootfs}`]);
    const ours = await tree(rootfs);
    expect([...ours.keys()].sort()).toEqual([...pipTree.keys()].sort());
    expect(Object.fromEntries(ours)).toEqual(Object.fromEntries(pipTree));
    expect(ours.get('env/bin/alpha-tool')).toBe('x #!/env/bin/python\nprint("tool")\n');
    expect(ours.get('env/include/site/python3.11/alpha/alpha.h')).toBe('- #define ALPHA 1\n');
  });

  it('compiles as pip install does: the same .pyc bytes (checked hash-based, as pip writes under SOURCE_DATE_EPOCH), the same RECORD', async () => {
    // Beside the fixtures: a .py script (compiled, after its #! rewrite), a module that does not compile (skipped,
    // no .pyc, as pip's compileall skips it), a latin-1 module (PEP 263), set constants (frozensets: hash order).
    const dir = await fs.mkdtemp(path.join(tmp, 'compile-'));
    const extra = await makeWheel(dir, {
      name: 'gamma',
      version: '1.0',
      files: {
        'gamma/__init__.py': 'KINDS = {"alpha", "beta", "gamma", "delta"}\ndef kind(x):\n    return x in {"one", "two", "three"}\n',
        'gamma/broken.py': 'def broken(:\n',
        'gamma/latin.py': Buffer.from('# -*- coding: latin-1 -*-\nNAME = "caf\xe9"\n', 'latin1'),
        'gamma/sub/__init__.py': '',
        'gamma/sub/deep.py': 'import gamma\nclass Deep:\n    def f(self):\n        return [i for i in range(3)]\n',
        'gamma/data.txt': 'not python\n',
        'gamma-1.0.data/scripts/gamma_tool.py': '#!python\nimport gamma\nprint(gamma.KINDS)\n',
      },
    });
    const all = [...wheels, extra];
    const venv = path.join(tmp, 'venv-compiled');
    await run(PYTHON, ['-m', 'venv', '--without-pip', venv], { env: isolatedPipEnv() });
    const before = new Set((await tree(venv)).keys());
    await run(PYTHON, ['-m', 'pip', '--python', `${venv}/bin/python`, 'install', '--no-index', '--find-links', wheelDir, '--find-links', dir, 'alpha', 'beta-pkg', 'gamma'], {
      env: { ...isolatedPipEnv(), SOURCE_DATE_EPOCH: '0' },
    });
    const pipTree = new Map([...(await tree(venv))].filter(([p]) => !before.has(p)));
    // Ours into the same prefix (the .pyc name their source by its path), by the same interpreter.
    const cache = new BlobCache(path.join(dir, 'cache'));
    const compiler = hostBytecodeCompiler(PYTHON, 'cpython-311', { jobs: 2 });
    const layer = await writeWheelsLayer(all, { scheme: { prefix: venv, pythonVersion: '3.11' }, cache, installer: 'pip', bytecode: { cacheTag: 'cpython-311', compiler: async () => compiler } });
    const rootfs = path.join(dir, 'rootfs');
    await fs.mkdir(rootfs);
    await run('sh', ['-c', `gzip -dc < ${cache.pathOf(layer.digest)} | tar -x -C ${rootfs}`]);
    const ours = await tree(path.join(rootfs, venv));
    expect([...ours.keys()].sort()).toEqual([...pipTree.keys()].sort());
    expect(Object.fromEntries(ours)).toEqual(Object.fromEntries(pipTree));
    const lib = 'lib/python3.11/site-packages';
    expect([...ours.keys()].filter((p) => p.endsWith('.pyc')).sort()).toEqual([
      'bin/__pycache__/gamma_tool.cpython-311.pyc',
      `${lib}/__pycache__/beta_extra.cpython-311.pyc`,
      `${lib}/alpha/__pycache__/__init__.cpython-311.pyc`,
      `${lib}/alpha/__pycache__/cli.cpython-311.pyc`,
      `${lib}/beta_pkg/__pycache__/__init__.cpython-311.pyc`,
      `${lib}/gamma/__pycache__/__init__.cpython-311.pyc`,
      `${lib}/gamma/__pycache__/latin.cpython-311.pyc`,
      `${lib}/gamma/sub/__pycache__/__init__.cpython-311.pyc`,
      `${lib}/gamma/sub/__pycache__/deep.cpython-311.pyc`,
    ]);
    // PEP 552: flags 0b11 (hash-based, checked); pip's RECORD lists the .pyc with neither hash nor size.
    const pyc = await fs.readFile(path.join(rootfs, venv, lib, 'gamma/__pycache__/__init__.cpython-311.pyc'));
    expect(pyc.readUInt32LE(4)).toBe(0b11);
    expect(ours.get(`${lib}/gamma-1.0.dist-info/RECORD`)).toContain('\r\ngamma/__pycache__/__init__.cpython-311.pyc,,\r\n');
    expect(ours.get(`${lib}/gamma-1.0.dist-info/RECORD`)).toContain('- ../../../bin/__pycache__/gamma_tool.cpython-311.pyc,,\r\n../../../bin/gamma_tool.py,');
  }, 120_000);

  it('gives the same layer digest for the same wheels, in any order', async () => {
    const cache = new BlobCache(path.join(tmp, 'cache-order'));
    const a = await writeWheelsLayer(wheels, { scheme, cache });
    const b = await writeWheelsLayer([...wheels].reverse(), { scheme, cache });
    expect(b.digest).toBe(a.digest);
  });

  it.each([
    ['a member escaping the root', { raw: [{ name: 'evil/../../etc/passwd', data: 'x' }] }, /invalid relative path|escaping/],
    ['an absolute member', { raw: [{ name: '/etc/passwd', data: 'x' }] }, /absolute path|absolute member/],
    ['a symlink member', { raw: [{ name: 'evil/link', data: '/etc/passwd', mode: 0o120777 }] }, 'symbolic link member: evil/link'],
    ['an unknown .data scheme', { files: { 'evil-1.0.data/root/x': 'x' } }, 'unknown .data scheme "root" in evil-1.0.data/root/x'],
    ['a file whose hash differs from RECORD', { recordOverride: (rows: string[]) => rows.map((r) => r.replace(/^(evil\/__init__\.py,sha256=)[^,]+/, '$1AAAA')) }, 'evil-1.0-py3-none-any.whl: evil/__init__.py does not match its RECORD hash'],
  ])('refuses %s (its own guard, without the wheelhouse validation in front)', async (_label, extra, message) => {
    const dir = await fs.mkdtemp(path.join(tmp, 'evil-'));
    const file = await makeWheel(dir, { name: 'evil', version: '1.0', files: { 'evil/__init__.py': '' }, ...extra } as Parameters<typeof makeWheel>[1]);
    const cache = new BlobCache(path.join(dir, 'cache'));
    await expect(writeWheelsLayer([file], { scheme, cache, validate: false })).rejects.toThrow(message);
  });

  it.each([
    ['sha512, urlsafe base64', 'sha512', 'base64url'],
    ['sha256 written in hex (as gmsh does)', 'sha256', 'hex'],
  ] as const)('checks RECORD rows in %s while installing, and refuses a tampered one', async (_label, algorithm, encoding) => {
    const dir = await fs.mkdtemp(path.join(tmp, `record-${algorithm}-${encoding}-`));
    const body = 'VALUE = 1\n';
    const digest = (data: string): string => createHash(algorithm).update(data).digest(encoding);
    const rewrite = (data: string) => (rows: string[]) =>
      rows.map((r) => r.replace(/^(alg\/__init__\.py),sha256=[^,]+/, `$1,${algorithm}=${digest(data)}`));
    const good = await makeWheel(dir, { name: 'alg', version: '1.0', files: { 'alg/__init__.py': body }, recordOverride: rewrite(body) });
    const layer = await writeWheelsLayer([good], { scheme, cache: new BlobCache(path.join(dir, 'cache-good')) });
    expect(layer.size).toBeGreaterThan(0);
    await fs.mkdir(path.join(dir, 'bad'));
    const bad = await makeWheel(path.join(dir, 'bad'), { name: 'alg', version: '1.0', files: { 'alg/__init__.py': body }, recordOverride: rewrite('VALUE = 2\n') });
    const err = await writeWheelsLayer([bad], { scheme, cache: new BlobCache(path.join(dir, 'cache-bad')) }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'WHEEL_RECORD_MISMATCH', message: 'alg-1.0-py3-none-any.whl: alg/__init__.py does not match its RECORD hash' });
  });

  it('streams members over 1 MiB, reads a zip over 32 MiB member by member, and checks both against RECORD', async () => {
    const dir = await fs.mkdtemp(path.join(tmp, 'big-'));
    const huge = randomBytes(33 << 20); // incompressible: the wheel is over 32 MiB
    const mid = Buffer.from(randomBytes(3 << 19).toString('hex')); // over 1 MiB: streamed (hex: compresses ~2x)
    const file = await makeWheel(dir, { name: 'big', version: '1.0', files: { 'big/__init__.py': 'X = 1\n', 'big/huge.bin': huge, 'big/mid.bin': mid } });
    const cache = new BlobCache(path.join(dir, 'cache'));
    const layer = await writeWheelsLayer([file], { scheme, cache, compression: 'none' });
    const out = path.join(dir, 'out');
    await fs.mkdir(out);
    await run('tar', ['-xf', cache.pathOf(layer.digest), '-C', out]);
    const lib = path.join(out, 'env/lib/python3.11/site-packages/big');
    const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
    expect(sha(await fs.readFile(path.join(lib, 'huge.bin')))).toBe(sha(huge));
    expect(sha(await fs.readFile(path.join(lib, 'mid.bin')))).toBe(sha(mid));

    await fs.mkdir(path.join(dir, 'bad'));
    const other = createHash('sha256').update('other').digest('base64url');
    const bad = await makeWheel(path.join(dir, 'bad'), {
      name: 'big',
      version: '1.0',
      files: { 'big/mid.bin': mid },
      recordOverride: (rows) => rows.map((r) => r.replace(/^(big\/mid\.bin),sha256=[^,]+/, `$1,sha256=${other}`)),
    });
    const err = await writeWheelsLayer([bad], { scheme, cache: new BlobCache(path.join(dir, 'cache-bad')) }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'WHEEL_RECORD_MISMATCH', message: 'big-1.0-py3-none-any.whl: big/mid.bin does not match its RECORD hash' });
  }, 60_000);

  it.each(hostileWheels().map((h) => [h.id, h] as const))('refuses the shared hostile wheel %s with its code', async (_id, h) => {
    const dir = await fs.mkdtemp(path.join(tmp, `hostile-${h.id}-`));
    const file = path.join(dir, h.filename);
    await fs.writeFile(file, await h.bytes());
    const cache = new BlobCache(path.join(dir, 'cache'));
    const err = await writeWheelsLayer([file], { scheme, cache, validate: h.limits ?? true }).catch((e: unknown) => e);
    expect((err as { code?: string }).code).toBe(h.code);
    expect(await fs.readdir(path.join(dir, 'cache')).catch(() => [])).not.toContain('blobs');
  });

  it('refuses two wheels installing the same file', async () => {
    const dir = await fs.mkdtemp(path.join(tmp, 'clash-'));
    const a = await makeWheel(dir, { name: 'one', version: '1', files: { 'shared/x.py': 'a' } });
    const b = await makeWheel(dir, { name: 'two', version: '1', files: { 'shared/x.py': 'b' } });
    await expect(writeWheelsLayer([a, b], { scheme, cache: new BlobCache(path.join(dir, 'c')) })).rejects.toThrow(
      'two-1-py3-none-any.whl and one-1-py3-none-any.whl both install /env/lib/python3.11/site-packages/shared/x.py',
    );
  });

  it('plans without reading file bodies but the small ones', async () => {
    const p = await planWheelInstall(wheels[0]!, { scheme });
    try {
      expect(p.entries.map((e) => e.path).filter((x) => x.includes('/bin/')).sort()).toEqual([
        'env/bin/alpha-cli', 'env/bin/alpha-gui', 'env/bin/alpha-run', 'env/bin/alpha-sh', 'env/bin/alpha-tool',
      ]);
      expect(p.entries.find((e) => e.path.endsWith('alpha/cli.py'))?.data).toBeUndefined();
    } finally {
      p.close();
    }
  });
});

describe('installer helpers', () => {
  it('reads and writes RECORD as Python csv does', () => {
    expect(parseCsv('a,b,1\n"x,""y""",h,2\r\nz,,\n')).toEqual([['a', 'b', '1'], ['x,"y"', 'h', '2'], ['z', '', '']]);
    expect(formatCsv([['x,"y"', 'h', '2'], ['z', '', '']])).toBe('"x,""y""",h,2\r\nz,,\r\n');
  });
  it('reads console and gui scripts from entry_points.txt', () => {
    expect(parseEntryPoints('[console_scripts]\nfoo = pkg.mod:main [extra]\n[other]\nbar = x:y\n[gui_scripts]\ng=pkg:run\n')).toEqual([
      { name: 'foo', module: 'pkg.mod', attr: 'main', gui: false },
      { name: 'g', module: 'pkg', attr: 'run', gui: true },
    ]);
    expect(() => parseEntryPoints('[console_scripts]\nfoo = pkg.mod\n')).toThrow('entry point foo = pkg.mod: expected module:attr');
  });
  it('writes the launcher distlib writes', () => {
    expect(consoleScript('/env/bin/python', 'a.b', 'C.run')).toContain('from a.b import C\n');
  });
});
