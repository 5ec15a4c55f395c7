// Lint: typescript-eslint's recommended rules, prettier for formatting, and Nx's module-boundary rule
// keeping the dependency direction of DESIGN.md: apps -> engine, image -> wheelhouse -> recipe, and every
// package -> errors (a leaf that depends on nothing).
import nx from '@nx/eslint-plugin';
import tseslint from 'typescript-eslint';
import prettier from 'eslint-config-prettier';

export default tseslint.config(
  {
    ignores: [
      '**/node_modules/**',
      '**/dist/**',
      '.nx/**',
      'wheelhouse/**',
      '.tmp/**',
      '**/*.js',
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
            { sourceTag: 'scope:wheelhouse', onlyDependOnLibsWithTags: ['scope:recipe', 'scope:errors'] },
            { sourceTag: 'scope:engine', onlyDependOnLibsWithTags: ['scope:wheelhouse', 'scope:recipe', 'scope:errors'] },
            { sourceTag: 'scope:image', onlyDependOnLibsWithTags: ['scope:wheelhouse', 'scope:recipe', 'scope:errors'] },
            {
              sourceTag: 'scope:server',
              onlyDependOnLibsWithTags: ['scope:engine', 'scope:wheelhouse', 'scope:recipe', 'scope:errors'],
            },
            {
              // The CLI combines everything, the server app included (`dstack-factory serve`).
              sourceTag: 'scope:cli',
              onlyDependOnLibsWithTags: [
                'scope:server',
                'scope:engine',
                'scope:image',
                'scope:wheelhouse',
                'scope:recipe',
                'scope:errors',
              ],
            },
            {
              sourceTag: 'scope:testing',
              onlyDependOnLibsWithTags: ['scope:wheelhouse', 'scope:recipe', 'scope:errors'],
            },
          ],
        },
      ],
    },
  },
  {
    // Tests may use the private testing helpers.
    files: ['**/*.test.ts'],
    rules: { '@nx/enforce-module-boundaries': 'off' },
  },
);
