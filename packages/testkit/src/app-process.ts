/**
 * Apps as real processes (`node apps/<app>/dist/main.js`), for fault tests that need
 * `kill -9` and for the local stack.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { freePort } from './ports.js';
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

/** The entry point every app runs from: `apps/<app>/dist/main.js`. */
export const appMain = (name: AppName): string => `${repoRoot}apps/${name}/dist/main.js`;

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
    const proc = spawn(process.execPath, [...(options.nodeArgs ?? []), appMain(name)], {
      env: { PATH: process.env.PATH ?? '', LOG_LEVEL: 'warn', ...options.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
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

/** What an app's configuration check said: `ok` when it exited 0. */
export type ConfigCheck = { ok: boolean; code: number | null; output: string };

/**
 * `node apps/<app>/dist/main.js --check-config` with `env` as its whole environment (and
 * PATH): exits 0 printing `<app>: configuration ok`, or 1 naming the variable that is wrong.
 */
export function checkAppConfig(name: AppName, env: Record<string, string>): Promise<ConfigCheck> {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, [appMain(name), '--check-config'], {
      env: { PATH: process.env.PATH ?? '', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    live.add(proc);
    let output = '';
    const keep = (d: Buffer) => {
      output += d.toString();
    };
    proc.stdout?.on('data', keep);
    proc.stderr?.on('data', keep);
    proc.once('error', reject);
    proc.once('close', (code) => {
      live.delete(proc);
      resolve({ ok: code === 0, code, output: output.trim() });
    });
  });
}

/** An app process listening on 127.0.0.1 on a port of its own, ready (its /readyz answered 200). */
export class RunningApp {
  readonly name: AppName;
  readonly port: number;
  readonly process: AppProcess;

  private constructor(name: AppName, port: number, proc: AppProcess) {
    this.name = name;
    this.port = port;
    this.process = proc;
  }

  /**
   * Spawns `node apps/<name>/dist/main.js` with `env`, `HOST=127.0.0.1` and `PORT` a free
   * port (or `options.port`), and resolves once it is ready.
   */
  static async start(
    name: AppName,
    env: Record<string, string>,
    options: { port?: number; readyTimeoutMs?: number } = {},
  ): Promise<RunningApp> {
    const port = options.port ?? (await freePort());
    const proc = await AppProcess.spawn(name, {
      env: { HOST: '127.0.0.1', ...env, PORT: String(port) },
      readyUrl: `http://127.0.0.1:${port}/readyz`,
      ...(options.readyTimeoutMs === undefined ? {} : { readyTimeoutMs: options.readyTimeoutMs }),
    });
    return new RunningApp(name, port, proc);
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  get running(): boolean {
    return this.process.running;
  }

  /** Last 16 KiB of its output. */
  get output(): string {
    return this.process.output;
  }

  /** Graceful stop (SIGTERM); resolves with the exit code. */
  stop(): Promise<number | null> {
    return this.process.stop();
  }

  /** `kill -9`. */
  kill(): Promise<number | null> {
    return this.process.kill();
  }

  /** The sum of the samples of `metric` (with these labels, when given) on its /metrics; undefined when absent. */
  metric(metric: string, labels: Record<string, string> = {}): Promise<number | undefined> {
    return readMetric(this.url, metric, labels);
  }
}

/**
 * Reads `<baseUrl>/metrics` and sums the samples of `metric` whose labels include `labels`;
 * undefined when no sample matches.
 */
export async function readMetric(
  baseUrl: string,
  metric: string,
  labels: Record<string, string> = {},
): Promise<number | undefined> {
  const res = await fetch(`${baseUrl}/metrics`);
  if (!res.ok) throw new Error(`${baseUrl}/metrics answered ${res.status}`);
  let sum: number | undefined;
  for (const line of (await res.text()).split('\n')) {
    const m = line.match(/^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)(?: \d+)?$/);
    if (!m || m[1] !== metric) continue;
    const has = new Map(
      [...(m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)].map((l) => [
        l[1],
        l[2],
      ]),
    );
    if (!Object.entries(labels).every(([k, v]) => has.get(k) === v)) continue;
    sum = (sum ?? 0) + Number(m[3]);
  }
  return sum;
}
