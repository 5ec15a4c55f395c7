// The server under load, against nginx (Debian) serving the static index (writeStaticIndex) of the same
// wheelhouse: requests/s and p99 of /simple/<project>/ (HTML and PEP 691 JSON) and of wheel downloads,
// driven by autocannon; and a 1 GB upload streamed through the legacy upload API while the server's RSS
// is sampled (goal: it grows by less than 64 MB). Both servers run one process/worker on this 2-core
// machine, with an access log, and autocannon runs in this process.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createReadStream, existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';
import autocannon from 'autocannon';
import { FsWheelStore, writeStaticIndex } from '@dstack/wheelhouse';
import { writeLargeWheel, writeWheel } from '@dstack/testing';
import type { Scenario } from '../lib.js';

const run = promisify(execFile);
const NGINX = '/usr/sbin/nginx';
const PROJECTS = 300;
const VERSIONS = 4;
const DURATION = 8;
const CONNECTIONS = 32;
const UPLOAD_BYTES = 1024 ** 3;
const ROOT = resolve(import.meta.dirname, '../../..');

interface Load {
  rps: number;
  p99: number;
  errors: number;
}

async function load(base: string, paths: string[], headers: Record<string, string> = {}): Promise<Load> {
  let i = 0;
  const result = await autocannon({
    url: base,
    connections: CONNECTIONS,
    duration: DURATION,
    headers,
    requests: [{ setupRequest: (req) => ({ ...req, path: paths[i++ % paths.length]! }) }],
  });
  return {
    rps: result.requests.average,
    p99: result.latency.p99,
    errors: result.errors + result.non2xx + result.timeouts,
  };
}

const fmt = (l: Load): string =>
  `${Math.round(l.rps)} req/s, p99 ${l.p99} ms${l.errors ? `, ${l.errors} errors` : ''}`;

