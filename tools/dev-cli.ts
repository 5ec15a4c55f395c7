// Runs the CLI from source without a build: `node --conditions=@dstack/source --import tsx tools/dev-cli.ts ARGS`.
import { main } from '../apps/cli/src/main.js';

process.exitCode = await main(process.argv);
