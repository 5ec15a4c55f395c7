// Lint: typescript-eslint's recommended rules, prettier for formatting, and Nx's module-boundary rule
// keeping the dependency direction of DESIGN.md: apps -> engine, image -> wheelhouse -> recipe, image -> oci (the
// registry protocol), and every package -> errors (a leaf that depends on nothing).
import { fileURLToPath } from 'node:url';
import nx from '@nx/eslint-plugin';
import tseslint from 'typescript-eslint';
import prettier from 'eslint-config-prettier';
import importPlugin from 'eslint-plugin-import';

// @dstack/image's folders in the order the data flows (packages/image/README.md): a folder imports only from
// folders before it, never "back up" (errors.ts is the leaf; index.ts and the tests may import anything).
const IMAGE_FLOW = ['core', 'cache', 'sources', 'layers', 'check', 'app', 'sinks', 'validate'];
const imageSrc = 'packages/image/src';

export default tseslint.config(
  {
    ignores: [
      '**/node_modules/**',
      '**/dist/**',
      '.nx/**',
      'wheelhouse/**',
      '.tmp/**',
      '**/*.js',
      '**/*.cjs',
      '!eslint.config.js',
    ],
  },
  ...tseslint.configs.recommended,
  prettier,
  {
    files: ['**/*.ts'],
    plugins: { '@nx': nx },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@nx/enforce-module-boundaries': [
        'error',
        {
          allow: [],
          enforceBuildableLibDependency: false,
          depConstraints: [
            { sourceTag: 'scope:errors', onlyDependOnLibsWithTags: [] },
            { sourceTag: 'scope:recipe', onlyDependOnLibsWithTags: ['scope:errors'] },
            { sourceTag: 'scope:oci', onlyDependOnLibsWithTags: ['scope:errors'] },
            { sourceTag: 'scope:wheelhouse', onlyDependOnLibsWithTags: ['scope:recipe', 'scope:errors'] },
            {
              // The registry store: the wheelhouse's contract over the OCI client; wheelhouse itself stays free of both.
              sourceTag: 'scope:wheelhouse-registry',
              onlyDependOnLibsWithTags: ['scope:oci', 'scope:wheelhouse', 'scope:recipe', 'scope:errors'],
            },
            { sourceTag: 'scope:engine', onlyDependOnLibsWithTags: ['scope:wheelhouse', 'scope:recipe', 'scope:errors'] },
            { sourceTag: 'scope:image', onlyDependOnLibsWithTags: ['scope:oci', 'scope:wheelhouse', 'scope:recipe', 'scope:errors'] },
            {
              sourceTag: 'scope:server',
              onlyDependOnLibsWithTags: [
                'scope:engine',
                'scope:wheelhouse-registry',
                'scope:oci',
                'scope:wheelhouse',
                'scope:recipe',
                'scope:errors',
              ],
            },
            {
              // The CLI combines everything, the server app included (`dstack-factory serve`).
              sourceTag: 'scope:cli',
              onlyDependOnLibsWithTags: [
                'scope:server',
                'scope:engine',
                'scope:image',
                'scope:wheelhouse-registry',
                'scope:oci',
                'scope:wheelhouse',
                'scope:recipe',
                'scope:errors',
              ],
            },
            {
              // expectValidImage reads and checks images with @dstack/image.
              sourceTag: 'scope:testing',
              onlyDependOnLibsWithTags: ['scope:image', 'scope:wheelhouse-registry', 'scope:oci', 'scope:wheelhouse', 'scope:recipe', 'scope:errors'],
            },
          ],
        },
      ],
    },
  },
  {
    files: [`${imageSrc}/**/*.ts`],
    ignores: ['**/*.test.ts', '**/*.test-support.ts'],
    plugins: { import: importPlugin },
    settings: { 'import/resolver': { [fileURLToPath(new URL('./tools/eslint/resolve-ts-source.cjs', import.meta.url))]: {} } },
    rules: {
      'import/no-restricted-paths': [
        'error',
        {
          basePath: fileURLToPath(new URL('.', import.meta.url)),
          zones: [
            {
              target: `${imageSrc}/errors.ts`,
              from: imageSrc,
              except: ['./errors.ts'],
              message: 'errors.ts is the leaf of @dstack/image.',
            },
            ...IMAGE_FLOW.map((dir, i) => ({
              target: `${imageSrc}/${dir}`,
              from: [...IMAGE_FLOW.slice(i + 1).map((d) => `${imageSrc}/${d}`), `${imageSrc}/index.ts`, `${imageSrc}/fixtures`],
              message: `${dir}/ imports only from the folders before it (${IMAGE_FLOW.join(' -> ')}); nothing imports back up.`,
            })),
          ],
        },
      ],
    },
  },
  {
    // No import cycles (a module that imports one that imports it back), within a package or app.
    files: ['packages/*/src/**/*.ts', 'apps/*/src/**/*.ts'],
    plugins: { import: importPlugin },
    settings: {
      'import/parsers': { '@typescript-eslint/parser': ['.ts'] },
      // Relative ./x.js -> ./x.ts first, then Node's resolution for packages.
      'import/resolver': { [fileURLToPath(new URL('./tools/eslint/resolve-ts-source.cjs', import.meta.url))]: {}, node: {} },
    },
    rules: { 'import/no-cycle': ['error', { ignoreExternal: true }] },
  },
  {
    // The commands get what they share from context.ts; main.ts imports them, never the other way (import/no-cycle
    // does not see type-only imports, this rule does).
    files: ['apps/cli/src/commands/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', { patterns: [{ group: ['**/main.js', '**/main'], message: 'commands must not import main.ts: put what they share in context.ts' }] }],
    },
  },
  {
    // Tests and their helpers (*.test-support.ts, never built into dist) may use the private testing helpers.
    files: ['**/*.test.ts', '**/*.test-support.ts'],
    rules: { '@nx/enforce-module-boundaries': 'off' },
  },
);
