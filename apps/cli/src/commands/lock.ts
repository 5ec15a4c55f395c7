import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { Command } from 'commander';
import type { LockDiff, LockedDistribution } from '@dstack/recipe';
import type { CliContext, Runner } from '../context.js';
import { CliError } from '../errors.js';

const short = (d: LockedDistribution): string => d.sha256.map((h) => h.slice(0, 12)).join(',') || 'no hash';

/** The diff as lines a reader scans: changed first (the upgrade), then added and removed, then the counts. */
export function renderLockDiff(diff: LockDiff): string {
  const lines: string[] = [];
  for (const c of diff.changed) {
    lines.push(
      c.from.version === c.to.version
        ? `changed ${c.name} ${c.to.version}: same version, other wheel (sha256 ${short(c.from)} -> ${short(c.to)})`
        : `changed ${c.name} ${c.from.version} -> ${c.to.version} (sha256 ${short(c.from)} -> ${short(c.to)})`,
    );
  }
  for (const d of diff.added) lines.push(`added   ${d.name} ${d.version}${d.marker ? ` ; ${d.marker}` : ''} (sha256 ${short(d)})`);
  for (const d of diff.removed) lines.push(`removed ${d.name} ${d.version}${d.marker ? ` ; ${d.marker}` : ''}`);
  lines.push(`${diff.changed.length} changed, ${diff.added.length} added, ${diff.removed.length} removed, ${diff.unchanged} unchanged`);
  return `${lines.join('\n')}\n`;
}

/**
 * The Python distributions of a CycloneDX SBOM (an image's `<output>.cdx.json`): every component whose PURL is
 * `pkg:pypi/…`, with its SHA-256 hashes (the installed wheel's). Anything else in the SBOM (the image, the base's
 * files) is not a distribution and is left out.
 */
export function sbomDistributions(bom: unknown, where: string): LockedDistribution[] {
  const b = bom as { bomFormat?: unknown; components?: unknown };
  if (b.bomFormat !== 'CycloneDX' || !Array.isArray(b.components)) {
    throw new CliError('LOCK_UNREADABLE', `${where} is JSON but not a CycloneDX SBOM (no bomFormat "CycloneDX" with components)`, {
      hint: 'give PEP 751 locks (pylock.<target>.toml) or the SBOMs image app writes (<output>.cdx.json)',
    });
  }
  const out: LockedDistribution[] = [];
  for (const c of b.components as { name?: string; version?: string; purl?: string; hashes?: { alg?: string; content?: string }[] }[]) {
    if (typeof c.purl !== 'string' || !c.purl.startsWith('pkg:pypi/') || !c.name || !c.version) continue;
    out.push({
      name: c.name.toLowerCase().replace(/[-_.]+/g, '-'),
      version: c.version,
      sha256: (c.hashes ?? []).filter((h) => h.alg === 'SHA-256' && typeof h.content === 'string').map((h) => h.content!.toLowerCase()).sort(),
    });
  }
  return out;
}

/** The distributions of a lock (TOML) or of an image's SBOM (CycloneDX JSON), told apart by their content. */
async function readDistributions(ctx: CliContext, file: string): Promise<LockedDistribution[]> {
  const where = path.resolve(ctx.cwd, file);
  let text: string;
  try {
    text = await readFile(where, 'utf8');
  } catch (err) {
    throw new CliError('LOCK_UNREADABLE', `cannot read ${where}: ${(err as Error).message}`, {
      hint: 'give two PEP 751 locks (pylock.<target>.toml) or two SBOMs of images (<output>.cdx.json)',
      cause: err,
    });
  }
  if (text.trimStart().startsWith('{')) {
    let bom: unknown;
    try {
      bom = JSON.parse(text);
    } catch (err) {
      throw new CliError('LOCK_UNREADABLE', `${where} is not valid JSON: ${(err as Error).message}`, { cause: err });
    }
    return sbomDistributions(bom, where);
  }
  const { lockedDistributions, parseLock } = await import('@dstack/recipe');
  return lockedDistributions(parseLock(text, where));
}

export function registerLockCommands(program: Command, run: Runner): void {
  const lock = program.command('lock').description('read PEP 751 locks (pylock.<target>.toml)');
  lock
    .command('diff')
    .description(
      'what changed from A to B — two locks, two images\' SBOMs (CycloneDX, <output>.cdx.json), or one of each: distributions added, removed, and changed (version or wheel sha256)',
    )
    .argument('<a>', 'the older lock or SBOM')
    .argument('<b>', 'the newer lock or SBOM')
    .option('--json', 'print the diff as JSON')
    .action(
      run(async (ctx, a: string, b: string, opts: { json?: boolean }) => {
        const { diffDistributions } = await import('@dstack/recipe');
        const diff = diffDistributions(await readDistributions(ctx, a), await readDistributions(ctx, b));
        ctx.stdout.write(opts.json ? `${JSON.stringify(diff, null, 2)}\n` : renderLockDiff(diff));
        return 0;
      }),
    );
}
