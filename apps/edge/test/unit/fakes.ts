/**
 * In-memory stand-ins for what the edge's roles talk to, for the unit tier: no
 * nats-server, no listening socket, no child process. Each records what it was given, so
 * a test asserts both a role's answer and what it did to reach it.
 */
import { EventEmitter } from 'node:events';
import type { Msg, NatsConnection } from '@nats-io/transport-node';
import { NoRespondersError, TimeoutError } from '@nats-io/transport-node';
import type { CloseReason, SocketData } from '@switchboard/protocol';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import type { HandshakeHub, HandshakePresence } from '../../src/handshake.js';
import { LocalSockets } from '../../src/local-sockets.js';
import { createEdgeMetrics, type EdgeMetrics } from '../../src/metrics.js';
import type { EdgeSocket } from '../../src/socket-hub.js';
import { ExpiredTokenError, InvalidTokenError, looksLikeJwt } from '../../src/token-verifier.js';

export const log = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });

/** The Engine.IO connection under a fake socket: what delivery and closing touch. */
export class FakeConn extends EventEmitter {
  readyState = 'open';
  /** Socket.IO packets written straight to the transport (plain deliveries). */
  readonly written: string[] = [];
  writeBuffer: unknown[] = [];
  terminated = false;
  readonly transport = {
    socket: {
      /** What the kernel has not taken yet; a test raises it to make a slow consumer. */
      bufferedAmount: 0,
      terminate: () => {
        this.terminated = true;
      },
    },
  };
  write(packet: string): void {
    this.written.push(packet);
  }
  close(): void {
    this.readyState = 'closed';
    this.emit('close');
  }
}

let sockets = 0;

/**
 * A Socket.IO server-side socket: `emit` records what the edge sent the client,
 * `receive` plays what the client sends (and `disconnect` what Socket.IO emits).
 */
export class FakeSocket extends EventEmitter {
  readonly id = `s${++sockets}`;
  readonly conn = new FakeConn();
  readonly data = {} as SocketData;
  connected = true;
  /** `disconnect(close)` calls, in order. */
  readonly disconnects: boolean[] = [];
  /** Events the edge emitted to the client: `[event, ...args]`. */
  readonly sent: unknown[][] = [];
  /** Ack callbacks of emits made with a timeout (acked deliveries), in order. */
  readonly acks: Array<(err: unknown) => void> = [];
  readonly handshake: {
    auth: Record<string, unknown>;
    headers: Record<string, string | string[] | undefined>;
    address: string;
  };

  constructor(
    token?: unknown,
    options: { address?: string; headers?: Record<string, string | string[]> } = {},
  ) {
    super();
    this.handshake = {
      auth: token === undefined ? {} : { token },
      headers: options.headers ?? {},
      address: options.address ?? '10.0.0.1',
    };
  }

  get edge(): EdgeSocket {
    return this as unknown as EdgeSocket;
  }

  override emit(event: string | symbol, ...args: unknown[]): boolean {
    this.sent.push([event, ...args]);
    return true;
  }

  /** The client sends `event` (or Socket.IO reports it, as `disconnect`). */
  receive(event: string, ...args: unknown[]): void {
    super.emit(event, ...args);
  }

  disconnect(close: boolean): void {
    this.disconnects.push(close);
    this.connected = false;
    this.receive('disconnect', 'server namespace disconnect');
  }

  timeout(_ms: number) {
    return {
      emit: (event: string, ...args: unknown[]) => {
        const ack = args.pop() as (err: unknown) => void;
        this.sent.push([event, ...args]);
        this.acks.push(ack);
        return true;
      },
    };
  }

  /** Events sent to the client named `event`: their payloads. */
  sentOf(event: string): unknown[] {
    return this.sent.filter((e) => e[0] === event).map((e) => e[1]);
  }
}

/** The hub as the handshake sees it: a real index; closes are recorded, not performed. */
export class FakeHub implements HandshakeHub {
  readonly index = new LocalSockets<EdgeSocket>();
  readonly closed: Array<[EdgeSocket, CloseReason]> = [];
  get connections(): number {
    return this.index.connections;
  }
  add(userId: string, socket: EdgeSocket): number {
    return this.index.add(userId, socket);
  }
  remove(userId: string, socket: EdgeSocket): number {
    return this.index.remove(userId, socket);
  }
  close(socket: EdgeSocket, reason: CloseReason): void {
    this.closed.push([socket, reason]);
  }
}

/**
 * The presence writer as the handshake sees it. Writes are `stored` at once by default;
 * `held` keeps every `whenWritten` waiting until {@link settle}; `failing` answers false
 * (JetStream unreachable). `elsewhere` is each user's connections on other nodes.
 */
