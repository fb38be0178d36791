/** One NATS connection per process: reconnects forever, logs its status, drains on stop. */
import { connect, type NatsConnection, PermissionViolationError } from '@nats-io/transport-node';
import { isAuthorizationError } from './errors.js';

export type { NatsConnection };

type StatusLog = {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
};

export type ConnectOptions = {
  servers: string[];
  user?: string;
  pass?: string;
  token?: string;
  /** Connection name shown by the server (`nats server report connections`). */
  name: string;
  log?: StatusLog;
  /** Keep retrying the first connect instead of failing at once (default true). */
  waitOnFirstConnect?: boolean;
  /** Told each time a first-connect attempt failed (what is waited for, and why). */
  onWaiting?: (what: string, err: unknown) => void;
};

/** Longest pause between two first-connect attempts. */
const MAX_FIRST_CONNECT_PAUSE_MS = 5_000;

/**
 * Opens a connection that reconnects without limit; status changes are logged. The first
 * connect is retried forever (unless `waitOnFirstConnect` is false), each failed attempt
 * logged with the servers tried and the error, with a growing pause (up to 5 s).
 */
export async function connectNats(options: ConnectOptions): Promise<NatsConnection> {
  const settings = {
    servers: options.servers,
    name: options.name,
    ...(options.user ? { user: options.user, pass: options.pass } : {}),
    ...(options.token ? { token: options.token } : {}),
    maxReconnectAttempts: -1,
    reconnectTimeWait: 500,
    reconnectJitter: 250,
    // A first attempt to an address that drops packets fails after this, not 20 s.
    timeout: 5_000,
    // Stack traces captured per request cost more than they help on a hot path.
    noAsyncTraces: true,
  };
  let nc: NatsConnection;
  for (let attempt = 1; ; attempt++) {
    try {
      nc = await connect(settings);
      break;
    } catch (err) {
      if (options.waitOnFirstConnect === false || isAuthorizationError(err)) throw err;
      const pauseMs = Math.min(MAX_FIRST_CONNECT_PAUSE_MS, 250 * 2 ** Math.min(attempt, 5));
      options.log?.warn(
        { servers: options.servers, attempt, err: (err as Error).message, retryInMs: pauseMs },
        'waiting for NATS',
      );
      options.onWaiting?.(`NATS at ${options.servers.join(',')}`, err);
      await new Promise((r) => setTimeout(r, pauseMs + Math.random() * 250));
    }
  }
  const log = options.log;
  if (log) {
    log.info({ server: nc.getServer() }, 'nats connected');
    void (async () => {
      for await (const s of nc.status()) {
        switch (s.type) {
          case 'error':
            // A permission the account does not grant: a deployment fault, never routine.
            if (s.error instanceof PermissionViolationError) {
              permissionViolations++;
              log.error(
                { err: s.error, subject: s.error.subject, operation: s.error.operation },
                'nats permission violation',
              );
            } else log.warn({ status: s }, 'nats error');
            break;
          case 'disconnect':
          case 'staleConnection':
          case 'slowConsumer':
            log.warn({ status: s }, `nats ${s.type}`);
            break;
          case 'reconnect':
            reconnects++;
            log.info({ server: nc.getServer() }, 'nats reconnected');
            break;
          default:
            break;
        }
      }
    })();
  }
  return nc;
}

let permissionViolations = 0;
let reconnects = 0;

/** Reconnections of this process's NATS connections since start (each also logged). */
export function natsReconnects(): number {
  return reconnects;
}

/**
 * Permission violations the server reported to this process's connections (each also
 * logged at error level); the apps expose it as `switchboard_nats_permission_violations_total`.
 */
export function natsPermissionViolations(): number {
  return permissionViolations;
}

/** Connectivity from status events, so that readiness checks need no round-trip. */
export class ConnectionHealth {
  #connected = true;
  readonly #nc: NatsConnection;

  constructor(nc: NatsConnection) {
    this.#nc = nc;
    void (async () => {
      for await (const s of nc.status()) {
        if (s.type === 'disconnect') this.#connected = false;
        if (s.type === 'reconnect') this.#connected = true;
      }
    })();
  }

  /** True while the connection is open and not between servers. */
  get connected(): boolean {
    return this.#connected && !this.#nc.isClosed() && !this.#nc.isDraining();
  }
}
