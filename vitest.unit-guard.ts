/**
 * Keeps the unit tier honest: a test file under `test/unit/` may not start a process or
 * listen on a socket (those belong to the integration tier beside it). Loaded by every
 * package's vitest config before each test file. Test files share their worker process
 * (`isolate: false`), so the guard is installed once per process and asks, at each call,
 * whether the file running now is a unit test; files elsewhere are left alone.
 */
import childProcess from 'node:child_process';
import net from 'node:net';
import { beforeAll, expect } from 'vitest';

type Guard = { unitFile: string | null };
const KEY = Symbol.for('switchboard.unit-guard');
const registry = globalThis as typeof globalThis & { [KEY]?: Guard };

function install(): Guard {
  const guard: Guard = { unitFile: null };
  const wrap = <F extends (...args: never[]) => unknown>(original: F, what: string): F =>
    function (this: unknown, ...args: Parameters<F>) {
      if (guard.unitFile !== null)
        throw new Error(
          `${what} in a unit test (${guard.unitFile}): move the test out of test/unit/`,
        );
      return original.apply(this, args);
    } as F;
  net.Server.prototype.listen = wrap(net.Server.prototype.listen, 'a server listening');
  const cp = childProcess as unknown as Record<string, (...args: never[]) => unknown>;
  for (const fn of ['spawn', 'exec', 'execFile', 'fork', 'spawnSync', 'execSync'] as const)
    cp[fn] = wrap(cp[fn]!, `child_process.${fn}`);
  return guard;
}

registry[KEY] ??= install();
const guard = registry[KEY];

beforeAll(() => {
  const file = expect.getState().testPath ?? '';
  guard.unitFile = file.includes('/test/unit/') ? file : null;
});
