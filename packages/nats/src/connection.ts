/** One NATS connection per process: reconnects forever, logs its status, drains on stop. */
import { connect, type NatsConnection } from '@nats-io/transport-node';

export type { NatsConnection };

type StatusLog = {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
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
};

/** Opens a connection that reconnects without limit; status changes are logged. */
export async function connectNats(options: ConnectOptions): Promise<NatsConnection> {
  const nc = await connect({
    servers: options.servers,
    name: options.name,
    ...(options.user ? { user: options.user, pass: options.pass } : {}),
    ...(options.token ? { token: options.token } : {}),
    maxReconnectAttempts: -1,
    reconnectTimeWait: 500,
    reconnectJitter: 250,
    waitOnFirstConnect: options.waitOnFirstConnect ?? true,
    // Stack traces captured per request cost more than they help on a hot path.
    noAsyncTraces: true,
  });
  const log = options.log;
  if (log) {
    log.info({ server: nc.getServer() }, 'nats connected');
    void (async () => {
      for await (const s of nc.status()) {
        switch (s.type) {
          case 'disconnect':
          case 'staleConnection':
          case 'slowConsumer':
          case 'error':
            log.warn({ status: s }, `nats ${s.type}`);
            break;
          case 'reconnect':
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
