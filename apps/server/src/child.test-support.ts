// A server in its own process for tests that kill it: `node --conditions=@dstack/source --import tsx
// child.test-support.ts '<json StartServerOptions>'`; prints {"url": ...} on stdout once it listens.
import { pino } from 'pino';
import { startServer, type StartServerOptions } from './start.js';

const options = JSON.parse(process.argv[2] ?? '{}') as StartServerOptions;
const server = await startServer({
  ...options,
  runner: null,
  logger: pino({ level: 'info' }, process.stderr),
});
process.stdout.write(JSON.stringify({ url: server.url, pid: process.pid }) + '\n');
process.on('SIGTERM', () => {
  void server.close().then(() => process.exit(0));
});
