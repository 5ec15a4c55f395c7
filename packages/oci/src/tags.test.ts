import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { parseReference, RegistryClient } from './index.js';

// Registries that page tag lists (distribution 3, GHCR) send `Link: <…?last=X&n=N>; rel="next"`; 2.8 does not page,
// so the paging is checked against this server, which pages as distribution 3 does.
let server: Server;
let host: string;
const ALL = ['a', 'b', 'c', 'd', 'e'];
const requests: string[] = [];

beforeAll(async () => {
  server = createServer((req, res) => {
    requests.push(req.url!);
    const url = new URL(req.url!, 'http://x');
    const n = Number(url.searchParams.get('n'));
    const last = url.searchParams.get('last');
    const rest = ALL.filter((t) => last === null || t > last);
    const page = rest.slice(0, n);
    if (page.length < rest.length) res.setHeader('link', `</v2/team/w/tags/list?last=${page.at(-1)}&n=${n}>; rel="next"`);
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ name: 'team/w', tags: page }));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  host = `127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => new Promise<void>((r) => server.close(() => r())));

it('follows the Link header through every page of tags', async () => {
  expect(await new RegistryClient().listTags(parseReference(`${host}/team/w`), { pageSize: 2 })).toEqual(ALL);
  expect(requests).toEqual(['/v2/team/w/tags/list?n=2', '/v2/team/w/tags/list?last=b&n=2', '/v2/team/w/tags/list?last=d&n=2']);
});
