// docs/errors.md, made from @dstack/errors' catalogue: every code with what it means and what to do.
// `npm run docs` writes it; tools/docs/errors-reference.test.ts keeps it current.
import { writeFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { ERROR_CODES } from '@dstack/errors';

const cell = (text: string) => text.replace(/\|/g, '\\|');

export function errorsReference(): string {
  const out = [
    '# Error codes',
    '',
    '<!-- Generated from packages/errors/src/codes/ by `npm run docs`; do not edit by hand. -->',
    '',
    'Every error dstack-factory reports carries a stable code. The CLI prints it as `error[CODE]: message`,',
    'then `hint: …` when the error knows what to do (exit status 1; 2 for `USAGE`). The server answers',
    '`{ "error": { "code", "message", "hint"? } }` with the HTTP status of its table (apps/server/src/errors.ts).',
    'In code, every one is a `DstackError` from `@dstack/errors`: match on `err.code`, never on the message.',
    'The hints below are the general advice for a code; an error may carry a more precise one.',
  ];
  let owner = '';
  for (const info of ERROR_CODES) {
    if (info.owner !== owner) {
      owner = info.owner;
      out.push('', `## ${owner}`, '', '| code | what happened | what to do |', '| --- | --- | --- |');
    }
    out.push(`| \`${info.code}\` | ${cell(info.summary)} | ${cell(info.hint)} |`);
  }
  return `${out.join('\n')}\n`;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const file = new URL('../../docs/errors.md', import.meta.url);
  writeFileSync(file, errorsReference());
  console.log(`wrote ${file.pathname}`);
}
