// The options pip 23.2 accepts inside requirements files (req_file.SUPPORTED_OPTIONS + SUPPORTED_OPTIONS_REQ),
// read the way its optparse parser reads them: unique prefixes of long options, `--opt=value`, `-ivalue`,
// values that may start with "-", stray positional words ignored.
import { canonicalizeName } from './names.js';

type Kind = 'store' | 'append' | 'flag' | 'no_binary' | 'only_binary' | 'hash' | 'config' | 'use_feature';

interface OptionSpec {
  short: string[];
  long: string[];
  kind: Kind;
  dest: keyof LineOptions;
}

const SPECS: OptionSpec[] = [
  { short: ['-i'], long: ['--index-url', '--pypi-url'], kind: 'store', dest: 'indexUrl' },
  { short: [], long: ['--extra-index-url'], kind: 'append', dest: 'extraIndexUrls' },
  { short: [], long: ['--no-index'], kind: 'flag', dest: 'noIndex' },
  { short: ['-c'], long: ['--constraint'], kind: 'append', dest: 'constraints' },
  { short: ['-r'], long: ['--requirement'], kind: 'append', dest: 'requirements' },
  { short: ['-e'], long: ['--editable'], kind: 'append', dest: 'editables' },
  { short: ['-f'], long: ['--find-links'], kind: 'append', dest: 'findLinks' },
  { short: [], long: ['--no-binary'], kind: 'no_binary', dest: 'formatControl' },
  { short: [], long: ['--only-binary'], kind: 'only_binary', dest: 'formatControl' },
  { short: [], long: ['--prefer-binary'], kind: 'flag', dest: 'preferBinary' },
  { short: [], long: ['--require-hashes'], kind: 'flag', dest: 'requireHashes' },
  { short: [], long: ['--pre'], kind: 'flag', dest: 'pre' },
  { short: [], long: ['--trusted-host'], kind: 'append', dest: 'trustedHosts' },
  { short: [], long: ['--use-feature'], kind: 'use_feature', dest: 'features' },
  { short: [], long: ['--global-option'], kind: 'append', dest: 'globalOptions' },
  { short: [], long: ['--hash'], kind: 'hash', dest: 'hashes' },
  { short: ['-C'], long: ['--config-settings'], kind: 'config', dest: 'configSettings' },
];
const USE_FEATURE_CHOICES = ['fast-deps', 'truststore', 'no-binary-enable-wheel-cache'];
const STRONG_HASHES = ['sha256', 'sha384', 'sha512'];

const LONG = new Map<string, OptionSpec>();
const SHORT = new Map<string, OptionSpec>();
for (const spec of SPECS) {
  for (const l of spec.long) LONG.set(l, spec);
  for (const s of spec.short) SHORT.set(s, spec);
}
const LONG_NAMES = [...LONG.keys()];

/** pip's FormatControl: shared by every line of a recipe, as pip's finder shares it. */
export interface FormatControl {
  noBinary: Set<string>;
  onlyBinary: Set<string>;
}

export interface LineOptions {
  indexUrl: string | null;
  extraIndexUrls: string[];
  noIndex: boolean;
  constraints: string[];
  requirements: string[];
  editables: string[];
  findLinks: string[];
  formatControl: null;
  preferBinary: boolean;
  requireHashes: boolean;
  pre: boolean;
  trustedHosts: string[];
  features: string[];
  globalOptions: string[];
  /** algorithm -> digests, in the order pip keeps them */
  hashes: Map<string, string[]>;
  configSettings: Record<string, string | string[]> | null;
  /** Options given on this line, as written (for error positions). */
  given: string[];
}

/** An option error, with the argument at fault (to place the caret). */
export class OptionError extends Error {
  constructor(
    message: string,
    readonly token: string,
  ) {
    super(message);
  }
}

export function emptyLineOptions(): LineOptions {
  return {
    indexUrl: null,
    extraIndexUrls: [],
    noIndex: false,
    constraints: [],
    requirements: [],
    editables: [],
    findLinks: [],
    formatControl: null,
    preferBinary: false,
    requireHashes: false,
    pre: false,
    trustedHosts: [],
    features: [],
    globalOptions: [],
    hashes: new Map(),
    configSettings: null,
    given: [],
  };
}

function matchLong(opt: string): string {
  if (LONG.has(opt)) return opt;
  const candidates = LONG_NAMES.filter((w) => w.startsWith(opt));
  if (candidates.length === 1) return candidates[0]!;
  if (candidates.length === 0) throw new OptionError(`no such option: ${opt}`, opt);
  candidates.sort();
  throw new OptionError(`ambiguous option: ${opt} (${candidates.join(', ')}?)`, opt);
}

