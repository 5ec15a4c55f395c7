// A child process for the crash-safety tests: adds one wheel to a store from a slow stream, printing one JSON line
// per event (so the parent can SIGKILL it at a chosen point), then its result.
// Usage: node --conditions=@dstack/source --import tsx add-child.test-support.ts DIR SOURCE FILENAME CHUNK_BYTES DELAY_MS
import { open } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { pino } from 'pino';
import { FsWheelStore } from './store.js';
import { WheelError } from './errors.js';

const [dir, source, filename, chunkArg, delayArg] = process.argv.slice(2) as [string, string, string, string, string];
const chunkBytes = Number(chunkArg);
const delayMs = Number(delayArg);
const say = (obj: object) => process.stdout.write(`${JSON.stringify(obj)}\n`);

const file = await open(source, 'r');
let sent = 0;
const slow = new Readable({
  async read() {
    if (delayMs > 0) await new Promise((r) => setTimeout(r, delayMs));
    const buf = Buffer.alloc(chunkBytes);
    const { bytesRead } = await file.read(buf, 0, chunkBytes, sent);
    sent += bytesRead;
    say({ event: 'sent', bytes: sent });
    this.push(bytesRead > 0 ? buf.subarray(0, bytesRead) : null);
  },
});
// Every log line (pino's, written synchronously to this destination) becomes an event named by its message.
const logger = pino({ level: 'debug' }, { write: (line: string) => say({ event: JSON.parse(line).msg }) });
const store = new FsWheelStore(dir, { logger });
try {
  const result = await store.add(slow, { filename, builtBy: { pid: String(process.pid) } });
  say({ result: result.status, sha256: result.entry.sha256 });
} catch (err) {
  say({ error: err instanceof WheelError ? err.code : String(err) });
  process.exitCode = 1;
} finally {
  await file.close();
}
