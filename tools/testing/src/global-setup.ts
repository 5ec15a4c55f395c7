/**
 * vitest globalSetup: starts the shared container components once per run when they are not running
 * (the private Docker engine, the registry, the debootstrapped base image), through tools/system.
 * In vitest.config.ts: `test: { globalSetup: ['tools/testing/src/global-setup.ts'] }`.
 *
 * Components are shared by every test run on the machine (Decision 15). A run holds a lease
 * ($DSTACK_RUN_DIR/leases/<pid>) while it lasts; at the end, what this run started is stopped when no
 * other live run holds a lease. Components someone started by hand (engine.sh start) are left alone.
 * The shared factory and runtime images (images/) are built here too, once per content
 * (`DSTACK_SKIP_IMAGES=1` skips that). `DSTACK_KEEP_COMPONENTS=1` keeps the components running after
 * the run. When they cannot start, the run goes on: every test that needs one fails with the message
 * saying what to install or run.
 */
import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { sharedFactoryImage, sharedRuntimeImage, systemScriptsDir } from './docker.js';

const runDir = process.env.DSTACK_RUN_DIR ?? '/tmp/dstack';
const leaseDir = path.join(runDir, 'leases');
const leaseFile = path.join(leaseDir, String(process.pid));
/** Marker files: the component was started by a test run (so a test run may stop it). */
const startedBy = (component: string) => path.join(runDir, `${component}.started-by-tests`);

function script(name: string, args: string[]): Promise<{ ok: boolean; output: string }> {
  return new Promise((resolve) => {
    execFile(
      'bash',
      [path.join(systemScriptsDir, name), ...args],
      { maxBuffer: 16 * 1024 * 1024 },
      (error, stdout, stderr) => resolve({ ok: !error, output: `${stdout}${stderr}`.trim() }),
    );
  });
}

async function startComponent(component: 'engine' | 'registry'): Promise<boolean> {
  const script_ = `${component}.sh`;
  if ((await script(script_, ['status'])).ok) return true;
  const started = await script(script_, ['start']);
  if (!started.ok) {
    console.warn(
      `[global-setup] the ${component} did not start; tests that need it will fail:\n${started.output}`,
    );
    return false;
  }
  await fs.writeFile(startedBy(component), `${process.pid}\n`);
  return true;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function otherLiveLeases(): Promise<number[]> {
  const names = await fs.readdir(leaseDir).catch(() => [] as string[]);
  const pids = names.map(Number).filter((pid) => Number.isInteger(pid) && pid !== process.pid);
  const live: number[] = [];
  for (const pid of pids) {
    if (alive(pid)) live.push(pid);
    else await fs.rm(path.join(leaseDir, String(pid)), { force: true });
  }
  return live;
}

export async function setup(): Promise<() => Promise<void>> {
  await fs.mkdir(leaseDir, { recursive: true });
  await fs.writeFile(leaseFile, `${new Date().toISOString()}\n`);
  const t0 = Date.now();
  const engine = await startComponent('engine');
  if (engine) {
    const base = await script('base-image.sh', []);
    if (!base.ok) {
      console.warn(`[global-setup] the base image is missing; container tests will fail:\n${base.output}`);
    } else if (!/^(1|true|yes)$/i.test(process.env.DSTACK_SKIP_IMAGES ?? '')) {
      // Test files run in parallel: build the shared images here, once, so two files never build the same
      // image at the same time (on a cold machine the factory image's apt installs take minutes).
      // The arm64 base (its packages unpacked, no emulation: ~30 s once per machine, then cached) alongside.
      const arm64 = script('base-image.sh', ['--arch', 'arm64']).then((r) => {
        if (!r.ok) throw new Error(r.output);
      });
      const images = await Promise.allSettled([sharedFactoryImage(), sharedRuntimeImage(), arm64]);
      for (const r of images) {
        if (r.status === 'rejected') {
          console.warn(
            `[global-setup] a shared image did not build; tests that need it will fail:\n${String(r.reason)}`,
          );
        }
      }
    }
  }
  await startComponent('registry');
  const seconds = ((Date.now() - t0) / 1000).toFixed(1);
  if (Number(seconds) > 5) console.info(`[global-setup] container components ready in ${seconds} s`);

  return async () => {
    await fs.rm(leaseFile, { force: true });
    if (/^(1|true|yes)$/i.test(process.env.DSTACK_KEEP_COMPONENTS ?? '')) return;
    if ((await otherLiveLeases()).length > 0) return;
    for (const component of ['registry', 'engine'] as const) {
      const marker = startedBy(component);
      const exists = await fs.stat(marker).then(
        () => true,
        () => false,
      );
      if (!exists) continue;
      await fs.rm(marker, { force: true });
      await script(`${component}.sh`, ['stop']);
    }
  };
}
