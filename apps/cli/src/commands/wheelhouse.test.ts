import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compileElf, hostileWheels, writeWheel } from '@dstack/testing';
import { runCli } from '../run-cli.test-support.js';

// The real command tree (main.ts), quiet logs, NO_COLOR: exactly what a user's shell would run.
async function cli(
  args: string[],
  env: NodeJS.ProcessEnv = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  return runCli(['--quiet', '--log-format', 'json', ...args], { env: { NO_COLOR: '1', ...env }, cwd: dir });
}

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'dstack-wheelhouse-cli-'));
  await mkdir(path.join(dir, 'in'));
  await writeWheel(path.join(dir, 'in'), { name: 'Foo.Bar', version: '1.0' });
  await writeWheel(path.join(dir, 'in'), { name: 'Foo.Bar', version: '2.0' });
  await writeWheel(path.join(dir, 'in'), {
    name: 'baz',
    version: '0.1',
    tag: 'cp311-cp311-manylinux_2_17_x86_64',
  });
  const evil = hostileWheels().find((h) => h.id === 'dotdot-path')!;
  await writeFile(path.join(dir, evil.filename), await evil.bytes());
});
afterAll(() => rm(dir, { recursive: true, force: true }));

describe('dstack-factory wheelhouse', () => {
  it('add: stores a folder of wheels, says present the second time, and refuses a hostile wheel (exit 1)', async () => {
    const first = await cli(['wheelhouse', 'add', 'in', '--built-by', 'executor=local', 'python=3.11.7']);
    expect(first.code).toBe(0);
    expect(first.stdout.split('\n').map((l) => l.replace(/sha256:[0-9a-f]{12}/, 'sha256:…'))).toEqual([
      'added   foo_bar-1.0-py3-none-any.whl  sha256:…',
      'added   foo_bar-2.0-py3-none-any.whl  sha256:…',
      'added   baz-0.1-cp311-cp311-manylinux_2_17_x86_64.whl  sha256:…',
      '',
    ]);
    const second = await cli([
      'wheelhouse',
      'add',
      'in/Foo_Bar-1.0-py3-none-any.whl',
      'evil-1.0-py3-none-any.whl',
    ]);
    expect(second.code).toBe(1);
    expect(second.stdout).toMatch(/^present foo_bar-1\.0-py3-none-any\.whl  sha256:[0-9a-f]{12}\n/);
    expect(second.stdout).toContain(
      'refused evil-1.0-py3-none-any.whl  WHEEL_PATH_UNSAFE: evil-1.0-py3-none-any.whl: member "../../evil.pth" escapes with ".."\n',
    );
    expect((await readdir(path.join(dir, 'wheelhouse'))).sort()).toEqual([
      '.dstack',
      'baz-0.1-cp311-cp311-manylinux_2_17_x86_64.whl',
      'foo_bar-1.0-py3-none-any.whl',
      'foo_bar-2.0-py3-none-any.whl',
    ]);
  });

  it('list: a table with the builder, one project, or JSON', async () => {
    const table = await cli(['wheelhouse', 'list']);
    expect(table.code).toBe(0);
    const lines = table.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^wheel\s+bytes\s+added\s+built by\s+sha256$/);
    expect(lines).toHaveLength(4);
    expect(lines[3]).toMatch(
      /^foo_bar-2\.0-py3-none-any\.whl\s+\d+\s+\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\s+executor=local,python=3\.11\.7\s+[0-9a-f]{12}$/,
    );
    const json = await cli(['wheelhouse', 'list', 'foo.bar', '--json']);
    const entries = JSON.parse(json.stdout) as { filename: string; builtBy: Record<string, string> }[];
    expect(entries.map((e) => e.filename)).toEqual([
      'foo_bar-1.0-py3-none-any.whl',
      'foo_bar-2.0-py3-none-any.whl',
    ]);
    expect(entries[0]!.builtBy).toEqual({ executor: 'local', python: '3.11.7' });
  });

  it('list --needs: the shared libraries each wheel needs from the system, recorded when it was added', async () => {
    await mkdir(path.join(dir, 'native'));
    const so = await compileElf({ dir: path.join(dir, 'native'), output: '_z.cpython-311-x86_64-linux-gnu.so', args: ['-lz'] });
    const lib = await compileElf({ dir: path.join(dir, 'native'), output: 'libown.so.1', args: ['-Wl,-soname,libown.so.1'] });
    const ext = await compileElf({ dir: path.join(dir, 'native'), output: '_own.cpython-311-x86_64-linux-gnu.so', args: [lib, '-Wl,-rpath,$ORIGIN/../zext.libs'] });
    await writeWheel(path.join(dir, 'native'), {
      name: 'zext',
      version: '1.0',
      tag: 'cp311-cp311-linux_x86_64',
      files: {
        'zext/__init__.py': '',
        'zext/_z.cpython-311-x86_64-linux-gnu.so': await readFile(so),
        'zext/_own.cpython-311-x86_64-linux-gnu.so': await readFile(ext),
        'zext.libs/libown.so.1': await readFile(lib),
      },
    });
    const wh = ['--wheelhouse', 'needs-wh'];
    expect((await cli(['wheelhouse', 'add', 'native/zext-1.0-cp311-cp311-linux_x86_64.whl', 'in/Foo_Bar-1.0-py3-none-any.whl', ...wh])).code).toBe(0);
    const listed = await cli(['wheelhouse', 'list', '--needs', ...wh]);
    expect(listed.stdout).toBe(
      [
        'wheel                                  needs',
        'foo_bar-1.0-py3-none-any.whl           -',
        'zext-1.0-cp311-cp311-linux_x86_64.whl  libc.so.6 libz.so.1',
        '',
      ].join('\n'),
    );
    const record = JSON.parse(await readFile(path.join(dir, 'needs-wh/.dstack/wheels/zext-1.0-cp311-cp311-linux_x86_64.whl.json'), 'utf8'));
    expect(record.entry.needs).toEqual(['libc.so.6', 'libz.so.1']);
  });

  it('takes --wheelhouse, then $WHEELHOUSE', async () => {
    expect((await cli(['wheelhouse', 'list', '--wheelhouse', 'elsewhere'])).stdout).toBe('no wheels\n');
    expect(
      (await cli(['wheelhouse', 'list', '--json'], { WHEELHOUSE: path.join(dir, 'elsewhere') })).stdout,
    ).toBe('[]\n');
  });

  it('index: writes a static simple index', async () => {
    const r = await cli(['wheelhouse', 'index', '--out', 'site']);
    expect(r).toEqual({
      code: 0,
      stdout: `wrote 2 projects, 3 wheels to ${path.join(dir, 'site', 'simple')}\n`,
      stderr: '',
    });
    expect(await readFile(path.join(dir, 'site', 'simple', 'index.html'), 'utf8')).toContain(
      '<a href="foo-bar/">foo-bar</a>',
    );
  });

  it('verify: exit 1 and names the corrupt wheel', async () => {
    expect(await cli(['wheelhouse', 'verify'])).toEqual({
      code: 0,
      stdout: '3 wheels ok, 0 corrupt\n',
      stderr: '',
    });
    const victim = path.join(dir, 'wheelhouse', 'baz-0.1-cp311-cp311-manylinux_2_17_x86_64.whl');
    const bytes = await readFile(victim);
    bytes[50] = bytes[50]! ^ 1;
    await writeFile(victim, bytes);
    const r = await cli(['wheelhouse', 'verify']);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(
      /^corrupt baz-0\.1-cp311-cp311-manylinux_2_17_x86_64\.whl: sha256 [0-9a-f]{64} \(\d+ bytes\) differs from the recorded [0-9a-f]{64} \(\d+ bytes\)\n2 wheels ok, 1 corrupt\n$/,
    );
  });

  it('remove PROJECT==VERSION removes its wheels; an unknown one is an error', async () => {
    expect(await cli(['wheelhouse', 'remove', 'foo.bar==1.0.0'])).toEqual({
      code: 0,
      stdout: 'removed foo_bar-1.0-py3-none-any.whl\n',
      stderr: '',
    });
    const missing = await cli(['wheelhouse', 'remove', 'foo-bar==1.0']);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toBe(
      `error[WHEEL_NOT_FOUND]: no wheel of foo-bar 1.0 in ${path.join(dir, 'wheelhouse')}\n`,
    );
    const usage = await cli(['wheelhouse', 'remove', 'foo-bar']);
    expect(usage.code).toBe(2);
    expect(usage.stderr).toBe('error[USAGE]: remove takes PROJECT==VERSION, not "foo-bar"\n');
  });

  it('add: one release, one set of bytes whatever the spelling; build tags only with --allow-build-tag', async () => {
    const other = path.join(dir, 'other');
    await mkdir(other);
    // foo_bar 2.0 is in the wheelhouse (first test); these spell the same release with other bytes
    await writeWheel(
      other,
      { name: 'foo.bar', version: '2.0.0', summary: 'not the same' },
      'Foo.Bar-2.0.0-py3-none-any.whl',
    );
    await writeWheel(other, { name: 'spam', version: '1.0', build: '1' });
    const r = await cli(['wheelhouse', 'add', 'other']);
    expect(r.code).toBe(1);
    expect(r.stdout.replace(/(sha256|new) [0-9a-f]{64}/g, '$1 …')).toBe(
      'refused Foo.Bar-2.0.0-py3-none-any.whl  WHEEL_CONFLICT: Foo.Bar-2.0.0-py3-none-any.whl is the release the wheelhouse holds as foo_bar-2.0-py3-none-any.whl with different bytes (sha256 …, new …)\n' +
        'refused spam-1.0-1-py3-none-any.whl  WHEEL_BUILD_TAG: spam-1.0-1-py3-none-any.whl: the build tag "1" is not taken here\n',
    );
    const allowed = await cli([
      'wheelhouse',
      'add',
      '--allow-build-tag',
      path.join('other', 'spam-1.0-1-py3-none-any.whl'),
    ]);
    expect(allowed.stdout).toMatch(/^added {3}spam-1\.0-1-py3-none-any\.whl {2}sha256:[0-9a-f]{12}\n$/);
  });
});

