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

async function readDistributions(ctx: CliContext, file: string): Promise<LockedDistribution[]> {
  const { lockedDistributions, parseLock } = await import('@dstack/recipe');
  const where = path.resolve(ctx.cwd, file);
  let text: string;
  try {
    text = await readFile(where, 'utf8');
  } catch (err) {
    throw new CliError('LOCK_UNREADABLE', `cannot read ${where}: ${(err as Error).message}`, {
      hint: 'give two PEP 751 lock files (pylock.<target>.toml)',
      cause: err,
    });
  }
  // The seam for an image's SBOM (issue 23, points 2-4): its distributions map to the same shape.
  return lockedDistributions(parseLock(text, where));
}

export function registerLockCommands(program: Command, run: Runner): void {
  const lock = program.command('lock').description('read PEP 751 locks (pylock.<target>.toml)');
  lock
    .command('diff')
    .description('what changed from lock A to lock B: distributions added, removed, and changed (version or wheel sha256)')
    .argument('<a>', 'the older lock')
    .argument('<b>', 'the newer lock')
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
