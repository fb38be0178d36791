/**
 * The process shell every `main.ts` runs in: start, then stop once on SIGTERM/SIGINT
 * within a deadline; a bad configuration exits 1 with the variable's name, not a stack.
 */
import { ConfigError, type Env } from '@switchboard/config';
import { createLogger, type Logger } from '@switchboard/logger';
import { isTransientStartupError } from '@switchboard/nats';
import type { LevelWithSilent } from 'pino';
import { StartupProbe } from './startup-probe.js';

export type Stoppable = {
  stop(): Promise<void>;
  /** Resolves when the service cannot go on (it is then stopped and the process exits 1). */
  fatal?: Promise<Error>;
};

export type ServiceOptions = {
  name: string;
  /** Builds and starts the service; what it returns is stopped on a signal. */
  start(): Promise<Stoppable>;
  /** Longest a graceful stop may take before the process exits anyway. */
  stopTimeoutMs?: number;
  log?: { info(obj: object, msg: string): void; error(obj: object, msg: string): void };
};

/** Runs a service until a signal; resolves never, exits the process itself. */
export async function runService(options: ServiceOptions): Promise<void> {
  const log = options.log ?? {
    info: (obj, msg) => console.log(`[${options.name}] ${msg}`, obj),
    error: (obj, msg) => console.error(`[${options.name}] ${msg}`, obj),
  };
  let service: Stoppable;
  try {
    service = await options.start();
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(`${options.name}: ${err.message}`);
    } else {
      console.error(`${options.name}: failed to start:`, err);
    }
    process.exit(1);
  }
  let stopping = false;
  let exitCode = 0;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'stopping');
    const deadline = setTimeout(() => {
      log.error({ timeoutMs: options.stopTimeoutMs ?? 15_000 }, 'graceful stop timed out');
      process.exit(1);
    }, options.stopTimeoutMs ?? 15_000);
    deadline.unref();
    service.stop().then(
      () => {
        log.info({}, 'stopped');
        process.exit(exitCode);
      },
      (err: unknown) => {
        log.error({ err }, 'stop failed');
        process.exit(1);
      },
    );
  };
  void service.fatal?.then((err) => {
    log.error({ err }, 'cannot go on');
    exitCode = 1;
    stop('fatal');
  });
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
}

/** What an app's `start` is given besides its config and logger. */
export type StartContext = {
  /** Call right before the app listens on its port: the start-up probe lets go of it. */
  beforeListen(): Promise<void>;
  /** Call with what the app waits for (a NATS connection): the probe says so. */
  waiting(what: string, err?: unknown): void;
};

/** Longest pause between two start attempts while NATS or JetStream is not ready. */
const MAX_START_PAUSE_MS = 5_000;

/**
 * What every `main.ts` is: a logger named after the app, the config read from the
 * environment (its log level applied), and the app started by `start` under
 * {@link runService}. Until the app listens, its port answers `/healthz` 200 and `/readyz`
 * 503 naming what it waits for ({@link StartupProbe}); a start that fails because NATS or
 * JetStream is not ready yet (a fresh cluster electing stream leaders) is retried with a
 * log line each time, any other failure exits 1.
 *
 * With `--check-config` the app only reads its configuration: it exits 0 after printing
 * `<name>: configuration ok`, or 1 naming the variable that is wrong (as `nginx -t` does).
 */
export async function runApp<
  C extends { logLevel: LevelWithSilent; port?: number; host?: string },
>(options: {
  name: string;
  loadConfig(env: Env): C;
  start(config: C, log: Logger, context: StartContext): Promise<Stoppable>;
}): Promise<void> {
  const log = createLogger({ name: options.name });
  await runService({
    name: options.name,
    log,
    async start() {
      const config = options.loadConfig(process.env);
      if (process.argv.includes('--check-config')) {
        console.log(`${options.name}: configuration ok`);
        process.exit(0);
      }
      log.level = config.logLevel;
      let probe: StartupProbe | undefined;
      const openProbe = async () => {
        if (!probe && config.port)
          probe = await StartupProbe.listen(config.port, config.host ?? '0.0.0.0', 'NATS');
      };
      const context: StartContext = {
        async beforeListen() {
          const p = probe;
          probe = undefined;
          await p?.close();
        },
        waiting: (what, err) => probe?.waiting(what, err),
      };
      await openProbe();
      for (let attempt = 1; ; attempt++) {
        try {
          const service = await options.start(config, log, context);
          await context.beforeListen();
          return service;
        } catch (err) {
          if (!isTransientStartupError(err)) {
            await context.beforeListen();
            throw err;
          }
          await openProbe();
          const pauseMs = Math.min(MAX_START_PAUSE_MS, 250 * 2 ** Math.min(attempt, 5));
          log.warn(
            { attempt, err: (err as Error).message, retryInMs: pauseMs },
            'waiting for NATS JetStream (streams and buckets not ready yet)',
          );
          probe?.waiting('NATS JetStream', err);
          await new Promise((r) => setTimeout(r, pauseMs));
        }
      }
    },
  });
}
