#!/usr/bin/env node
'use strict';
// Runs the CLI's bundle (dist/main.cjs, or dist/build.cjs for `build`: bundle.mjs) through V8's code cache. Node 20
// has no compile cache of its own, and compiling the bundle cost 11-17 ms in every process. The first run of a command
// keeps what V8 compiled in $XDG_CACHE_HOME/dstack-factory/v8 (or ~/.cache/…); its next runs skip compiling, and
// the first few of them add what they compiled beyond it.
// The cache is only an aid: missing, unreadable, unwritable or refused by V8 (another Node, other flags), the
// bundle is compiled as usual. DSTACK_FACTORY_CODE_CACHE=0 turns it off.
// Node's heavier built-in modules are required on first use: a warm `build` needs only crypto (its lock key), and
// loading them all at start-up cost ~4 ms.
const { closeSync, fstatSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync, writeSync } = require('node:fs');
const { createRequire } = require('node:module');
const { homedir } = require('node:os');
const path = require('node:path');
const vm = require('node:vm');

// `build` has a bundle of its own, with the global options and that command only (bundle.mjs); every other
// command line, `build` anywhere but first included, runs the whole CLI.
const bundle = path.join(__dirname, '..', 'dist', process.argv[2] === 'build' ? 'build.cjs' : 'main.cjs');

/** Commands whose first word names a group (`image app`): the cache is kept per command, as each compiles other code. */
const GROUPS = new Set(['image', 'lock', 'recipe', 'wheelhouse']);
/** Runs after a cache is written that check whether they compiled more than it holds. */
const CHECKS = 4;
const LAZY = new Set(['child_process', 'crypto', 'readline', 'zlib', 'worker_threads', 'http', 'https', 'net', 'tls', 'dns']);

/** A short, stable hash of a string (FNV-1a): it names a cache file, and has no security role. */
function fnv(s) {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return (h >>> 0).toString(36);
}

/** The cache file for this bundle, this Node and its flags, and this command. */
function cacheFile() {
  // Off where a file's owner cannot be checked (see load).
  if (process.env.DSTACK_FACTORY_CODE_CACHE === '0' || !process.getuid) return null;
  const st = statSync(bundle);
  // Per installation (the bundle's path), per build of it (an older build's files are removed when a new one is
  // written), per Node and its flags, per command. Two installations sharing the folder keep their own files.
  const place = fnv(bundle);
  const stamp = `${place}-${fnv([st.size, st.mtimeMs, st.ino].join('\0'))}`;
  const node = fnv([process.version, process.arch, ...process.execArgv].join('\0'));
  const words = process.argv.slice(2).filter((a) => /^[a-z][a-z-]*$/.test(a));
  const command = words.length === 0 ? 'none' : GROUPS.has(words[0]) && words[1] ? `${words[0]}.${words[1]}` : words[0];
  const root = process.env.XDG_CACHE_HOME || path.join(homedir(), '.cache');
  return { dir: path.join(root, 'dstack-factory', 'v8'), place, stamp, name: `${stamp}-${node}-${command}.bin` };
}

/** The bundle's require(): a lazy built-in is an object that requires the module when a property is first read. */
function bundleRequire() {
  const real = createRequire(bundle);
  const lazy = new Map();
  const proxy = (id) => {
    let m;
    const load = () => (m ??= real(id));
    return new Proxy({}, {
      get: (_, k) => load()[k],
      has: (_, k) => k in load(),
      ownKeys: () => Reflect.ownKeys(load()),
      getOwnPropertyDescriptor: (_, k) => {
        const d = Reflect.getOwnPropertyDescriptor(load(), k);
        return d && { ...d, configurable: true };
      },
    });
  };
  const req = (id) => {
    const name = id.startsWith('node:') ? id.slice(5) : id;
    if (!LAZY.has(name)) return real(id);
    if (!lazy.has(name)) lazy.set(name, proxy(id));
    return lazy.get(name);
  };
  return Object.assign(req, real);
}

function load() {
  let cache = null;
  let cachedData;
  let checks = 0;
  try {
    cache = cacheFile();
    if (cache) {
      const fd = openSync(path.join(cache.dir, cache.name), 'r');
      try {
        // V8 runs what the file holds: only a file of this user that no one else may write.
        const st = fstatSync(fd);
        if (st.uid === process.getuid?.() && (st.mode & 0o022) === 0) {
          const file = readFileSync(fd);
          checks = file[0];
          cachedData = file.subarray(1);
        }
      } finally {
        closeSync(fd);
      }
    }
  } catch {
    cachedData = undefined;
  }
  // esbuild writes ASCII only (non-ASCII characters escaped): latin1 reads it without decoding UTF-8.
  let source;
  try {
    source = readFileSync(bundle, 'latin1');
  } catch (err) {
    if (err.code !== 'ENOENT') throw err;
    process.stderr.write(`error: ${bundle} is missing: this installation of dstack-factory is incomplete (in a checkout of its sources: npm run build)\n`);
    process.exit(1);
  }
  const script = new vm.Script(`(function (exports, require, module, __filename, __dirname) {${source}\n})`, {
    filename: bundle,
    cachedData,
    // bundle.mjs turns import() into require(); one left by a later change still works, through Node's loader.
    importModuleDynamically: vm.constants?.USE_MAIN_CONTEXT_DEFAULT_LOADER,
  });
  const mod = { exports: {} };
  script.runInThisContext().call(mod.exports, mod.exports, bundleRequire(), mod, bundle, path.dirname(bundle));
  // Written when there was none or V8 refused it. A cache made by a cold build lacks what a warm one runs (a warm
  // build took 110 ms with it, 92 with one made by a warm run), so the next CHECKS runs of the command serialize
  // what they compiled and write it when it holds more. Serializing takes ~5 ms: later runs do not. The file's
  // first byte counts the checks left, V8's data follows.
  const save = () => {
    if (!cache) return;
    const fresh = !cachedData || script.cachedDataRejected;
    if (!fresh && !(checks > 0)) return;
    try {
      const data = script.createCachedData();
      const file = path.join(cache.dir, cache.name);
      if (!fresh && data.length <= cachedData.length + (cachedData.length >> 6)) {
        const fd = openSync(file, 'r+');
        try {
          writeSync(fd, Buffer.of(checks - 1), 0, 1, 0);
        } finally {
          closeSync(fd);
        }
        return;
      }
      mkdirSync(cache.dir, { recursive: true, mode: 0o700 });
      // An older build's files of this installation go: they would never be read again.
      for (const f of readdirSync(cache.dir)) {
        if (f.startsWith(`${cache.place}-`) && !f.startsWith(`${cache.stamp}-`)) rmSync(path.join(cache.dir, f), { force: true, recursive: true });
      }
      const tmp = path.join(cache.dir, `.${cache.name}.${process.pid}`);
      writeFileSync(tmp, Buffer.concat([Buffer.of(CHECKS), data]), { mode: 0o600 });
      renameSync(tmp, file);
    } catch {
      // a cache that cannot be written is no failure
    }
  };
  return { main: mod.exports.main, save };
}

const { main, save } = load();
main(process.argv).then((code) => {
  process.exitCode = code;
  save();
});
