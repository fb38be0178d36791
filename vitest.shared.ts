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
      // worker processes, two at a time on the 2-core CI machine. A worker runs file after
      // file without reloading the modules they share (the apps, testkit, socket.io, NATS):
      // loading them again for each of ~70 files cost 64 s of the suite's CPU against 27 s.
      // Files must leave no global state behind (every test stops what it starts).
      pool: 'forks',
      isolate: false,
      maxWorkers: 2,
      testTimeout: 30_000,
      hookTimeout: 60_000,
      reporters: ['default'],
    },
  });
}