/** FormatControl.handle_mutual_excludes */
function mutualExcludes(value: string, target: Set<string>, other: Set<string>, token: string): void {
  if (value.startsWith('-'))
    throw new OptionError('--no-binary / --only-binary option requires 1 argument.', token);
  let names = value.split(',');
  while (names.includes(':all:')) {
    other.clear();
    target.clear();
    target.add(':all:');
    names = names.slice(names.indexOf(':all:') + 1);
    if (!names.includes(':none:')) return;
  }
  for (const name of names) {
    if (name === ':none:') {
      target.clear();
      continue;
    }
    const n = canonicalizeName(name);
    other.delete(n);
    target.add(n);
  }
}

function apply(
  spec: OptionSpec,
  opt: string,
  value: string,
  out: LineOptions,
  fc: FormatControl,
  token: string,
): void {
  switch (spec.kind) {
    case 'store':
      out.indexUrl = value;
      break;
    case 'append':
      (out[spec.dest] as string[]).push(value);
      break;
    case 'flag':
      (out as unknown as Record<string, boolean>)[spec.dest] = true;
      break;
    case 'use_feature':
      if (!USE_FEATURE_CHOICES.includes(value)) {
        throw new OptionError(
          `option ${opt}: invalid choice: '${value}' (choose from ${USE_FEATURE_CHOICES.map((c) => `'${c}'`).join(', ')})`,
          token,
        );
      }
      out.features.push(value);
      break;
    case 'no_binary':
      mutualExcludes(value, fc.noBinary, fc.onlyBinary, token);
      break;
    case 'only_binary':
      mutualExcludes(value, fc.onlyBinary, fc.noBinary, token);
      break;
    case 'hash': {
      const colon = value.indexOf(':');
      if (colon < 0)
        throw new OptionError(
          `Arguments to ${opt} must be a hash name followed by a value, like --hash=sha256:abcde...`,
          token,
        );
      const algo = value.slice(0, colon);
      if (!STRONG_HASHES.includes(algo))
        throw new OptionError(`Allowed hash algorithms for ${opt} are ${STRONG_HASHES.join(', ')}.`, token);
      const list = out.hashes.get(algo) ?? [];
      list.push(value.slice(colon + 1));
      out.hashes.set(algo, list);
      break;
    }
    case 'config': {
      const eq = value.indexOf('=');
      if (eq < 0) throw new OptionError(`Arguments to ${opt} must be of the form KEY=VAL`, token);
      const key = value.slice(0, eq);
      const val = value.slice(eq + 1);
      const dest = (out.configSettings ??= {});
      const prev = dest[key];
      if (prev === undefined) dest[key] = val;
      else if (Array.isArray(prev)) prev.push(val);
      else dest[key] = [prev, val];
      break;
    }
  }
}

/** optparse's parse_args over the shlex-split option words of one line. */
export function parseLineOptions(args: string[], fc: FormatControl): LineOptions {
  const out = emptyLineOptions();
  const rargs = [...args];
  while (rargs.length > 0) {
    const arg = rargs[0]!;
    if (arg === '--') break;
    if (arg.startsWith('--')) {
      rargs.shift();
      let opt = arg;
      let explicit = false;
      const eq = arg.indexOf('=');
      if (eq >= 0) {
        opt = arg.slice(0, eq);
        rargs.unshift(arg.slice(eq + 1));
        explicit = true;
      }
      opt = matchLong(opt);
      const spec = LONG.get(opt)!;
      out.given.push(arg);
      if (spec.kind === 'flag') {
        if (explicit) throw new OptionError(`${opt} option does not take a value`, arg);
        apply(spec, opt, '', out, fc, arg);
      } else {
        if (rargs.length < 1) throw new OptionError(`${opt} option requires 1 argument`, arg);
        apply(spec, opt, rargs.shift()!, out, fc, arg);
      }
    } else if (arg.startsWith('-') && arg.length > 1) {
      rargs.shift();
      // every short option here takes a value: "-ifoo" is "-i foo"
      const opt = arg.slice(0, 2);
      const spec = SHORT.get(opt);
      if (!spec) throw new OptionError(`no such option: ${opt}`, arg);
      out.given.push(arg);
      if (arg.length > 2) rargs.unshift(arg.slice(2));
      if (rargs.length < 1) throw new OptionError(`${opt} option requires 1 argument`, arg);
      apply(spec, opt, rargs.shift()!, out, fc, arg);
    } else {
      rargs.shift(); // a positional word among options: optparse collects it, pip ignores it
    }
  }
  return out;
}
