/**
 * Real nats-server processes for tests and the local stack: one server, or a JetStream
 * cluster, on free ports with temporary stores, never the shared 4222.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { freePort } from './ports.js';
import { waitFor } from './wait-for.js';

export class NatsServerNotFoundError extends Error {
  constructor() {
    super(
      'nats-server not found on PATH, in /usr/sbin or /usr/local/bin (set NATS_SERVER_BIN). ' +
        'Install it: `apt-get install -y nats-server` (Debian/Ubuntu) or see https://docs.nats.io',
    );
    this.name = 'NatsServerNotFoundError';
  }
}

const DEFAULT_DIRS = ['/usr/sbin', '/usr/local/sbin', '/usr/local/bin'];

/** Path of the nats-server binary: NATS_SERVER_BIN, then PATH, /usr/sbin, /usr/local/bin. */
export function findNatsServer(
  options: { env?: Record<string, string | undefined>; extraDirs?: string[] } = {},
): string {
  const env = options.env ?? process.env;
  const fromEnv = env.NATS_SERVER_BIN;
  if (fromEnv && existsSync(fromEnv)) return fromEnv;
  const dirs = [...(env.PATH ?? '').split(delimiter), ...(options.extraDirs ?? DEFAULT_DIRS)];
  for (const dir of dirs) {
    const p = join(dir, 'nats-server');
    if (dir && existsSync(p)) return p;
  }
  throw new NatsServerNotFoundError();
}

const live = new Set<ChildProcess>();
process.once('exit', () => {
  for (const p of live) p.kill('SIGKILL');
});

export type NatsServerOptions = {
  /** Enable JetStream with a temporary store (default true). */
  jetstream?: boolean;
  /** Extra configuration lines (cluster blocks, accounts...). */
  config?: string;
  /** Fixed client port; default a free one. */
  port?: number;
  serverName?: string;
  /** Store directory; default a fresh temporary one, removed on stop. */
  storeDir?: string;
};

export class NatsServer {
  readonly port: number;
  readonly monitorPort: number;
  readonly storeDir: string;
  readonly #configPath: string;
  readonly #ownsStore: boolean;
  #proc: ChildProcess | undefined;
  #stderr = '';

  private constructor(
    port: number,
    monitorPort: number,
    storeDir: string,
    configPath: string,
    ownsStore: boolean,
  ) {
    this.port = port;
    this.monitorPort = monitorPort;
    this.storeDir = storeDir;
    this.#configPath = configPath;
    this.#ownsStore = ownsStore;
  }

  /** Every permission violation line the server logged ("Publish Violation", "Subscription Violation") (the first 1,000). */
  get permissionViolations(): readonly string[] {
    return this.#violations;
  }

  get url(): string {
    return `nats://127.0.0.1:${this.port}`;
  }

  get running(): boolean {
    return (
      this.#proc !== undefined && this.#proc.exitCode === null && this.#proc.signalCode === null
    );
  }

  get pid(): number | undefined {
    return this.#proc?.pid;
  }

  /** Starts a server and resolves when it answers /healthz (JetStream ready). */
  static async start(options: NatsServerOptions = {}): Promise<NatsServer> {
    const server = await NatsServer.prepare(options);
    await server.#spawn();
    await server.waitHealthy();
    return server;
  }

  /** Writes the configuration without starting; `NatsCluster` starts all nodes together. */
  static async prepare(options: NatsServerOptions = {}): Promise<NatsServer> {
    const ownsStore = options.storeDir === undefined;
    const storeDir = options.storeDir ?? (await mkdtemp(join(tmpdir(), 'sb-nats-')));
    const port = options.port ?? (await freePort());
    const monitorPort = await freePort();
    const lines = [
      `listen: 127.0.0.1:${port}`,
      `http: 127.0.0.1:${monitorPort}`,
      options.serverName ? `server_name: ${options.serverName}` : '',
      options.jetstream === false
        ? ''
        : `jetstream { store_dir: ${JSON.stringify(join(storeDir, 'js'))} }`,
      options.config ?? '',
    ];
    const configPath = join(storeDir, 'nats-server.conf');
    await writeFile(configPath, `${lines.filter(Boolean).join('\n')}\n`);
    return new NatsServer(port, monitorPort, storeDir, configPath, ownsStore);
  }

