// @ts-check
/**
 * ESLint (flat config): typescript-eslint with type information, so promise rules can see what a
 * call returns; import-x for import cycles (a cycle makes a module's exports undefined while the
 * other one loads); eslint-config-prettier last, so formatting is Prettier's alone.
 */
import js from '@eslint/js';
import prettier from 'eslint-config-prettier';
import { createTypeScriptImportResolver } from 'eslint-import-resolver-typescript';
import { importX } from 'eslint-plugin-import-x';
import { defineConfig } from 'eslint/config';
import globals from 'globals';
import tseslint from 'typescript-eslint';

export default defineConfig(
  { ignores: ['node_modules/', 'cdk.out/', 'coverage/', '.agentflow/', 'tmp/'] },
  js.configs.recommended,
  tseslint.configs.recommended,
  importX.flatConfigs.recommended,
  importX.flatConfigs.typescript,
  {
    languageOptions: {
      ecmaVersion: 2023,
      sourceType: 'module',
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    settings: {
      // Resolves the `#lib/*` subpath imports of package.json and `.ts` specifiers as tsc does.
      'import-x/resolver-next': [createTypeScriptImportResolver({ project: './tsconfig.json' })],
    },
    rules: {
      'import-x/no-cycle': 'error',
      // The tree's layers (README.md, A tour of the code): domain libraries know nothing of the pipeline, the serving
      // side or AWS. The one exception is the execution-history budget, which the spec parser checks
      // against the state machine's own event counts so that a spec that cannot finish is refused.
      'import-x/no-restricted-paths': [
        'error',
        {
          zones: [
            { target: './lib/domain', from: './lib/adapters', message: 'lib/domain imports no adapter; pass what it needs in' },
            { target: './lib/domain', from: './lib/serve', message: 'lib/domain imports nothing of the serving side' },
            { target: './lib/domain', from: './lib/pipeline', except: ['./history.ts', './asl.ts'], message: 'lib/domain imports nothing of the pipeline' },
          ],
        },
      ],
      // A promise nobody awaits loses its rejection: a failed write would pass unseen.
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/await-thenable': 'error',
      // `_`-prefixed names and holes in destructuring mark what a signature or a tuple must have but the code does not read.
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none', ignoreRestSiblings: true }],
      // Types stay checked by tsc; the type-only import form is enforced by verbatimModuleSyntax.
      'import-x/no-unresolved': 'off',
      'import-x/named': 'off',
      // onnx-proto, fast-check and other CommonJS packages are used through their default export's namespace on purpose.
      'import-x/no-named-as-default-member': 'off',
    },
  },
  {
    // Tests walk CloudFormation templates and AWS JSON documents as untyped data in their assertions.
    files: ['test/**/*.ts'],
    rules: { '@typescript-eslint/no-explicit-any': 'off' },
  },
  {
    // Plain JavaScript (bin/, examples/, this file) is outside tsconfig.json: no type information for it.
    files: ['**/*.js', '**/*.mjs', '**/*.cjs'],
    extends: [tseslint.configs.disableTypeChecked],
    languageOptions: { globals: globals.node },
  },
  prettier,
);
