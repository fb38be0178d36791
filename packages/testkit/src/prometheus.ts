/**
 * A real Prometheus for tests (Debian's `prometheus` package, which also brings
 * `promtool`): one server on a free port with a temporary store, queried through its HTTP
 * API. Also finds other system binaries the operations tests check configs with
 * (`promtool`, `haproxy`). `scripts/ensure.mjs` installs them for `npm test`.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { freePort } from './ports.js';
import { waitFor } from './wait-for.js';

export class BinaryNotFoundError extends Error {
  constructor(bin: string, envVar: string, pkg: string) {
    super(
      `${bin} not found on PATH, in /usr/bin, /usr/sbin or /usr/local/bin (set ${envVar}). ` +
        `Install it: \`apt-get install -y ${pkg}\` (Debian/Ubuntu), or run \`npm test\` as root, ` +
        'which installs it (scripts/ensure.mjs)',
    );
    this.name = 'BinaryNotFoundError';
  }
}

const DEFAULT_DIRS = ['/usr/bin', '/usr/sbin', '/usr/local/sbin', '/usr/local/bin'];

type FindOptions = { env?: Record<string, string | undefined>; extraDirs?: string[] };

/** Path of `bin`: `envVar` if set and present, then PATH, then the usual system folders. */
export function findBinary(
  bin: string,
  envVar: string,
  pkg: string,
  options: FindOptions = {},
): string {
  const env = options.env ?? process.env;
  const fromEnv = env[envVar];
  if (fromEnv && existsSync(fromEnv)) return fromEnv;
  const dirs = [...(env.PATH ?? '').split(delimiter), ...(options.extraDirs ?? DEFAULT_DIRS)];
  for (const dir of dirs) {
    const p = join(dir, bin);
    if (dir && existsSync(p)) return p;
  }
  throw new BinaryNotFoundError(bin, envVar, pkg);
}

/** `PROMETHEUS_BIN`, then PATH and the system folders. */
export const findPrometheus = (options?: FindOptions) =>
  findBinary('prometheus', 'PROMETHEUS_BIN', 'prometheus', options);
/** `PROMTOOL_BIN`, then PATH and the system folders (Debian's `prometheus` package has it). */
export const findPromtool = (options?: FindOptions) =>
  findBinary('promtool', 'PROMTOOL_BIN', 'prometheus', options);
/** `HAPROXY_BIN`, then PATH and the system folders. */
export const findHaproxy = (options?: FindOptions) =>
  findBinary('haproxy', 'HAPROXY_BIN', 'haproxy', options);

export type RunResult = { code: number | null; stdout: string; stderr: string };

/** Runs a command to completion (no shell) and returns its exit code and output. */
export function runCommand(
  bin: string,
  args: string[],
  options: { env?: Record<string, string>; cwd?: string; timeoutMs?: number } = {},
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const proc = spawn(bin, args, {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, ...options.env },
      ...(options.cwd ? { cwd: options.cwd } : {}),
    });
    let stdout = '';
    let stderr = '';
    proc.stdout?.on('data', (d: Buffer) => {
      stdout += d.toString();
    });
    proc.stderr?.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    const timer = setTimeout(() => proc.kill('SIGKILL'), options.timeoutMs ?? 30_000);
    proc.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    proc.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** `promtool <args>`. */
export function promtool(args: string[], options: { cwd?: string } = {}): Promise<RunResult> {
  return runCommand(findPromtool(), args, options);
}

const live = new Set<ChildProcess>();
process.once('exit', () => {
  for (const p of live) p.kill('SIGKILL');
});

/** One scrape job: static targets (`host:port`), optional path. */
export type ScrapeJob = { job: string; targets: string[]; metricsPath?: string };

export type PrometheusOptions = {
  jobs: ScrapeJob[];
  /** Scrape and rule evaluation interval (default 1 s). */
  intervalSeconds?: number;
  /** Rule files (absolute paths) to load. */
  ruleFiles?: string[];
};

/** One sample of an instant vector. */
export type PromSample = { metric: Record<string, string>; value: [number, string] };
export type PromQueryResult = { resultType: string; result: PromSample[] | unknown };

export class PrometheusQueryError extends Error {
  constructor(
    readonly expr: string,
    readonly errorType: string,
    message: string,
  ) {
    super(`${errorType}: ${message} (query: ${expr})`);
    this.name = 'PrometheusQueryError';
  }
}

export class PrometheusServer {
  readonly port: number;
  readonly dir: string;
  readonly #proc: ChildProcess;
  #output = '';

