import { defineConfig } from 'vitest/config';

// Every test runs against real nats-server processes and real sockets, so files run in
// separate processes; two at a time fits the 2-core CI machine.
export default defineConfig({
  test: {
    include: ['{apps,packages}/*/test/**/*.test.ts'],
    pool: 'forks',
    maxWorkers: 2,
    testTimeout: 30_000,
    hookTimeout: 60_000,
    reporters: ['default'],
  },
});