export class FakePresence implements HandshakePresence {
  writes: 'stored' | 'held' | 'failing' = 'stored';
  /** `maxConnectionsPerUser` (0: no cap). */
  cap = 0;
  readonly elsewhere = new Map<string, number>();
  /** Every `set`, in order. */
  readonly sets: Array<[string, number]> = [];
  readonly #local = new Map<string, number>();
  #waiting: Array<(written: boolean) => void> = [];

  set(userId: string, connections: number): void {
    this.sets.push([userId, connections]);
    this.#local.set(userId, connections);
  }
  whenWritten(_userId: string, _timeoutMs: number): Promise<boolean> {
    if (this.writes === 'stored') return Promise.resolve(true);
    if (this.writes === 'failing') return Promise.resolve(false);
    return new Promise((resolve) => this.#waiting.push(resolve));
  }
  overUserCap(userId: string): boolean {
    const total = (this.#local.get(userId) ?? 0) + (this.elsewhere.get(userId) ?? 0);
    return this.cap > 0 && total > this.cap;
  }
  get waiting(): number {
    return this.#waiting.length;
  }
  /** Answers every held `whenWritten`. */
  settle(written = true): void {
    for (const resolve of this.#waiting.splice(0)) resolve(written);
  }
}

/**
 * A token verifier over fake JWT-shaped tokens `jwt.<userId>.sig`: user `expired` is an
 * expired token, `forged` a bad signature, `crash` a verifier failure (JWKS down);
 * anyone else is valid until `expiresAt(userId)` (an hour from now by default).
 */
export class FakeVerifier {
  readonly expiries = new Map<string, number>();
  calls = 0;
  /** Set to hold verifications until the returned resolver is called. */
  gate: Promise<void> | undefined;
  async verify(token: unknown): Promise<{ userId: string; expiresAt: number }> {
    this.calls++;
    await this.gate;
    if (!looksLikeJwt(token)) throw new InvalidTokenError('not a compact JWT');
    const userId = token.split('.')[1]!;
    if (userId === 'expired') throw new ExpiredTokenError();
    if (userId === 'forged') throw new InvalidTokenError('token rejected');
    if (userId === 'crash') throw new Error('JWKS endpoint unreachable');
    return { userId, expiresAt: this.expiries.get(userId) ?? Date.now() + 3_600_000 };
  }
  /** Holds verifications until the returned function is called. */
  hold(): () => void {
    let release!: () => void;
    this.gate = new Promise((r) => {
      release = r;
    });
    return () => {
      this.gate = undefined;
      release();
    };
  }
}

export const token = (userId: string) => `jwt.${userId}.sig`;

/** The edge's metrics on their own registry, with a reader of one series' value. */
export function metricsRig(sources: { connections?: () => number; users?: () => number } = {}) {
  const registry = new Registry();
  const metrics: EdgeMetrics = createEdgeMetrics(registry, {
    connections: sources.connections ?? (() => 0),
    users: sources.users ?? (() => 0),
    natsConnected: () => true,
  });
  const value = async (name: string, labels: Record<string, string> = {}) => {
    const metric = await registry.getSingleMetric(name)?.get();
    const found = metric?.values.find((v) =>
      Object.entries(labels).every(([k, want]) => v.labels[k] === want),
    );
    return found?.value;
  };
  return { registry, metrics, value };
}

type Callback = (err: Error | null, msg: Msg) => void;

/**
 * The NATS connection as the node bus uses it: subscriptions by subject, a request that
 * finds the node subject answered (`live`), unanswered (`silent`) or free (`free`), and
 * {@link send} playing a publisher's request to a subscribed subject.
 */
export class FakeNats {
  probe: 'free' | 'live' | 'silent' = 'free';
  readonly subscriptions = new Map<string, Callback>();
  readonly requested: string[] = [];

  get nc(): NatsConnection {
    return this as unknown as NatsConnection;
  }

  subscribe(subject: string, options: { callback: Callback }) {
    this.subscriptions.set(subject, options.callback);
    return { unsubscribe: () => this.subscriptions.delete(subject) };
  }

  async request(subject: string): Promise<{ json(): unknown }> {
    this.requested.push(subject);
    if (this.probe === 'free') throw new NoRespondersError(subject);
    if (this.probe === 'silent') throw new TimeoutError();
    return { json: () => ({ nodeId: 'x', epoch: 'the-other-epoch' }) };
  }

  async flush(): Promise<void> {}

  /** Delivers `data` on `subject`; resolves with the reply as text. */
  send(subject: string, data: Uint8Array | string): Promise<string> {
    const callback = this.subscriptions.get(subject);
    if (!callback) return Promise.reject(new Error(`no subscription on ${subject}`));
    const bytes = typeof data === 'string' ? new TextEncoder().encode(data) : data;
    return new Promise((resolve) => {
      const msg = {
        subject,
        data: bytes,
        json: () => JSON.parse(new TextDecoder().decode(bytes)),
        respond: (reply: string) => {
          resolve(reply);
          return true;
        },
      };
      callback(null, msg as unknown as Msg);
    });
  }
}