  readonly #violations: string[] = [];

  async #spawn(): Promise<void> {
    const bin = findNatsServer();
    this.#stderr = '';
    const proc = spawn(bin, ['-c', this.#configPath], { stdio: ['ignore', 'ignore', 'pipe'] });
    proc.stderr?.on('data', (d: Buffer) => {
      const text = d.toString();
      this.#stderr = (this.#stderr + text).slice(-8192);
      if (/Violation/.test(text)) {
        for (const line of text.split('\n'))
          if (/Violation/.test(line) && this.#violations.length < 1_000)
            this.#violations.push(line.trim());
      }
    });
    live.add(proc);
    proc.once('exit', () => live.delete(proc));
    this.#proc = proc;
  }

  /** Starts the prepared (or stopped) server again on the same ports and store. */
  async restart(): Promise<void> {
    if (this.running) await this.stop({ keepStore: true });
    await this.#spawn();
    await this.waitHealthy();
  }

  /** Resolves when /healthz says ok (with JetStream, when it is ready). */
  async waitHealthy(timeoutMs = 20_000): Promise<void> {
    await waitFor(
      async () => {
        if (!this.running)
          throw new Error(`nats-server exited: ${this.#stderr.trim().slice(-2000)}`);
        const res = await fetch(`http://127.0.0.1:${this.monitorPort}/healthz`).catch(() => null);
        return res?.ok === true;
      },
      {
        timeoutMs,
        intervalMs: 50,
        message: () => `nats-server on ${this.port} not healthy: ${this.#stderr.slice(-2000)}`,
      },
    );
  }

  /** SIGKILL: no goodbye to clients or peers, like a crash. */
  async kill(): Promise<void> {
    await this.#signal('SIGKILL');
  }

  /** Graceful stop; removes its temporary store unless `keepStore`. */
  async stop(options: { keepStore?: boolean } = {}): Promise<void> {
    await this.#signal('SIGTERM');
    if (this.#ownsStore && !options.keepStore)
      await rm(this.storeDir, { recursive: true, force: true });
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }

  async #signal(signal: NodeJS.Signals): Promise<void> {
    const proc = this.#proc;
    if (!proc || !this.running) return;
    const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
    proc.kill(signal);
    await exited;
  }
}

export type NatsClusterOptions = { size?: number; name?: string };

/** A JetStream cluster of `size` (default 3) servers routed to each other. */
export class NatsCluster {
  readonly servers: NatsServer[];

  private constructor(servers: NatsServer[]) {
    this.servers = servers;
  }

  /** Client URLs of every node, for a comma-separated `NATS_URL`. */
  get urls(): string[] {
    return this.servers.map((s) => s.url);
  }

  static async start(options: NatsClusterOptions = {}): Promise<NatsCluster> {
    const size = options.size ?? 3;
    const name = options.name ?? 'sb-test';
    const clusterPorts = await Promise.all(Array.from({ length: size }, () => freePort()));
    const routes = clusterPorts.map((p) => `nats-route://127.0.0.1:${p}`).join(', ');
    const servers = await Promise.all(
      clusterPorts.map((cport, i) =>
        NatsServer.prepare({
          serverName: `${name}-${i + 1}`,
          config: `cluster { name: ${name}, listen: 127.0.0.1:${cport}, routes: [${routes}] }`,
        }),
      ),
    );
    const cluster = new NatsCluster(servers);
    await Promise.all(servers.map((s) => s.restart()));
    return cluster;
  }

  async stop(): Promise<void> {
    await Promise.all(this.servers.map((s) => s.stop()));
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }
}
