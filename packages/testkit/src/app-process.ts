/**
 * Apps as real processes (`node apps/<app>/dist/main.js`), for fault tests that need
 * `kill -9` and for the local stack.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { waitFor } from './wait-for.js';

const live = new Set<ChildProcess>();
// A test run that dies must not leave apps behind.
process.once('exit', () => {
  for (const p of live) p.kill('SIGKILL');
});

export type AppName = 'edge' | 'presence' | 'push-api' | 'os-push';

/** The repository root, from this file's place in packages/testkit/dist. */
export const repoRoot = fileURLToPath(new URL('../../../', import.meta.url));

export type SpawnAppOptions = {
  env: Record<string, string>;
  /** URL polled until it answers 200 (e.g. the app's /readyz). */
  readyUrl?: string;
  readyTimeoutMs?: number;
  /** Extra node flags, e.g. `--cpu-prof` for profiling. */
  nodeArgs?: string[];
};

export class AppProcess {
  readonly name: AppName;
  readonly #proc: ChildProcess;
  #output = '';

  private constructor(name: AppName, proc: ChildProcess) {
    this.name = name;
    this.#proc = proc;
    const keep = (d: Buffer) => {
      this.#output = (this.#output + d.toString()).slice(-16_384);
    };
    proc.stdout?.on('data', keep);
    proc.stderr?.on('data', keep);
  }

  static async spawn(name: AppName, options: SpawnAppOptions): Promise<AppProcess> {
    const proc = spawn(
      process.execPath,
      [...(options.nodeArgs ?? []), `${repoRoot}apps/${name}/dist/main.js`],
      {
        env: { PATH: process.env.PATH ?? '', LOG_LEVEL: 'warn', ...options.env },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    live.add(proc);
    proc.once('exit', () => live.delete(proc));
    const app = new AppProcess(name, proc);
    if (options.readyUrl) {
      const url = options.readyUrl;
      await waitFor(
        async () => {
          if (!app.running) throw new Error(`${name} exited with ${proc.exitCode}: ${app.output}`);
          const res = await fetch(url).catch(() => null);
          return res?.ok === true;
        },
        {
          timeoutMs: options.readyTimeoutMs ?? 15_000,
          message: () => `${name} not ready: ${app.output}`,
        },
      ).catch((err: unknown) => {
        proc.kill('SIGKILL');
        throw err;
      });
    }
    return app;
  }

  /** The process id (for /proc readings in benchmarks). */
  get pid(): number | undefined {
    return this.#proc.pid;
  }

  /** Pauses (SIGSTOP) or resumes (SIGCONT) the process: a stalled, not a dead, node. */
  pause(paused: boolean): void {
    this.#proc.kill(paused ? 'SIGSTOP' : 'SIGCONT');
  }

  get running(): boolean {
    return this.#proc.exitCode === null && this.#proc.signalCode === null;
  }

  /** Last 16 KiB of stdout and stderr. */
  get output(): string {
    return this.#output;
  }

  /** Sends `signal` and resolves with the exit code (null when killed by a signal). */
  async signal(signal: NodeJS.Signals): Promise<number | null> {
    if (!this.running) return this.#proc.exitCode;
    const exited = new Promise<number | null>((resolve) =>
      this.#proc.once('exit', (code) => resolve(code)),
    );
    this.#proc.kill(signal);
    return exited;
  }

  /** `kill -9`. */
  kill(): Promise<number | null> {
    return this.signal('SIGKILL');
  }

  stop(): Promise<number | null> {
    return this.signal('SIGTERM');
  }
}
