/**
 * In-memory implementations of the push API's ports (`src/ports.ts`) for the unit tier: no
 * nats-server, no socket, no child process. Each one records what it was given, so a test
 * asserts both the answer and what the router or a route did to reach it, and each can be
 * told to fail the ways the real one fails.
 */
import { NoRespondersError, TimeoutError } from '@nats-io/transport-node';
import { TooManyDevicesError } from '@switchboard/device-registry';
import { FallbackDeadlineError } from '@switchboard/fallback-queue';
import {
  type Delivery,
  type Device,
  type DeviceRegistration,
  decodeDeliveries,
  encodeBatchReply,
  encodeNodeReply,
  type FallbackMessage,
  type NodePresence,
  type PresenceView,
  type RecipientResult,
  type SendMessageResponse,
  type SendRecord,
  type StatusRecord,
  Subjects,
} from '@switchboard/protocol';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { type BuildAppOptions, buildApp } from '../../src/app.js';
import { type Claim, IdempotencyUnavailableError } from '../../src/idempotency-store.js';
import type {
  BroadcastLink,
  DeviceStore,
  FallbackHandOff,
  IdempotencyClaims,
  MessageRouter,
  NatsLink,
  NodeRequests,
  OutgoingMessage,
  PresenceCache,
  PresenceLookup,
  StatusSink,
} from '../../src/ports.js';

export const log = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });

const encoder = new TextEncoder();
const EPOCH = 'epoch-1';

/** Node entries as KV and the mirror hold them: one connection on each node. */
function entries(nodeIds: readonly string[]): Record<string, NodePresence> {
  const out: Record<string, NodePresence> = {};
  for (const nodeId of nodeIds) out[nodeId] = { epoch: EPOCH, connections: 1, since: 0 };
  return out;
}

/**
 * Presence as KV holds it: a map userId → node ids. Nodes in `dead` have lapsed leases:
 * listed in entries, never alive.
 */
export class FakePresence implements PresenceLookup {
  readonly #users = new Map<string, string[]>();
  readonly dead = new Set<string>();
  /** The users of every `lookupMany`, in call order. */
  readonly lookups: string[][] = [];
  /** When set, `lookupMany` rejects with it (KV unreachable). */
  failure: Error | undefined;

  /** The user is connected to these nodes (replacing what was there). */
  connect(userId: string, ...nodeIds: string[]): this {
    this.#users.set(userId, nodeIds);
    return this;
  }

  lookupMany(userIds: readonly string[]): Promise<PresenceView[]> {
    this.lookups.push([...userIds]);
    if (this.failure) return Promise.reject(this.failure);
    return Promise.resolve(
      userIds.map((userId) => {
        const nodes = this.aliveNodeIds(entries(this.#users.get(userId) ?? [])).map((nodeId) => ({
          nodeId,
          connections: 1,
          since: 0,
        }));
        return { userId, online: nodes.length > 0, connections: nodes.length, nodes };
      }),
    );
  }

  aliveNodeIds(nodes: Record<string, NodePresence>): string[] {
    return Object.keys(nodes).filter((nodeId) => !this.dead.has(nodeId));
  }
}

/** The in-memory mirror: answers while `caughtUp`, and only for users it holds. */
export class FakeMirror implements PresenceCache {
  readonly #users = new Map<string, Record<string, NodePresence>>();
  caughtUp = true;

  /** The mirror believes the user is on these nodes (it may be stale: that is the point). */
  connect(userId: string, ...nodeIds: string[]): this {
    this.#users.set(userId, entries(nodeIds));
    return this;
  }

  nodes(userId: string): Record<string, NodePresence> | undefined {
    return this.caughtUp ? this.#users.get(userId) : undefined;
  }
}

/** How a scripted node answers one request. */
export type NodeAnswer =
  /**
   * A live node: the connections each user has there (absent: 0) and, when an ack was
   * asked, how many of them acked (absent: all of them).
   */
  | { connections: Record<string, number>; acks?: Record<string, number> }
  /** Nobody serves the node's subject: rejected at once, as NATS does for a dead node. */
  | 'no-responders'
  /** No reply: rejected with a timeout once the request's `timeoutMs` passed. */
  | 'timeout'
  /** A reply that does not decode (wrong counts). */
  | 'bad-reply';

