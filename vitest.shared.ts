/**
 * What every package's `vitest.config.ts` shares. A package's tests run as its turbo
 * `test` task (`npx turbo run test --filter=@switchboard/edge`), cached while the package
 * and what it depends on are unchanged; the root config runs them all as projects.
 *
 * Two tiers by folder: `test/unit/` holds tests with no process, server or socket of their
 * own (in-memory fakes, `inject()`), the rest of `test/` the integration tests against real
 * nats-server processes and real sockets. `npm run test:unit` runs the unit tier alone.
 */
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

const unitGuard = fileURLToPath(new URL('./vitest.unit-guard.ts', import.meta.url));

export function packageTestConfig(name: string) {
  return defineConfig({
    test: {
      name,
      include: ['test/**/*.test.ts'],
      setupFiles: [unitGuard],
      // Integration tests start nats-server processes and real sockets: files run in
      // separate processes, two at a time on the 2-core CI machine.
      pool: 'forks',
      maxWorkers: 2,
      testTimeout: 30_000,
      hookTimeout: 60_000,
      reporters: ['default'],
    },
  });
}