  private constructor(port: number, dir: string, proc: ChildProcess) {
    this.port = port;
    this.dir = dir;
    this.#proc = proc;
    const keep = (d: Buffer) => {
      this.#output = (this.#output + d.toString()).slice(-8192);
    };
    proc.stdout?.on('data', keep);
    proc.stderr?.on('data', keep);
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  get running(): boolean {
    return this.#proc.exitCode === null && this.#proc.signalCode === null;
  }

  /** Last 8 KiB of its log. */
  get output(): string {
    return this.#output;
  }

  /** The configuration file Prometheus is given for `options`. */
  static config(options: PrometheusOptions): string {
    const interval = `${options.intervalSeconds ?? 1}s`;
    const lines = [
      'global:',
      `  scrape_interval: ${interval}`,
      `  scrape_timeout: ${interval}`,
      `  evaluation_interval: ${interval}`,
    ];
    if (options.ruleFiles?.length) {
      lines.push('rule_files:');
      for (const f of options.ruleFiles) lines.push(`  - ${JSON.stringify(f)}`);
    }
    lines.push('scrape_configs:');
    for (const job of options.jobs) {
      lines.push(`  - job_name: ${JSON.stringify(job.job)}`);
      lines.push(`    metrics_path: ${JSON.stringify(job.metricsPath ?? '/metrics')}`);
      lines.push('    static_configs:');
      lines.push(`      - targets: [${job.targets.map((t) => JSON.stringify(t)).join(', ')}]`);
    }
    return `${lines.join('\n')}\n`;
  }

  /** Starts Prometheus on a free port and resolves once it is ready (`/-/ready`). */
  static async start(options: PrometheusOptions): Promise<PrometheusServer> {
    const bin = findPrometheus();
    const dir = await mkdtemp(join(tmpdir(), 'sb-prometheus-'));
    const configPath = join(dir, 'prometheus.yml');
    await writeFile(configPath, PrometheusServer.config(options));
    const port = await freePort();
    const proc = spawn(
      bin,
      [
        `--config.file=${configPath}`,
        `--storage.tsdb.path=${join(dir, 'data')}`,
        `--web.listen-address=127.0.0.1:${port}`,
        '--storage.tsdb.retention.time=1h',
        '--log.level=warn',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    live.add(proc);
    proc.once('exit', () => live.delete(proc));
    const server = new PrometheusServer(port, dir, proc);
    try {
      await waitFor(
        async () => {
          if (!server.running) throw new Error(`prometheus exited: ${server.output}`);
          const res = await fetch(`${server.url}/-/ready`).catch(() => null);
          return res?.ok === true;
        },
        {
          timeoutMs: 20_000,
          intervalMs: 100,
          message: () => `prometheus not ready: ${server.output}`,
        },
      );
    } catch (err) {
      await server.stop();
      throw err;
    }
    return server;
  }

  async #api<T>(path: string, params: Record<string, string | string[]>): Promise<T> {
    const body = new URLSearchParams();
    for (const [k, v] of Object.entries(params))
      for (const one of Array.isArray(v) ? v : [v]) body.append(k, one);
    const res = await fetch(`${this.url}/api/v1/${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body,
    });
    const json = (await res.json()) as {
      status: string;
      data: T;
      errorType?: string;
      error?: string;
    };
    if (json.status !== 'success')
      throw new PrometheusQueryError(
        String(params.query ?? params['match[]'] ?? path),
        json.errorType ?? String(res.status),
        json.error ?? 'query failed',
      );
    return json.data;
  }

  /** An instant query; throws {@link PrometheusQueryError} when Prometheus refuses it. */
  query(expr: string): Promise<PromQueryResult> {
    return this.#api<PromQueryResult>('query', { query: expr });
  }

  /** Series matching a selector (any time in the last hour). */
  series(selector: string): Promise<Array<Record<string, string>>> {
    return this.#api('series', {
      'match[]': selector,
      start: String(Math.floor(Date.now() / 1000) - 3600),
    });
  }

  /** Scrape targets and their health. */
  async targets(): Promise<
    Array<{ labels: Record<string, string>; health: string; lastError: string }>
  > {
    const res = await fetch(`${this.url}/api/v1/targets?state=active`);
    const json = (await res.json()) as {
      data: {
        activeTargets: Array<{ labels: Record<string, string>; health: string; lastError: string }>;
      };
    };
    return json.data.activeTargets;
  }

  /** Alerting rules as Prometheus loaded them (`/api/v1/rules`). */
  async rules(): Promise<
    Array<{
      name: string;
      rules: Array<{ name: string; type: string; health: string; lastError?: string }>;
    }>
  > {
    const res = await fetch(`${this.url}/api/v1/rules`);
    const json = (await res.json()) as {
      data: {
        groups: Array<{
          name: string;
          rules: Array<{ name: string; type: string; health: string; lastError?: string }>;
        }>;
      };
    };
    return json.data.groups;
  }

  /** Stops the server and removes its store. */
  async stop(): Promise<void> {
    if (this.running) {
      const exited = new Promise<void>((resolve) => this.#proc.once('exit', () => resolve()));
      this.#proc.kill('SIGTERM');
      const timer = setTimeout(() => this.#proc.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(timer);
    }
    await rm(this.dir, { recursive: true, force: true });
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }
}