async function startOurs(wheelhouse: string, logFile: string): Promise<{ url: string; child: ChildProcess }> {
  const code = `
    import { startServer } from '@dstack/server';
    import { pino } from 'pino';
    const s = await startServer({ port: 0, wheelhouse: ${JSON.stringify(wheelhouse)}, runner: null,
      env: { DSTACK_SERVER_TOKENS: 'bench:upload:bench-token' },
      logger: pino({ level: 'info' }, pino.destination({ dest: ${JSON.stringify(logFile)}, sync: false })) });
    process.stdout.write(JSON.stringify({ url: s.url }) + '\\n');
    process.on('SIGTERM', () => s.close().then(() => process.exit(0)));`;
  const child = spawn(
    process.execPath,
    ['--conditions=@dstack/source', '--import', 'tsx', '--input-type=module', '-e', code],
    {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  const line = await new Promise<string>((ok, fail) => {
    createInterface({ input: child.stdout! }).once('line', ok);
    child.once('exit', (c) => fail(new Error(`the server exited with ${c}`)));
  });
  return { url: (JSON.parse(line) as { url: string }).url, child };
}

async function startNginx(dir: string, staticRoot: string): Promise<{ url: string; child: ChildProcess }> {
  const port = 20000 + Math.floor(Math.random() * 20000);
  const conf = join(dir, 'nginx.conf');
  await mkdir(join(dir, 'nginx-tmp'), { recursive: true });
  await writeFile(
    conf,
    `daemon off; master_process off; worker_processes 1; pid ${dir}/nginx.pid; error_log ${dir}/nginx-error.log;
events { worker_connections 1024; }
http {
  access_log ${dir}/nginx-access.log; client_body_temp_path ${dir}/nginx-tmp; proxy_temp_path ${dir}/nginx-tmp;
  fastcgi_temp_path ${dir}/nginx-tmp; uwsgi_temp_path ${dir}/nginx-tmp; scgi_temp_path ${dir}/nginx-tmp;
  sendfile on; tcp_nopush on; keepalive_requests 100000;
  types { text/html html; application/vnd.pypi.simple.v1+json json; application/octet-stream whl; }
  server { listen 127.0.0.1:${port}; root ${staticRoot}; index index.html; }
}
`,
  );
  const child = spawn(NGINX, ['-c', conf, '-p', dir], { stdio: 'inherit' });
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 100; i++) {
    try {
      if ((await fetch(`${url}/simple/`)).ok) return { url, child };
    } catch {
      /* not yet */
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`nginx did not start (see ${dir}/nginx-error.log)`);
}

function rssOf(pid: number): Promise<number> {
  return readFile(`/proc/${pid}/status`, 'utf8').then((s) => Number(/VmRSS:\s+(\d+) kB/.exec(s)![1]) * 1024);
}

/** A 1 GB wheel written by Python's zipfile, streamed (random payload, stored). */
async function writeGigabyteWheel(dir: string): Promise<string> {
  const path = join(dir, 'huge-1.0-py3-none-any.whl');
  const script = `
import zipfile, hashlib, base64, os, sys
path, size = sys.argv[1], int(sys.argv[2])
rows = []
def rec(name, data):
    rows.append(f"{name},sha256={base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b'=').decode()},{len(data)}")
with zipfile.ZipFile(path, 'w', zipfile.ZIP_STORED, allowZip64=True) as z:
    h = hashlib.sha256(); n = 0
    with z.open('huge/payload.bin', 'w', force_zip64=True) as f:
        block = os.urandom(1 << 20)
        while n < size:
            chunk = bytes(b ^ (n >> 20 & 255) for b in block[:64]) + block[64:]
            f.write(chunk); h.update(chunk); n += len(chunk)
    rows.append(f"huge/payload.bin,sha256={base64.urlsafe_b64encode(h.digest()).rstrip(b'=').decode()},{n}")
    for name, text in [('huge/__init__.py', b''), ('huge-1.0.dist-info/METADATA', b'Metadata-Version: 2.1\\nName: huge\\nVersion: 1.0\\n\\n'),
                       ('huge-1.0.dist-info/WHEEL', b'Wheel-Version: 1.0\\nGenerator: bench\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n\\n')]:
        z.writestr(name, text); rec(name, text)
    rows.append('huge-1.0.dist-info/RECORD,,')
    z.writestr('huge-1.0.dist-info/RECORD', '\\n'.join(rows) + '\\n')
`;
  await run('python3', ['-c', script, path, String(UPLOAD_BYTES)], { maxBuffer: 1 << 20 });
  return path;
}

/** Streams `file` as a twine-style multipart upload; resolves with the status and seconds taken. */
async function upload(base: string, file: string): Promise<{ status: number; seconds: number }> {
  const boundary = 'benchboundary7d3f';
  const name = file.split('/').pop()!;
  const head = Buffer.from(
    `--${boundary}\r\nContent-Disposition: form-data; name=":action"\r\n\r\nfile_upload\r\n` +
      `--${boundary}\r\nContent-Disposition: form-data; name="name"\r\n\r\nhuge\r\n` +
      `--${boundary}\r\nContent-Disposition: form-data; name="content"; filename="${name}"\r\nContent-Type: application/octet-stream\r\n\r\n`,
  );
  const tail = Buffer.from(`\r\n--${boundary}--\r\n`);
  const size = (await stat(file)).size;
  const started = performance.now();
  return new Promise((ok, fail) => {
    const req = httpRequest(`${base}/`, {
      method: 'POST',
      headers: {
        'content-type': `multipart/form-data; boundary=${boundary}`,
        'content-length': String(head.length + size + tail.length),
        authorization: `Basic ${Buffer.from('__token__:bench-token').toString('base64')}`,
      },
    });
    req.on('error', fail);
    req.on('response', (res) => {
      res.resume();
      res.on('end', () => ok({ status: res.statusCode ?? 0, seconds: (performance.now() - started) / 1000 }));
    });
    req.write(head);
    const body = createReadStream(file, { highWaterMark: 1 << 20 });
    body.on('end', () => req.end(tail));
    body.pipe(req, { end: false });
  });
}

const scenario: Scenario = {
  name: 'server',
  description: `dstack-factory serve vs nginx on the static index of the same wheelhouse (${PROJECTS} projects x ${VERSIONS} versions); autocannon, ${CONNECTIONS} connections, ${DURATION} s per run; and a 1 GB upload with the server's RSS sampled.`,
  async run() {
    if (!existsSync(NGINX))
      throw new Error('nginx is missing: install it with `apt-get install -y nginx` (Debian)');
    const dir = await mkdtemp(join(tmpdir(), 'dstack-bench-server-'));
    const children: ChildProcess[] = [];
    try {
      const wheelhouse = join(dir, 'wheelhouse');
      const store = new FsWheelStore(wheelhouse);
      const src = join(dir, 'src');
      await mkdir(src);
      for (let p = 0; p < PROJECTS; p++) {
        for (let v = 0; v < VERSIONS; v++) {
          await store.add(
            await writeWheel(src, {
              name: `proj-${p}`,
              version: `1.${v}`,
              requires: [`proj-${(p + 1) % PROJECTS}>=1.0`],
            }),
          );
        }
      }
      const big = await writeLargeWheel(src, { name: 'medium', version: '1.0' }, 1024 * 1024);
      await store.add(big);
      await writeStaticIndex(store, join(dir, 'static'));

      const ours = await startOurs(wheelhouse, join(dir, 'server.log'));
      children.push(ours.child);
      const nginx = await startNginx(dir, join(dir, 'static'));
      children.push(nginx.child);

      const pages = Array.from({ length: PROJECTS }, (_, p) => `/simple/proj-${p}/`);
      const small = Array.from(
        { length: PROJECTS },
        (_, p) => [`proj-${p}`, `proj_${p}-1.${p % VERSIONS}-py3-none-any.whl`] as const,
      );
      const JSON_ACCEPT = { accept: 'application/vnd.pypi.simple.v1+json' };

      const lines: string[] = [];
      // Warm both (page cache, JIT).
      await load(ours.url, pages.slice(0, 20));
      await load(nginx.url, pages.slice(0, 20));

      // Rounds alternate between the two servers and the medians are reported: the machine is shared.
      const compare = async (
        label: string,
        o: [string[], Record<string, string>?],
        n: string[],
        rounds: number,
      ): Promise<[Load, Load]> => {
        const os: Load[] = [];
        const ns: Load[] = [];
        for (let r = 0; r < rounds; r++) {
          os.push(await load(ours.url, o[0], o[1] ?? {}));
          ns.push(await load(nginx.url, n));
        }
        const median = (ls: Load[]): Load =>
          [...ls].sort((x, y) => x.rps - y.rps)[Math.floor(ls.length / 2)]!;
        const [om, nm] = [median(os), median(ns)];
        lines.push(
          `${label}: ours ${fmt(om)} vs nginx ${fmt(nm)} -> ${(om.rps / nm.rps).toFixed(2)}x nginx (median of ${rounds}; ours ${os.map((l) => Math.round(l.rps)).join('/')}, nginx ${ns.map((l) => Math.round(l.rps)).join('/')})`,
        );
        return [om, nm];
      };
      await compare('index pages /simple/<project>/ (HTML; goal >= 0.5x)', [pages], pages, 3);
      await compare(
        'index pages (PEP 691 JSON vs static index.json)',
        [pages, JSON_ACCEPT],
        pages.map((p) => `${p}index.json`),
        3,
      );
      await compare(
        'small wheel downloads (~1 KB)',
        [small.map(([, f]) => `/files/${f}`)],
        small.map(([p, f]) => `/simple/${p}/${f}`),
        3,
      );
      await compare(
        '1 MB wheel downloads (req/s = MB/s)',
        [['/files/medium-1.0-py3-none-any.whl']],
        ['/simple/medium/medium-1.0-py3-none-any.whl'],
        1,
      );

      nginx.child.kill('SIGTERM');
      const huge = await writeGigabyteWheel(dir);
      const pid = ours.child.pid!;
      const before = await rssOf(pid);
      let peak = before;
      const sampler = setInterval(() => {
        void rssOf(pid).then(
          (r) => (peak = Math.max(peak, r)),
          () => {},
        );
      }, 50);
      const up = await upload(ours.url, huge);
      clearInterval(sampler);
      const growth = (peak - before) / 1024 ** 2;
      const copyStart = performance.now();
      await run('cp', [huge, join(dir, 'copy.whl')]);
      await run('sync', []);
      const copySeconds = (performance.now() - copyStart) / 1000;
      lines.push(
        `1 GB upload: HTTP ${up.status} in ${up.seconds.toFixed(1)} s (${(1024 / up.seconds).toFixed(0)} MB/s, stored, hashed and validated) vs cp+sync ${copySeconds.toFixed(1)} s; server RSS ${(before / 1024 ** 2).toFixed(0)} MB -> peak ${(peak / 1024 ** 2).toFixed(0)} MB: +${growth.toFixed(1)} MB (goal < 64 MB)`,
      );
      if (up.status !== 200) throw new Error(`the 1 GB upload got HTTP ${up.status}`);
      return lines;
    } finally {
      for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGTERM');
      await new Promise((r) => setTimeout(r, 300));
      await rm(dir, { recursive: true, force: true });
    }
  },
};

export default scenario;
