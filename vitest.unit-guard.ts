/**
 * Keeps the unit tier honest: a test file under `test/unit/` may not start a process or
 * listen on a socket (those belong to the integration tier beside it). Loaded by every
 * package's vitest config; files elsewhere are left alone. Files run in separate forks, so
 * the patch does not leak into another file.
 */
import childProcess from 'node:child_process';
import net from 'node:net';
import { beforeAll, expect } from 'vitest';

beforeAll(() => {
  const file = expect.getState().testPath ?? '';
  if (!file.includes('/test/unit/')) return;
  const refuse = (what: string) => () => {
    throw new Error(`${what} in a unit test (${file}): move the test out of test/unit/`);
  };
  net.Server.prototype.listen = refuse('a server listening') as never;
  for (const fn of ['spawn', 'exec', 'execFile', 'fork', 'spawnSync', 'execSync'] as const)
    (childProcess as Record<string, unknown>)[fn] = refuse(`child_process.${fn}`);
});
