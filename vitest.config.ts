/**
 * Every package's tests in one run (each package's own `vitest.config.ts` is a project),
 * two test files at a time: what `npm run test:all` runs. `npm test` runs them per package
 * through turbo instead, so unchanged packages are not tested again.
 */
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    projects: ['apps/*/vitest.config.ts', 'packages/*/vitest.config.ts'],
    pool: 'forks',
    maxWorkers: 2,
    reporters: ['default'],
  },
});
