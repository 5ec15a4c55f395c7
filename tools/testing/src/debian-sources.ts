/**
 * Debian's source packages of real projects (no PyPI here): their `.orig.tar.*` are the upstream sdists, which a
 * test puts in a `--find-links` folder under pip's sdist name and builds in the factory image as a user's recipe
 * would. tools/system/debian-sources.sh fetches them once per machine (`apt-get source --download-only`); a
 * machine that cannot fetch them fails the test that asks, in CI and elsewhere alike.
 */
import { execFile } from 'node:child_process';
import { copyFile, mkdir } from 'node:fs/promises';
import path from 'node:path';
import { systemScriptsDir } from './docker.js';

export interface DebianSource {
  /** The source package's name, e.g. "pillow". */
  package: string;
  /** Debian's version, e.g. "9.4.0-1.1+deb12u1". */
  debianVersion: string;
  /** The upstream version, e.g. "9.4.0". */
  version: string;
  /** The `.orig.tar.*` file in the machine's cache. */
  orig: string;
}

/** The named source packages of the base's Debian release, fetched once per machine. */
export function debianSources(packages: string[]): Promise<DebianSource[]> {
  return new Promise((resolve, reject) => {
    execFile(
      'bash',
      [path.join(systemScriptsDir, 'debian-sources.sh'), ...packages],
      { maxBuffer: 4 * 1024 * 1024 },
      (error, stdout, stderr) => {
        if (error) {
          reject(
            new Error(
              `tools/system/debian-sources.sh ${packages.join(' ')} failed: ${(stderr || stdout).trim() || error.message}`,
            ),
          );
          return;
        }
        resolve(
          stdout
            .trim()
            .split('\n')
            .map((line) => {
              const [name, debianVersion, orig] = line.split(' ') as [string, string, string];
              // Debian's version: [epoch:]upstream[-revision].
              const version = debianVersion.replace(/^\d+:/, '').replace(/-[^-]+$/, '');
              return { package: name, debianVersion, version, orig };
            }),
        );
      },
    );
  });
}

/**
 * Copies each source's orig tarball into `dir` under the sdist name pip reads (`lxml-4.9.2.tar.gz`,
 * `pillow-9.4.0.tar.xz`): a `--find-links` folder. Returns the copied paths.
 */
export async function sdistsFromDebianSources(sources: DebianSource[], dir: string): Promise<string[]> {
  await mkdir(dir, { recursive: true });
  const out: string[] = [];
  for (const s of sources) {
    const ext = /\.orig(\.tar\.[a-z0-9]+)$/.exec(s.orig)?.[1];
    if (!ext) throw new Error(`not an orig tarball: ${s.orig}`);
    const file = path.join(dir, `${s.package}-${s.version}${ext}`);
    await copyFile(s.orig, file);
    out.push(file);
  }
  return out;
}