/** A request as a node received it. */
export type SeenRequest = {
  nodeId: string;
  timeoutMs: number;
  /** One for a single request, several for a batch. */
  deliveries: Delivery[];
  batch: boolean;
  /** The request's size on the wire. */
  bytes: number;
};

/**
 * The edge nodes behind `push.v1.node.<id>`, each answering as scripted, per request when
 * the script is a function (so one chunk of a split multicast can fail and the other
 * not). Requests are decoded with the protocol's own decoder and answered with its
 * encoders, as an edge does. A node never scripted has no responders.
 */
export class FakeNodes implements NodeRequests {
  readonly requests: SeenRequest[] = [];
  readonly #nodes = new Map<string, NodeAnswer | ((req: SeenRequest) => NodeAnswer)>();
  #pending = 0;

  node(nodeId: string, answer: NodeAnswer | ((req: SeenRequest) => NodeAnswer)): this {
    this.#nodes.set(nodeId, answer);
    return this;
  }

  /** Requests not answered yet (a `timeout` node's, until their timeout). */
  get pending(): number {
    return this.#pending;
  }

  /** The requests node `nodeId` received. */
  to(nodeId: string): SeenRequest[] {
    return this.requests.filter((r) => r.nodeId === nodeId);
  }

  request(subject: string, payload: Uint8Array, timeoutMs: number): Promise<{ data: Uint8Array }> {
    const nodeId = subject.slice(Subjects.nodePrefix.length + 1);
    const { deliveries, batch } = decodeDeliveries(payload);
    const seen: SeenRequest = { nodeId, timeoutMs, deliveries, batch, bytes: payload.length };
    this.requests.push(seen);
    const script = this.#nodes.get(nodeId) ?? 'no-responders';
    const answer = typeof script === 'function' ? script(seen) : script;
    if (answer === 'no-responders') return Promise.reject(new NoRespondersError(subject));
    if (answer === 'timeout') {
      this.#pending++;
      return new Promise((_, reject) => {
        setTimeout(() => {
          this.#pending--;
          reject(new TimeoutError());
        }, timeoutMs).unref();
      });
    }
    if (answer === 'bad-reply') return Promise.resolve({ data: encoder.encode('{"v":1,"b":[]}') });
    const counts = (d: Delivery) => d.userIds.map((u) => answer.connections[u] ?? 0);
    if (batch) {
      const reply = encodeBatchReply(nodeId, EPOCH, deliveries.map(counts));
      return Promise.resolve({ data: encoder.encode(reply) });
    }
    const d = deliveries[0]!;
    const connections = counts(d);
    const acked =
      d.ackTimeoutMs === undefined
        ? undefined
        : d.userIds.map((u, i) => Math.min(answer.acks?.[u] ?? connections[i]!, connections[i]!));
    const reply = encodeNodeReply({
      nodeId,
      epoch: EPOCH,
      connections,
      ...(acked ? { acked } : {}),
    });
    return Promise.resolve({ data: encoder.encode(reply) });
  }
}

/**
 * The OS push hand-off: `store` keeps what it is given, `fail` rejects at once (JetStream
 * never acked), `hang` gets no ack and rejects at the send's deadline, as FallbackQueue
 * does. Users in `failing` fail whatever the mode.
 */
export class FakeFallback implements FallbackHandOff {
  mode: 'store' | 'fail' | 'hang' = 'store';
  readonly failing = new Set<string>();
  /** Every hand-off tried, with its deadline. */
  readonly attempts: Array<{ message: FallbackMessage; deadline: number }> = [];
  /** Hand-offs stored. */
  readonly stored: FallbackMessage[] = [];

  enqueue(message: FallbackMessage, deadline = Number.POSITIVE_INFINITY): Promise<void> {
    this.attempts.push({ message, deadline });
    if (this.mode === 'fail' || this.failing.has(message.userId))
      return Promise.reject(new Error('fake: JetStream did not ack'));
    if (this.mode === 'hang') {
      // Rejects once the clock has reached the deadline: a timer may fire a millisecond
      // early by Date.now(), and the router would then try the next hand-off in time.
      return new Promise((_, reject) => {
        const wait = () => {
          const left = deadline - Date.now();
          if (left <= 0) reject(new FallbackDeadlineError());
          else setTimeout(wait, left).unref();
        };
        wait();
      });
    }
    this.stored.push(message);
    return Promise.resolve();
  }
}

