// Lint rules. The one that matters most keeps workflow code deterministic: no Node built-ins,
// no database drivers and no activity implementations in workflows/ or the pure lib/ they use.
import js from '@eslint/js';
import { builtinModules } from 'node:module';
import tseslint from 'typescript-eslint';

const nodeBuiltins = builtinModules.flatMap((name) => [name, `node:${name}`]);

const workflowSafeImports = {
  '@typescript-eslint/no-restricted-imports': [
    'error',
    {
      paths: [
        ...nodeBuiltins.map((name) => ({ name, message: 'Workflow code is deterministic: no Node built-ins.' })),
        { name: 'pg', message: 'Workflow code never touches the database; call an activity.' },
        { name: 'pg-copy-streams', message: 'Workflow code never touches the database; call an activity.' },
        { name: 'prom-client', message: 'Metrics are recorded by activities and workers, not workflows.' },
        { name: '@temporalio/activity', message: 'Activity APIs do not run inside workflows.' },
        { name: '@temporalio/worker', message: 'Worker APIs do not run inside workflows.' },
        { name: '@temporalio/client', message: 'Workflows talk to other workflows through @temporalio/workflow.' },
      ],
      patterns: [
        {
          group: ['**/activities', '**/activities/*', '**/workers/*', '**/cli/*', '**/scripts/*', '**/client/*'],
          allowTypeImports: true,
          message: 'Workflows import activities as types only (import type), and nothing else with side effects.',
        },
      ],
    },
  ],
};

export default tseslint.config(
  { ignores: ['node_modules/', '.tools/', 'dist/', 'client/dist/', 'coverage/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': ['error', { fixStyle: 'inline-type-imports' }],
      'no-constant-condition': ['error', { checkLoops: false }],
    },
  },
  { files: ['workflows/**/*.ts', 'lib/**/*.ts'], rules: workflowSafeImports },
  {
    // The operator API serves the CLI, scripts and tests alike: it returns data, and knows nothing of the CLI.
    files: ['operator/**/*.ts'],
    rules: {
      '@typescript-eslint/no-restricted-imports': ['error', { patterns: [{ group: ['**/cli', '**/cli/*'], message: 'The operator API does not import from cli/; the CLI imports from it.' }] }],
    },
  },
  {
    files: ['bin/**/*.js'],
    languageOptions: { sourceType: 'commonjs', globals: { require: 'readonly', process: 'readonly', __dirname: 'readonly', console: 'readonly' } },
    rules: { '@typescript-eslint/no-require-imports': 'off' },
  },
  {
    // One way to build SQL: statements here are sql`` templates (activities/sql.ts), never text with
    // $n numbered by hand beside a separate array of values.
    files: ['activities/**/*.ts'],
    rules: {
      'no-restricted-syntax': [
        'error',
        { selector: "CallExpression[callee.property.name='query'] > TemplateLiteral", message: 'Build the statement with the sql`` template of activities/sql.ts.' },
        {
          selector: "CallExpression[callee.property.name='query'] > Literal[value=/^\\s*(SELECT|INSERT|UPDATE|DELETE|WITH)\\b/i]",
          message: 'Build the statement with the sql`` template of activities/sql.ts.',
        },
      ],
    },
  },
);
