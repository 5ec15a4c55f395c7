// The web page in headless Chromium (Debian's, driven by playwright-core), and a build over HTTP run by
// the engine's local executor: projects listed and searched, a project's files, a build started from the
// page with a token, its log arriving live, its wheel in the index afterwards. Screenshots go to
// test-artifacts/server/.
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { bootstrapWheelhouse, isolatedPipEnv, testPython, writePurePackage } from '@dstack/testing';
import { chromium, type Browser, type Page } from 'playwright-core';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BuildManager } from './builds.js';
import { engineRunner } from './engine-runner.js';
import { makeWheel, startTestServer, type TestServer } from './fixtures.test-support.js';

const CHROMIUM = '/usr/bin/chromium';
const ARTIFACTS = resolve(import.meta.dirname, '../../../test-artifacts/server');
const BUILD_TOKEN = 'web-build-token-42';
const python = testPython('3.11');

let s: TestServer;
let browser: Browser;
let page: Page;
let source: string;

beforeAll(async () => {
  if (!existsSync(CHROMIUM))
    throw new Error('chromium is missing: install it with `apt-get install -y chromium` (Debian)');
  await mkdir(ARTIFACTS, { recursive: true });
  const config = {
    tokens: [
      {
        name: 'builder',
        token: BUILD_TOKEN,
        scopes: ['read', 'upload', 'build'] as ('read' | 'upload' | 'build')[],
      },
    ],
    builds: {
      concurrency: 1,
      maxQueued: 10,
      allowLocalPaths: true,
      executor: 'local' as const,
      python,
      factoryImage: null,
      keep: 20,
      public: true,
      recipeEnv: [],
      passEnv: [],
    },
  };
  s = await startTestServer(config, {
    makeBuilds: (store, full) =>
      new BuildManager(
        engineRunner({ config: full, store, env: isolatedPipEnv(), logger: pino({ level: 'silent' }) }),
        {
          concurrency: 1,
          maxQueued: 10,
          keep: 20,
          logger: pino({ level: 'silent' }),
        },
      ),
  });
  const wheelhouse = join(s.dir, 'wheelhouse');
  await bootstrapWheelhouse(python, wheelhouse);
  await s.store.add(await makeWheel(s.dir, { name: 'alpha-lib', version: '1.0' }));
  await s.store.add(
    await makeWheel(s.dir, { name: 'alpha-lib', version: '1.1', dependencies: ['beta-util'] }),
  );
  await s.store.add(await makeWheel(s.dir, { name: 'beta-util', version: '0.3' }));
  source = await writePurePackage(join(s.dir, 'src'), { name: 'webbuilt', version: '0.7' });
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
    ],
  });
  page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
}, 300_000);

afterAll(async () => {
  await browser?.close();
  await s?.close();
});

describe('web page', () => {
  it('lists the projects and filters them as you type', async () => {
    await page.goto(`${s.url}/`);
    expect(await page.title()).toBe('Wheelhouse · dstack-factory');
    const names = await page.locator('#projects tr[data-project] td:first-child').allTextContents();
    expect(names).toEqual(['alpha-lib', 'beta-util', 'setuptools', 'wheel']);
    await page.screenshot({ path: join(ARTIFACTS, 'index.png'), fullPage: true });
    await page.fill('#search', 'beta');
    expect(await page.locator('#projects tr[data-project]:visible td:first-child').allTextContents()).toEqual(
      ['beta-util'],
    );
    expect(await page.textContent('#count')).toBe('1');
    await page.screenshot({ path: join(ARTIFACTS, 'search.png') });
  });

  it("shows a project's versions and files with tags, size, sha256 and upload time", async () => {
    const violations: string[] = [];
    page.on('console', (m) => {
      if (m.type() === 'error') violations.push(m.text());
    });
    await page.fill('#search', '');
    await page.click('a[href="/project/alpha-lib"]');
    await page.waitForURL(`${s.url}/project/alpha-lib`);
    expect(await page.locator('.version h3').allTextContents()).toEqual(['1.1', '1.0']);
    // What PyPI shows, from the latest version's METADATA, rendered within the page's CSP.
    expect(await page.textContent('.summary')).toBe('test package alpha-lib');
    expect(await page.textContent('.description')).toBe('A test package made by @dstack/testing.\n');
    expect(await page.locator('#dependencies li').allTextContents()).toEqual(['beta-util']);
    expect(await page.getAttribute('#dependencies a', 'href')).toBe('/project/beta-util');
    expect(violations).toEqual([]);
    const row = page.locator('tr[data-file="alpha_lib-1.1-py3-none-any.whl"]');
    expect(await row.locator('.tag').allTextContents()).toEqual(['py3', 'none', 'any']);
    const entry = (await s.store.get('alpha_lib-1.1-py3-none-any.whl'))!;
    expect(await row.locator('.mono[title]').getAttribute('title')).toBe(entry.sha256);
    expect(await row.locator('time').getAttribute('datetime')).toBe(entry.addedAt);
    expect(await row.locator('td').nth(2).textContent()).toMatch(/^\d+(\.\d)? (B|KiB)$/);
    await page.screenshot({ path: join(ARTIFACTS, 'project.png'), fullPage: true });
  });

  it('starts a build with a token and shows its log arriving', async () => {
    await page.goto(`${s.url}/`);
    expect(await page.locator('#build-form button').isDisabled()).toBe(true);
    await page.fill('#token', BUILD_TOKEN);
    await page.dispatchEvent('#token', 'change');
    await page.locator('#build-form button:not([disabled])').waitFor();
    expect(await page.textContent('#build-hint')).toBe(
      'Signed in as builder: builds run code on this server.',
    );
    await page.fill('#recipe', `--no-index\n${source}\n`);
    await page.fill('#python', python);
    await page.screenshot({ path: join(ARTIFACTS, 'build-form.png'), fullPage: true });
    await page.click('#build-form button');
    await page.waitForURL(/\/builds\/[0-9a-f-]{36}$/);
    // Lines arrive while it runs, then the state turns to succeeded.
    await page.locator('#log', { hasText: 'started: local executor' }).waitFor({ timeout: 120_000 });
    await page.locator('#state.state-succeeded').waitFor({ timeout: 240_000 });
    const log = (await page.textContent('#log'))!;
    expect(log).toContain('build: webbuilt==0.7');
    expect(log).toMatch(/stored: webbuilt-0\.7-py3-none-any\.whl \(added, sha256 [0-9a-f]{64}\)/);
    expect(await page.locator('#wheels li').allTextContents()).toEqual([
      'webbuilt-0.7-py3-none-any.whl (added)',
    ]);
    await page.screenshot({ path: join(ARTIFACTS, 'build-log.png'), fullPage: true });
    const index = await fetch(`${s.url}/simple/webbuilt/`, {
      headers: { accept: 'application/vnd.pypi.simple.v1+json' },
    });
    expect(((await index.json()) as { files: { filename: string }[] }).files.map((f) => f.filename)).toEqual([
      'webbuilt-0.7-py3-none-any.whl',
    ]);
  }, 300_000);
});
