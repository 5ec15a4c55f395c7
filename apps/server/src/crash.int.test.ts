// kill -9 of the server in the middle of an upload, with the form's fields before the file (as twine sends
// them) and after it: the file streams into the store's temp area either way (never the OS temp folder),
// and after a restart the index shows only complete wheels and the dead writer's temp file is gone.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { basic, makeWheel, multipartBody, sha256 } from './fixtures.test-support.js';

const TOKEN = 'crash-test-token';
let dir: string;
const children: ChildProcess[] = [];

async function startChild(wheelhouse: string): Promise<{ url: string; child: ChildProcess }> {
  const child = spawn(
    process.execPath,
    [
      '--conditions=@dstack/source',
      '--import',
      'tsx',
      join(import.meta.dirname, 'child.test-support.ts'),
      JSON.stringify({ port: 0, wheelhouse }),
    ],
    {
      env: { ...process.env, DSTACK_SERVER_TOKENS: `ci:upload:${TOKEN}` },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  children.push(child);
  let stderr = '';
  child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
  const line = await new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout! }).once('line', resolve);
    child.once('exit', (code) => reject(new Error(`server exited with ${code}: ${stderr}`)));
  });
  return { url: (JSON.parse(line) as { url: string }).url, child };
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'dstack-crash-'));
});
afterAll(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  await rm(dir, { recursive: true, force: true });
});

describe.each(['fields first', 'file first'] as const)('kill -9 mid-upload, %s', (order) => {
  it('leaves no partial file after kill -9 during an upload', async () => {
    const wheelhouse = join(dir, order.replace(' ', '-'), 'wheelhouse');
    const first = await startChild(wheelhouse);

    // One complete upload before the crash.
    const good = await readFile(await makeWheel(dir, { name: 'kept', version: '1.0' }));
    const form = multipartBody(
      { ':action': 'file_upload', name: 'kept', version: '1.0', sha256_digest: sha256(good) },
      { name: 'kept-1.0-py3-none-any.whl', data: good },
    );
    const ok = await fetch(`${first.url}/`, {
      method: 'POST',
      headers: { 'content-type': form.contentType, authorization: basic('__token__', TOKEN) },
      body: form.body,
    });
    expect(ok.status).toBe(200);

    // A large upload that stops half-way: the server is streaming it into a temp file when it dies.
    const boundary = 'crashboundary';
    // A raw socket: headers announcing 64 MiB, then part of the form.
    const req = connect(Number(new URL(first.url).port), '127.0.0.1');
    await new Promise((r) => req.once('connect', r));
    req.write(
      `POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/form-data; boundary=${boundary}\r\n` +
        `Authorization: ${basic('__token__', TOKEN)}\r\nContent-Length: ${64 * 1024 * 1024}\r\n\r\n`,
    );
    req.on('error', () => {});
    const fields =
      `--${boundary}\r\nContent-Disposition: form-data; name=":action"\r\n\r\nfile_upload\r\n` +
      `--${boundary}\r\nContent-Disposition: form-data; name="name"\r\n\r\nhalf\r\n`;
    const filePart = `--${boundary}\r\nContent-Disposition: form-data; name="content"; filename="half-1.0-py3-none-any.whl"\r\n\r\n`;
    // File first: the fields would only come after the file (which never ends here).
    req.write(order === 'fields first' ? fields + filePart : filePart);
    req.write(Buffer.alloc(4 * 1024 * 1024, 7));
    let temps: string[] = [];
    for (let i = 0; i < 100 && temps.length === 0; i++) {
      await new Promise((r) => setTimeout(r, 50));
      temps = (await readdir(wheelhouse)).filter((n) => n.endsWith('.tmp'));
    }
    expect(temps).toEqual([expect.stringMatching(/^\.half-1\.0-py3-none-any\.whl\.\d+\.[0-9a-f]+\.tmp$/)]);
    first.child.kill('SIGKILL');
    await new Promise((r) => first.child.once('exit', r));
    req.destroy();

    const second = await startChild(wheelhouse);
    const names = (await readdir(wheelhouse)).filter((n) => !n.startsWith('.dstack'));
    expect(names).toEqual(['kept-1.0-py3-none-any.whl']);
    const listing = await fetch(`${second.url}/simple/`, {
      headers: { accept: 'application/vnd.pypi.simple.v1+json' },
    });
    const index = (await listing.json()) as { projects: { name: string }[] };
    expect(index.projects).toEqual([{ name: 'kept' }]);
    expect((await fetch(`${second.url}/simple/half/`)).status).toBe(404);
    const file = Buffer.from(
      await (await fetch(`${second.url}/files/kept-1.0-py3-none-any.whl`)).arrayBuffer(),
    );
    expect(sha256(file)).toBe(sha256(good));
    second.child.kill('SIGTERM');
    await new Promise((r) => second.child.once('exit', r));
    expect(second.child.exitCode).toBe(0);
  });
});
