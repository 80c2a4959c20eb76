import { configDefaults, defineConfig } from 'vitest/config';
import { CDK_TESTS, E2E_TESTS, INTEGRATION_TESTS } from './test/helpers/projects.ts';

export default defineConfig({
  test: {
    // Integration tests start local AWS services and ONNX Runtime sessions; two cores are shared.
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    maxWorkers: 2,
    // `vitest run` runs every project; `--project unit` is the fast loop.
    projects: [
      {
        extends: true,
        test: { name: 'unit', include: ['test/**/*.test.ts'], exclude: [...configDefaults.exclude, ...INTEGRATION_TESTS, ...E2E_TESTS, ...CDK_TESTS] },
      },
      { extends: true, test: { name: 'integration', include: INTEGRATION_TESTS } },
      { extends: true, test: { name: 'e2e', include: E2E_TESTS } },
      { extends: true, test: { name: 'cdk', include: CDK_TESTS } },
    ],
  },
});
