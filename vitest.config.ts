/**
 * Every package's tests in one run (each package's own `vitest.config.ts` is a project),
 * two test files at a time across packages: what `npm test` and CI run. `npm run
 * test:changed` runs them per package through turbo instead, skipping unchanged packages.
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
