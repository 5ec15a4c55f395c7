// Writes docs/cli.md from the CLI's own --help (see apps/cli/src/reference.ts).
import { writeFileSync } from 'node:fs';
import { cliReference } from '../../apps/cli/src/reference.js';

const out = new URL('../../docs/cli.md', import.meta.url);
writeFileSync(out, cliReference());
console.log(`wrote ${out.pathname}`);
