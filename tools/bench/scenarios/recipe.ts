// Parsing a 10,000-line requirements file (pins, extras, markers, hash continuations, comments, URLs, options)
// with @dstack/recipe, against pip 23.2's own parser on the same file (timed inside one Python process, so
// interpreter start-up is not counted against pip).
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { parseRecipe } from '@dstack/recipe';
import { isolatedPipEnv } from '@dstack/testing';
import { ms, speedup, time, type Scenario, type Timing } from '../lib.js';

const run = promisify(execFile);
const LINES = 10_000;

/** A realistic mix: what pip-compile, hand-written and hash-pinned files contain. */
export function makeRequirements(lines: number): string {
  const out: string[] = [
    '# generated for the recipe benchmark',
    '--index-url https://pypi.example.org/simple',
    '--extra-index-url https://extra.example.org/simple',
  ];
  let i = 0;
  while (out.length < lines) {
    const n = `package-${i}`;
    switch (i % 8) {
      case 0:
        out.push(`${n}==1.${i % 17}.${i % 5}`);
        break;
      case 1:
        out.push(`${n}[extra-a,extra_b]>=2.0,<3 ; python_version >= "3.8" and sys_platform != "win32"`);
        break;
      case 2:
        out.push(
          `${n}==3.1.4 \\`,
          `    --hash=sha256:${'ab'.repeat(32)} \\`,
          `    --hash=sha256:${'cd'.repeat(32)}`,
          '    # via some-parent',
        );
        break;
      case 3:
        out.push(`${n} ~= 4.2  # pinned for a reason`);
        break;
      case 4:
        out.push(`${n} @ https://files.example.org/${n}-1.0.tar.gz#sha256=${'ef'.repeat(32)}`);
        break;
      case 5:
        out.push(`git+https://github.com/example/${n}.git@v1.${i}#egg=${n}&subdirectory=src`);
        break;
      case 6:
        out.push(
          `${n} (>=1.0, !=1.5.*) ; (python_version < "3.12" or implementation_name == 'pypy') and extra == "test"`,
          '',
        );
        break;
      default:
        out.push(`${n}===1.0+local.${i}`, '# a comment line');
    }
    i++;
  }
  return `${out.slice(0, lines).join('\n')}\n`;
}

const PIP_TIMER = `
import statistics, sys, time
from pip._internal.network.session import PipSession
from pip._internal.req.req_file import parse_requirements
from pip._internal.req.constructors import install_req_from_parsed_requirement
session = PipSession()
def once():
    return [install_req_from_parsed_requirement(r) for r in parse_requirements(sys.argv[1], session)]
n = len(once())
samples = []
for _ in range(5):
    t = time.perf_counter(); once(); samples.append((time.perf_counter() - t) * 1000)
samples.sort()
print(n, samples[len(samples) // 2], samples[0])
`;

const scenario: Scenario = {
  name: 'recipe',
  description: `parse a ${LINES.toLocaleString('en')}-line requirements file with parseRecipe, vs pip 23.2's own parser (parse_requirements + install_req_from_parsed_requirement, in-process)`,
  async run() {
    const tmp = await mkdtemp(join(tmpdir(), 'bench-recipe-'));
    try {
      const text = makeRequirements(LINES);
      const file = join(tmp, 'requirements.txt');
      await writeFile(file, text);
      let count = 0;
      const cpuSamples: number[] = [];
      const ours = await time(
        async () => {
          const cpu = process.cpuUsage();
          count = (await parseRecipe(text, { file, cwd: tmp })).requirements.length;
          const used = process.cpuUsage(cpu);
          cpuSamples.push((used.user + used.system) / 1000);
        },
        9,
        2,
      );
      const { stdout } = await run('python3', ['-W', 'ignore', '-c', PIP_TIMER, file], {
        env: isolatedPipEnv(),
        cwd: tmp,
        maxBuffer: 16 * 1024 * 1024,
      });
      const [pipCount, pipMedian, pipMin] = stdout.trim().split(/\s+/).map(Number) as [
        number,
        number,
        number,
      ];
      const pip: Timing = { median: pipMedian, min: pipMin, runs: 5 };
      if (pipCount !== count) throw new Error(`pip read ${pipCount} requirements, we read ${count}`);
      return [
        `${LINES.toLocaleString('en')} lines, ${count.toLocaleString('en')} requirements: parseRecipe ${ms(ours.median)} (min ${ms(ours.min)}; CPU ${ms(cpuSamples.sort((a, b) => a - b)[Math.floor(cpuSamples.length / 2)]!)}; goal: well under 100 ms)`,
        speedup('parseRecipe', ours, pip, "pip's parser"),
      ];
    } finally {
      await rm(tmp, { recursive: true, force: true });
    }
  },
};
export default scenario;
