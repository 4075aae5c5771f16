// ESLint for the whole tree (`npm run lint`): typescript-eslint's recommended rules with the
// type-aware ones that catch real mistakes in a server (a promise nobody awaits, an await on a
// non-promise), lines of at most 120 characters, and no warnings (everything is an error).
// The module rules (no cycle, who may import whom) live in test/module-rules.test.ts.
import js from '@eslint/js'
import globals from 'globals'
import tseslint from 'typescript-eslint'

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', '**/node_modules/**', 'test/fixtures/plugin-package/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      'max-len': ['error', { code: 120, ignoreUrls: true, ignoreRegExpLiterals: true }],
      // A `let` read by a teardown registered before it is assigned is the point, not a slip.
      'prefer-const': ['error', { ignoreReadBeforeAssign: true }],
      'no-unused-vars': 'off',
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' },
      ],
    },
  },
  {
    // Type-aware rules where the type checker already runs (the TypeScript sources).
    files: ['**/*.ts'],
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      // tap's t.test() returns a promise that tap itself awaits: the idiom is to leave it.
      '@typescript-eslint/no-floating-promises': [
        'error',
        { allowForKnownSafePromises: [{ from: 'package', name: 'PromiseWithSubtest', package: '@tapjs/core' }] },
      ],
      '@typescript-eslint/await-thenable': 'error',
      '@typescript-eslint/no-misused-promises': ['error', { checksVoidReturn: false }],
      '@typescript-eslint/consistent-type-imports': ['error', { fixStyle: 'inline-type-imports' }],
    },
  },
  {
    files: ['bin/**/*.js', 'test/**/*.js', 'bench/**/*.mjs', 'bench/**/*.js'],
    languageOptions: { globals: globals.node },
  },
  {
    // Scripts served to browsers, not modules of the farm.
    files: ['core/client/browser/**/*.js', 'plugins/*/client/**/*.js'],
    languageOptions: { sourceType: 'script', globals: { ...globals.browser, ...globals.jquery, wiki: 'readonly' } },
  },
)
