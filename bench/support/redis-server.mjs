// A local redis-server for the baselines: a free port on 127.0.0.1 (never 6379), no
// persistence, a temporary directory; killed with the benchmark.
import { execFileSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '@switchboard/testkit';
import { findRedisServer } from '../../scripts/ensure.mjs';
import { spawnBinary, stopProcess, until } from './procs.mjs';

export function redisVersion() {
  const bin = findRedisServer();
  if (!bin) return null;
  return /v=(\S+)/.exec(execFileSync(bin, ['--version']).toString())?.[1] ?? null;
}

const ping = (port) =>
  new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('error', () => resolve(false));
    socket.once('data', (d) => {
      socket.destroy();
      resolve(d.toString().startsWith('+PONG'));
    });
    socket.once('connect', () => socket.write('PING\r\n'));
  });

export class RedisServer {
  constructor(child, port, dir) {
    this.child = child;
    this.port = port;
    this.dir = dir;
  }

  get url() {
    return `redis://127.0.0.1:${this.port}`;
  }

  get pid() {
    return this.child.pid;
  }

  static async start() {
    const bin = findRedisServer();
    if (!bin)
      throw new Error(
        'redis-server not found (run `node bench/run.mjs`, which installs it, or set REDIS_SERVER_BIN)',
      );
    const dir = await mkdtemp(join(tmpdir(), 'sb-redis-'));
    const port = await freePort();
    const child = spawnBinary(bin, [
      '--port',
      String(port),
      '--bind',
      '127.0.0.1',
      '--save',
      '',
      '--appendonly',
      'no',
      '--dir',
      dir,
      '--loglevel',
      'warning',
      '--daemonize',
      'no',
    ]);
    await until(
      async () => {
        if (child.proc.exitCode !== null) throw new Error(`redis-server exited: ${child.stderr()}`);
        return ping(port);
      },
      { timeoutMs: 10_000, what: 'redis-server' },
    );
    return new RedisServer(child, port, dir);
  }

  async stop() {
    await stopProcess(this.child.proc, 5_000);
    await rm(this.dir, { recursive: true, force: true });
  }
}