describe('dstack-factory wheelhouse prune (the archive keeps what goes)', () => {
  it('removes the wheels no lock names, each only once the archive holds the same bytes', async () => {
    const root = path.join(dir, 'prune');
    await mkdir(path.join(root, 'in'), { recursive: true });
    for (const [name, version] of [['kept', '1.0'], ['gone', '1.0'], ['clash', '1.0']] as const) {
      await writeWheel(path.join(root, 'in'), { name, version });
    }
    const run = (args: string[], env: NodeJS.ProcessEnv = {}) =>
      runCli(['--quiet', '--log-format', 'json', ...args], { env: { NO_COLOR: '1', ...env }, cwd: root });
    expect((await run(['wheelhouse', 'add', 'in'])).code).toBe(0);
    await mkdir(path.join(root, 'recipes', 'locks', 'app'), { recursive: true });
    await writeFile(
      path.join(root, 'recipes', 'locks', 'app', 'pylock.cp311-linux_x86_64.toml'),
      'lock-version = "1.0"\ncreated-by = "test"\n\n[[packages]]\nname = "kept"\nversion = "1.0"\n\n[[packages.wheels]]\nname = "kept-1.0-py3-none-any.whl"\npath = "../../../wheelhouse/kept-1.0-py3-none-any.whl"\nhashes = { sha256 = "00" }\n',
    );
    // Another wheel under clash's name is in the archive already: clash stays in the wheelhouse.
    await mkdir(path.join(root, 'archive'));
    await writeWheel(path.join(root, 'archive'), { name: 'clash', version: '1.0', files: { 'clash/__init__.py': 'OTHER = 1\n' } });

    const refused = await run(['wheelhouse', 'prune']);
    expect([refused.code, refused.stderr]).toEqual([
      2,
      'error[USAGE]: prune removes wheels from the wheelhouse only once the archive holds them: set ARCHIVE or pass --archive DIR\n',
    ]);
    const dry = await run(['wheelhouse', 'prune', '--dry-run'], { ARCHIVE: 'archive' });
    expect(dry.stdout).toBe(
      `would remove clash-1.0-py3-none-any.whl\nwould remove gone-1.0-py3-none-any.whl\n2 to remove, 1 named by locks in ${path.join(root, 'recipes', 'locks')}\n`,
    );
    const gone = await readFile(path.join(root, 'wheelhouse', 'gone-1.0-py3-none-any.whl'));
    const r = await run(['wheelhouse', 'prune'], { ARCHIVE: 'archive' });
    expect(r.stderr).toBe(`kept clash-1.0-py3-none-any.whl: ${path.join(root, 'archive', 'clash-1.0-py3-none-any.whl')} holds other bytes under that name\n`);
    expect(r.stdout).toBe(
      `removed gone-1.0-py3-none-any.whl\n1 removed (1 archived now, into ${path.join(root, 'archive')}), 1 named by locks kept\n`,
    );
    expect(r.code).toBe(1);
    expect((await readdir(path.join(root, 'wheelhouse'))).filter((f) => f.endsWith('.whl')).sort()).toEqual([
      'clash-1.0-py3-none-any.whl',
      'kept-1.0-py3-none-any.whl',
    ]);
    expect(await readFile(path.join(root, 'archive', 'gone-1.0-py3-none-any.whl'))).toEqual(gone);
    expect((await readdir(path.join(root, 'archive'))).sort()).toEqual(['clash-1.0-py3-none-any.whl', 'gone-1.0-py3-none-any.whl']);
  });
});
