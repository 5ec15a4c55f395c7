// Test fixtures built in code: wheels written by Python's zipfile (no binaries committed). Not part of the build.
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import type { BlobCache } from './blobs.js';
import { appendLayers, emptyImage, type Image } from './image.js';
import { writeLayer } from './layer.js';

export interface FixtureWheel {
  name: string;
  version: string;
  tag?: string;
  rootIsPurelib?: boolean;
  /** Member path -> contents; a path under "<name>-<version>.data/…" lands in that scheme. */
  files: Record<string, string | Buffer>;
  executable?: string[];
  entryPoints?: string;
  requires?: string[];
  /** Extra raw RECORD tampering for hostile tests. */
  recordOverride?: (rows: string[]) => string[];
  /** Members added after RECORD is written (e.g. a path that escapes), as raw yazl additions. */
  raw?: { name: string; data: string; mode?: number }[];
}

const ZIP_SCRIPT = `
import base64, json, sys, zipfile
with zipfile.ZipFile(sys.argv[1], "w", zipfile.ZIP_DEFLATED) as z:
    for name, data, mode in json.load(sys.stdin):
        info = zipfile.ZipInfo(name, (2020, 1, 1, 0, 0, 0))
        info.external_attr = mode << 16
        info.compress_type = zipfile.ZIP_DEFLATED
        z.writestr(info, base64.b64decode(data))
`;

const hash = (b: Buffer): string => 'sha256=' + createHash('sha256').update(b).digest('base64url');

export async function makeWheel(dir: string, w: FixtureWheel): Promise<string> {
  const dist = w.name.replace(/[-_.]+/g, '_');
  const tag = w.tag ?? 'py3-none-any';
  const distInfo = `${dist}-${w.version}.dist-info`;
  const metadata =
    `Metadata-Version: 2.1\nName: ${w.name}\nVersion: ${w.version}\n` +
    (w.requires ?? []).map((r) => `Requires-Dist: ${r}\n`).join('');
  const members: [string, Buffer, number][] = Object.entries(w.files).map(([p, c]) => [
    p,
    Buffer.isBuffer(c) ? c : Buffer.from(c),
    w.executable?.includes(p) ? 0o100755 : 0o100644,
  ]);
  members.push([`${distInfo}/METADATA`, Buffer.from(metadata), 0o100644]);
  members.push([
    `${distInfo}/WHEEL`,
    Buffer.from(`Wheel-Version: 1.0\nGenerator: dstack-test\nRoot-Is-Purelib: ${w.rootIsPurelib ?? true}\nTag: ${tag}\n`),
    0o100644,
  ]);
  if (w.entryPoints) members.push([`${distInfo}/entry_points.txt`, Buffer.from(w.entryPoints), 0o100644]);
  let rows = members.map(([p, b]) => `${/[,"]/.test(p) ? `"${p.replaceAll('"', '""')}"` : p},${hash(b)},${b.length}`);
  rows.push(`${distInfo}/RECORD,,`);
  if (w.recordOverride) rows = w.recordOverride(rows);
  members.push([`${distInfo}/RECORD`, Buffer.from(rows.join('\n') + '\n'), 0o100644]);
  const file = path.join(dir, `${dist}-${w.version}-${tag}.whl`);
  const spec = [
    ...members.map(([p, b, mode]) => [p, b.toString('base64'), mode]),
    ...(w.raw ?? []).map((r) => [r.name, Buffer.from(r.data).toString('base64'), r.mode ?? 0o100644]),
  ];
  execFileSync('python3', ['-c', ZIP_SCRIPT, file], { input: JSON.stringify(spec) });
  return file;
}

/** Two wheels exercising every part of the installer. */
export function installerFixtures(): FixtureWheel[] {
  return [
    {
      name: 'alpha',
      version: '1.0',
      files: {
        'alpha/__init__.py': 'VALUE = 42\n',
        'alpha/cli.py': 'def main():\n    print("alpha says", __import__("alpha").VALUE)\n    return 0\n\nclass Tool:\n    @staticmethod\n    def run():\n        return 0\n',
        'alpha/run.sh': '#!/bin/sh\necho run\n',
        'alpha/we,ird "name".txt': 'comma and quotes\n',
        'alpha-1.0.data/scripts/alpha-tool': '#!python\nprint("tool")\n',
        'alpha-1.0.data/scripts/alpha-sh': '#!/bin/sh\necho sh\n',
        'alpha-1.0.data/data/share/alpha/readme.txt': 'data file\n',
        'alpha-1.0.data/headers/alpha.h': '#define ALPHA 1\n',
      },
      executable: ['alpha/run.sh', 'alpha-1.0.data/scripts/alpha-tool'],
      entryPoints: '[console_scripts]\nalpha-cli = alpha.cli:main\nalpha-run = alpha.cli:Tool.run\n\n[gui_scripts]\nalpha-gui = alpha.cli:main\n\n[alpha.plugins]\nx = alpha.cli:main\n',
    },
    {
      name: 'Beta.Pkg',
      version: '2.0',
      tag: 'cp311-cp311-linux_x86_64',
      rootIsPurelib: false,
      files: {
        'beta_pkg/__init__.py': 'from beta_extra import EXTRA\n',
        'Beta_Pkg-2.0.data/purelib/beta_extra.py': 'EXTRA = "extra"\n',
      },
    },
  ];
}

/** A base made in code: a Debian-like tree with python3.11, passwd, group and dpkg's status. */
export async function fakeBase(cache: BlobCache): Promise<Image> {
  const layer = await writeLayer(
    [
      { path: 'usr/bin/python3.11', type: 'file', data: Buffer.from('ELF'), mode: 0o755 },
      { path: 'usr/bin/python3', type: 'symlink', linkname: 'python3.11' },
      { path: 'etc/passwd', type: 'file', data: Buffer.from('root:x:0:0:root:/root:/bin/bash\n') },
      { path: 'etc/group', type: 'file', data: Buffer.from('root:x:0:\n') },
      {
        path: 'var/lib/dpkg/status',
        type: 'file',
        data: Buffer.from('Package: python3.11-minimal\nStatus: install ok installed\nVersion: 3.11.2-6+deb12u6\n\n'),
      },
    ],
    { cache },
  );
  const img = appendLayers(emptyImage(), [{ layer, history: { created_by: 'fake base' } }]);
  return img;
}