/** The batched status sink: keeps every record it is given. */
export class FakeStatusSink implements StatusSink {
  readonly records: SendRecord[] = [];

  add(record: SendRecord): void {
    this.records.push(record);
  }
}

/**
 * The NATS connection as the router and the broadcast route see it: a max_payload and a
 * publish (recorded), and a flush. Either can be made to fail.
 */
export class FakeNats implements NatsLink, BroadcastLink {
  info: { max_payload: number } | undefined = { max_payload: 1024 * 1024 };
  readonly published: Array<{ subject: string; payload: string }> = [];
  publishFailure: Error | undefined;
  flushFailure: Error | undefined;
  flushes = 0;

  publish(subject: string, payload: string): void {
    if (this.publishFailure) throw this.publishFailure;
    this.published.push({ subject, payload });
  }

  flush(): Promise<void> {
    this.flushes++;
    return this.flushFailure ? Promise.reject(this.flushFailure) : Promise.resolve();
  }
}

type Stored<R> =
  | { fingerprint: string; state: 'pending' }
  | {
      fingerprint: string;
      state: 'done';
      response: R;
    };

/**
 * Idempotency keys in memory, with the store's semantics: the first claim wins, a
 * duplicate waits (up to `waitTimeoutMs`) for the first one's answer and replays it, a key
 * reused for another request is a mismatch, a wait that runs out is `in-progress`.
 */
export class FakeIdempotency<R> implements IdempotencyClaims<R> {
  readonly #keys = new Map<string, Stored<R>>();
  readonly #waiting = new Map<string, Array<() => void>>();
  readonly claims: Array<{ key: string; fingerprint: string; waitTimeoutMs: number }> = [];
  readonly commits: Array<{ key: string; response: R }> = [];
  readonly releases: string[] = [];
  /** When set, `claim` rejects as the store does when its bucket fails (with this cause). */
  failure: Error | undefined;
  /** When set, `commit` rejects with it. */
  commitFailure: Error | undefined;

  /** A key's state: none, pending (claimed, no answer yet) or done. */
  state(key: string): 'pending' | 'done' | undefined {
    return this.#keys.get(key)?.state;
  }

  async claim(key: string, fingerprint: string, waitTimeoutMs: number): Promise<Claim<R>> {
    this.claims.push({ key, fingerprint, waitTimeoutMs });
    if (this.failure) throw new IdempotencyUnavailableError(this.failure);
    const deadline = Date.now() + waitTimeoutMs;
    for (;;) {
      const stored = this.#keys.get(key);
      if (!stored) {
        this.#keys.set(key, { fingerprint, state: 'pending' });
        return this.#claimed(key, fingerprint);
      }
      if (stored.fingerprint !== fingerprint) return { kind: 'mismatch' };
      if (stored.state === 'done') return { kind: 'replay', response: stored.response };
      const left = deadline - Date.now();
      if (left <= 0) return { kind: 'in-progress' };
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        const list = this.#waiting.get(key) ?? [];
        list.push(() => {
          clearTimeout(timer);
          resolve();
        });
        this.#waiting.set(key, list);
      });
    }
  }

  #claimed(key: string, fingerprint: string): Claim<R> {
    return {
      kind: 'claimed',
      commit: async (response) => {
        if (this.commitFailure) throw this.commitFailure;
        this.commits.push({ key, response });
        this.#keys.set(key, { fingerprint, state: 'done', response });
        this.#wake(key);
      },
      release: async () => {
        this.releases.push(key);
        this.#keys.delete(key);
        this.#wake(key);
      },
    };
  }

  #wake(key: string): void {
    for (const wake of this.#waiting.get(key) ?? []) wake();
    this.#waiting.delete(key);
  }
}

/**
 * The router as the routes see it: records every message and answers each recipient with
 * `answer` (default: delivered to one connection); rejects with `failure` when set.
 */
export class FakeRouter implements MessageRouter {
  readonly sent: OutgoingMessage[] = [];
  failure: Error | undefined;
  answer: (userId: string) => RecipientResult = (userId) => ({
    userId,
    status: 'delivered',
    connections: 1,
  });

