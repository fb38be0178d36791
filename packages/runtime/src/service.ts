/**
 * The process shell every `main.ts` runs in: start, then stop once on SIGTERM/SIGINT
 * within a deadline; a bad configuration exits 1 with the variable's name, not a stack.
 */
import { ConfigError, type Env } from '@switchboard/config/load';
import { createLogger, type Logger } from '@switchboard/logger/logger';
import type { LevelWithSilent } from 'pino';

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

/**
 * What every `main.ts` is: a logger named after the app, the config read from the
 * environment (its log level applied), and the app started by `start` under
 * {@link runService}.
 */
export async function runApp<C extends { logLevel: LevelWithSilent }>(options: {
  name: string;
  loadConfig(env: Env): C;
  start(config: C, log: Logger): Promise<Stoppable>;
}): Promise<void> {
  const log = createLogger({ name: options.name });
  await runService({
    name: options.name,
    log,
    async start() {
      const config = options.loadConfig(process.env);
      log.level = config.logLevel;
      return options.start(config, log);
    },
  });
}
