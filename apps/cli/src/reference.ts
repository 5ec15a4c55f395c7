import type { Command } from 'commander';
import { PassThrough } from 'node:stream';
import { buildProgram } from './main.js';

/**
 * The CLI reference as Markdown, made from the commands' own --help so the docs cannot drift from the
 * code: `npm run docs` writes it to docs/cli.md, and a test fails when that file is out of date.
 */
export function cliReference(): string {
  const sink = new PassThrough();
  const program = buildProgram({ stdout: sink, stderr: sink, env: {}, cwd: '/' }, () => {});
  const sections: string[] = [
    '# dstack-factory command reference',
    '',
    'Generated from the commands\' own `--help` by `npm run docs`; do not edit by hand.',
    '',
    '## Exit codes',
    '',
    '| code | meaning |',
    '| --- | --- |',
    '| 0 | success |',
    '| 1 | the command ran and found a problem (invalid recipe, refused wheel, failed build, corrupt wheelhouse) |',
    '| 2 | usage error: unknown command or option, missing or conflicting arguments |',
    '| 70 | internal error: a bug in dstack-factory (the message says so) |',
    '',
  ];
  const walk = (cmd: Command, path: string[]): void => {
    const name = [...path, cmd.name()].join(' ');
    sections.push(`## ${name}`, '', '```text', cmd.helpInformation().trimEnd(), '```', '');
    for (const sub of cmd.commands) {
      if (sub.name() === 'help') continue;
      walk(sub, [...path, cmd.name()]);
    }
  };
  walk(program, []);
  return sections.join('\n');
}