  #held: Promise<void> | undefined;

  /** Holds every send (a request still running) until the returned function is called. */
  hold(): () => void {
    let release = () => {};
    this.#held = new Promise<void>((resolve) => {
      release = resolve;
    });
    return () => {
      this.#held = undefined;
      release();
    };
  }

  send(message: OutgoingMessage): Promise<RecipientResult[]> {
    this.sent.push(message);
    if (this.failure) return Promise.reject(this.failure);
    const results = [...new Set(message.to)].map((u) => this.answer(u));
    return this.#held ? this.#held.then(() => results) : Promise.resolve(results);
  }
}

/** Devices in memory; at most `maxPerUser` per user (TooManyDevicesError past it). */
export class FakeDevices implements DeviceStore {
  readonly #users = new Map<string, Map<string, Device>>();
  maxPerUser = 100;
  /** When set, every call rejects with it (registry unreachable). */
  failure: Error | undefined;

  async put(userId: string, deviceId: string, registration: DeviceRegistration): Promise<Device> {
    if (this.failure) throw this.failure;
    const devices = this.#users.get(userId) ?? new Map<string, Device>();
    if (!devices.has(deviceId) && devices.size >= this.maxPerUser) throw new TooManyDevicesError();
    const device: Device = { deviceId, ...registration, updatedAt: 1_700_000_000_000 };
    devices.set(deviceId, device);
    this.#users.set(userId, devices);
    return device;
  }

  async remove(userId: string, deviceId: string): Promise<boolean> {
    if (this.failure) throw this.failure;
    return this.#users.get(userId)?.delete(deviceId) ?? false;
  }

  async list(userId: string): Promise<Device[]> {
    if (this.failure) throw this.failure;
    return [...(this.#users.get(userId)?.values() ?? [])];
  }
}

/** Stored status records by message id; `read` is what the status route is given. */
export class FakeStatusRecords {
  readonly records = new Map<string, StatusRecord[]>();
  /** When set, `read` rejects with it (stream unreachable). */
  failure: Error | undefined;

  readonly read = async (messageId: string): Promise<StatusRecord[]> => {
    if (this.failure) throw this.failure;
    return this.records.get(messageId) ?? [];
  };
}

export const API_KEY = 'unit-api-key-0123456789';
export const SECOND_API_KEY = 'unit-second-api-key-abcdef';

/** The fakes behind one app, to script and to inspect. */
export type AppFakes = {
  nats: FakeNats;
  router: FakeRouter;
  idempotency: FakeIdempotency<SendMessageResponse>;
  devices: FakeDevices;
  status: FakeStatusRecords;
  /** What the readiness check answers for NATS. */
  ready: { nats: boolean };
};

/**
 * The push API's real app (`buildApp`) over fakes, for `inject()`. `router` replaces the
 * FakeRouter (e.g. a real DeliveryRouter over fake transports).
 */
export async function fakeApp(
  options: Partial<
    Pick<BuildAppOptions, 'bodyLimitBytes' | 'rateLimitPerMinute' | 'webhooks' | 'duplicateWaitMs'>
  > & { router?: MessageRouter; nats?: FakeNats; logger?: BuildAppOptions['logger'] } = {},
) {
  const fakes: AppFakes = {
    nats: options.nats ?? new FakeNats(),
    router: new FakeRouter(),
    idempotency: new FakeIdempotency(),
    devices: new FakeDevices(),
    status: new FakeStatusRecords(),
    ready: { nats: true },
  };
  const app = await buildApp({
    apiKeys: [API_KEY, SECOND_API_KEY],
    bodyLimitBytes: options.bodyLimitBytes ?? 1024 * 1024,
    rateLimitPerMinute: options.rateLimitPerMinute ?? 1_000_000,
    nc: fakes.nats,
    router: options.router ?? fakes.router,
    idempotency: fakes.idempotency,
    readStatus: fakes.status.read,
    devices: fakes.devices,
    ...(options.webhooks ? { webhooks: options.webhooks } : {}),
    duplicateWaitMs: options.duplicateWaitMs ?? 1_000,
    logger: options.logger ?? log,
    registry: new Registry(),
    readiness: { nats: () => fakes.ready.nats },
  });
  return { app, ...fakes };
}
