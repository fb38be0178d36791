/**
 * The product as real processes, for tests that cross apps: a nats-server (or a 3-node
 * JetStream cluster), edge nodes, the push API and, when asked, presence and OS push, each
 * `node apps/<app>/dist/main.js` on a port of its own. What a test needs to know of an app
 * is read from outside, as an operator would: whether a user's presence is written from the
 * `presence-users` bucket, a node's lease from `presence-nodes`, an edge's connections from
 * its /metrics; a crash is `kill -9`. No app is imported: an app's own tests may start that
 * app in their process instead (`startApi`).
 */
import { type KV, Kvm } from '@nats-io/kv';
import {
  connect,
  type NatsConnection,
  NoRespondersError,
  RequestError,
  TimeoutError,
} from '@nats-io/transport-node';
import {
  Buckets,
  encodeUserKey,
  type NodeLease,
  nodeSubject,
  type UserEntry,
} from '@switchboard/protocol';
import { type AppProcess, RunningApp } from './app-process.js';
import { http, type TestResponse } from './http.js';
import { NatsCluster, NatsServer } from './nats-server.js';
import { type ClientSocket, connectClient } from './socket-client.js';
import { mintToken } from './tokens.js';
import { waitFor } from './wait-for.js';

/** The edges' HS256 secret in a {@link Stack}. */
export const STACK_SECRET = 'test-secret-test-secret-test-secret-0123';
/** The push API's (and presence's) API key in a {@link Stack}. */
export const STACK_API_KEY = 'test-api-key-0123456789';
/** A second push API key (rotation). */
export const STACK_SECOND_API_KEY = 'second-api-key-for-rotation';

/**
 * Reads of the presence buckets through one NATS connection: the ground truth of which
 * node holds whom, as every reader of presence sees it.
 */
export class PresenceBuckets {
  readonly #nc: NatsConnection;
  #users: Promise<KV> | undefined;
  #nodes: Promise<KV> | undefined;

  constructor(nc: NatsConnection) {
    this.#nc = nc;
  }

  /** The stored `presence-users` entry of `userId` (null when there is none). */
  async user(userId: string): Promise<UserEntry | null> {
    this.#users ??= new Kvm(this.#nc).open(Buckets.users);
    const e = await (await this.#users).get(encodeUserKey(userId));
    return e?.operation === 'PUT' ? e.json<UserEntry>() : null;
  }

  /** The stored `presence-nodes` lease of `nodeId` (null when there is none). */
  async lease(nodeId: string): Promise<NodeLease | null> {
    this.#nodes ??= new Kvm(this.#nc).open(Buckets.nodes);
    const e = await (await this.#nodes).get(nodeId);
    return e?.operation === 'PUT' ? e.json<NodeLease>() : null;
  }

  /** Connections of `userId` on `nodeId` as stored (0 when the entry does not name the node). */
  async connections(userId: string, nodeId: string): Promise<number> {
    return (await this.user(userId))?.nodes[nodeId]?.connections ?? 0;
  }

  /**
   * Resolves once the stored entry of `userId` counts `connections` on `nodeId`, or, without
   * a count, names `nodeId` at all; `0` waits until it does not name `nodeId`.
   */
  async waitFor(
    userId: string,
    nodeId: string,
    connections?: number,
    timeoutMs = 5_000,
  ): Promise<void> {
    let seen: UserEntry | null = null;
    await waitFor(
      async () => {
        seen = await this.user(userId);
        const n = seen?.nodes[nodeId]?.connections ?? 0;
        return connections === undefined ? n > 0 : n === connections;
      },
      {
        timeoutMs,
        message: () =>
          `presence of ${userId} on ${nodeId} is not ${connections ?? 'written'}: ${JSON.stringify(seen)}`,
      },
    );
  }
}

export type EdgeProcessOptions = {
  nodeId: string;
  /** `NATS_URL` (comma-separated for a cluster). */
  natsUrl: string;
  secret: string;
  leaseTtlMs: number;
  /** Extra variables (`NATS_REPLICAS`, bounds...). */
  env?: Record<string, string>;
  /** A fixed port (a restart on the same address); default a free one. */
  port?: number;
};

/** An edge node as its own process, ready (its /readyz answered 200). */
export class EdgeProcess {
  readonly nodeId: string;
  readonly app: RunningApp;

  private constructor(nodeId: string, app: RunningApp) {
    this.nodeId = nodeId;
    this.app = app;
  }

  static async start(options: EdgeProcessOptions): Promise<EdgeProcess> {
    const app = await RunningApp.start(
      'edge',
      {
        NODE_ID: options.nodeId,
        NATS_URL: options.natsUrl,
        AUTH_JWT_SECRET: options.secret,
        LEASE_TTL_MS: String(options.leaseTtlMs),
        ...options.env,
      },
      options.port === undefined ? {} : { port: options.port },
    );
    return new EdgeProcess(options.nodeId, app);
  }

  get url(): string {
    return this.app.url;
  }

  get port(): number {
    return this.app.port;
  }

  get process(): AppProcess {
    return this.app.process;
  }

  get running(): boolean {
    return this.app.running;
  }

  /** Connected sockets, from its /metrics (`switchboard_edge_connections`). */
  async connections(): Promise<number> {
    return (await this.app.metric('switchboard_edge_connections')) ?? 0;
  }

  /** Graceful stop: SIGTERM, on which the node drains (clients told to reconnect elsewhere). */
  stop(): Promise<number | null> {
    return this.app.stop();
  }

  /** `kill -9`: no goodbye to NATS, its lease stays until the TTL. */
  kill(): Promise<number | null> {
    return this.app.kill();
  }

  /** SIGSTOP / SIGCONT: a stalled node, not a dead one. */
  pause(paused: boolean): void {
    this.app.process.pause(paused);
  }
}

/** What the push API is in a stack: a process, or an app's own in-process instance. */
export type ApiHandle = { url: string; stop(): Promise<unknown> };

export type StackOptions<A extends ApiHandle = RunningApp> = {
  /** Edge nodes, `edge-1`... (default 2). */
  edges?: number;
  /** `LEASE_TTL_MS` of every app (default 3000). */
  leaseTtlMs?: number;
  /** Extra push API variables. */
  env?: Record<string, string>;
  /** Extra variables of every edge. */
  edgeEnv?: Record<string, string>;
  /** Run on a 3-node JetStream cluster with R3 buckets and streams. */
  cluster?: boolean;
  /** Extra nats-server configuration lines (single server). */
  natsConfig?: string;
  /** Also run presence, with these extra variables (`true`: none). */
  presence?: boolean | Record<string, string>;
  /** Also run OS push, with these extra variables (`true`: none). */
  osPush?: boolean | Record<string, string>;
  /**
   * Starts the push API from its environment instead of spawning it: for the push API's own
   * tests, which run it in their process. `PORT` is `0` then.
   */
  startApi?: (env: Record<string, string>) => Promise<A>;
};

/**
 * nats-server, edges, the push API (and presence, OS push when asked), every app as a
 * process unless `startApi` says otherwise. `close()` stops everything opened here.
 */
export class Stack<A extends ApiHandle = RunningApp> {
  /** The single server, or the cluster's first node. */
  readonly nats: NatsServer;
  readonly cluster: NatsCluster | undefined;
  /** `NATS_URL` (and `NATS_REPLICAS` on a cluster) every app gets. */
  readonly natsEnv: Record<string, string>;
  readonly leaseTtlMs: number;
  readonly edges: EdgeProcess[] = [];
  readonly clients: ClientSocket[] = [];
  api!: A;
  presence: RunningApp | undefined;
  osPush: RunningApp | undefined;
  readonly #edgeEnv: Record<string, string>;
  readonly #spies: NatsConnection[] = [];
  #buckets: Promise<PresenceBuckets> | undefined;

  private constructor(
    nats: NatsServer | NatsCluster,
    leaseTtlMs: number,
    edgeEnv: Record<string, string>,
  ) {
    this.cluster = nats instanceof NatsCluster ? nats : undefined;
    this.nats = nats instanceof NatsCluster ? nats.servers[0]! : nats;
    this.natsEnv =
      nats instanceof NatsCluster
        ? { NATS_URL: nats.urls.join(','), NATS_REPLICAS: '3' }
        : { NATS_URL: nats.url };
    this.leaseTtlMs = leaseTtlMs;
    this.#edgeEnv = edgeEnv;
  }

  static async start<A extends ApiHandle = RunningApp>(
    options: StackOptions<A> = {},
  ): Promise<Stack<A>> {
    const nats = options.cluster
      ? await NatsCluster.start({ size: 3 })
      : await NatsServer.start(options.natsConfig ? { config: options.natsConfig } : {});
    const stack = new Stack<A>(nats, options.leaseTtlMs ?? 3_000, options.edgeEnv ?? {});
    try {
      const common = { ...stack.natsEnv, LEASE_TTL_MS: String(stack.leaseTtlMs) };
      const apiEnv = {
        ...common,
        API_KEYS: `${STACK_API_KEY},${STACK_SECOND_API_KEY}`,
        ACK_GRACE_MS: '500',
        ...options.env,
      };
      const extra = (o: boolean | Record<string, string> | undefined) =>
        typeof o === 'object' ? o : {};
      // Side by side, as in a rollout: every app makes the buckets and streams it uses.
      const edges = Promise.allSettled(
        Array.from({ length: options.edges ?? 2 }, (_, i) => stack.#startEdge(`edge-${i + 1}`)),
      );
      const started = await Promise.allSettled([
        (options.startApi
          ? options.startApi({ PORT: '0', HOST: '127.0.0.1', ...apiEnv })
          : RunningApp.start('push-api', apiEnv)) as Promise<A>,
        options.presence
          ? RunningApp.start('presence', {
              ...common,
              API_KEYS: STACK_API_KEY,
              ...extra(options.presence),
            })
          : undefined,
        options.osPush
          ? RunningApp.start('os-push', {
              ...common,
              // Every platform "sends" through the log provider unless told otherwise.
              OS_PUSH_UNCONFIGURED: 'log',
              ...extra(options.osPush),
            })
          : undefined,
      ] as const);
      const [api, presence, osPush] = started.map((r) =>
        r.status === 'fulfilled' ? r.value : undefined,
      );
      if (api) stack.api = api as A;
      stack.presence = presence as RunningApp | undefined;
      stack.osPush = osPush as RunningApp | undefined;
      // `edges[i]` is `edge-<i+1>`.
      for (const r of await edges) if (r.status === 'fulfilled') stack.edges.push(r.value);
      throwFirstFailure(await edges);
      throwFirstFailure(started);
    } catch (err) {
      await stack.close();
      throw err;
    }
    return stack;
  }

  get apiUrl(): string {
    return this.api.url;
  }

  /** Presence's URL (with `presence` in the options). */
  get presenceUrl(): string {
    if (!this.presence) throw new Error('this stack runs no presence (StackOptions.presence)');
    return this.presence.url;
  }

  /** A separate NATS connection for the test itself (spying, stream reads). */
  async connect(name: string): Promise<NatsConnection> {
    const nc = await connect({ servers: this.natsEnv.NATS_URL!.split(','), name });
    this.#spies.push(nc);
    return nc;
  }

  /** The presence buckets, read through a connection of the stack's own. */
  buckets(): Promise<PresenceBuckets> {
    this.#buckets ??= this.connect('stack-presence-reader').then((nc) => new PresenceBuckets(nc));
    return this.#buckets;
  }

  /** Starts one more edge process, the last of `edges`. */
  async addEdge(nodeId: string): Promise<EdgeProcess> {
    const edge = await this.#startEdge(nodeId);
    this.edges.push(edge);
    return edge;
  }

  #startEdge(nodeId: string): Promise<EdgeProcess> {
    return EdgeProcess.start({
      nodeId,
      natsUrl: this.natsEnv.NATS_URL!,
      secret: STACK_SECRET,
      leaseTtlMs: this.leaseTtlMs,
      env: { ...this.natsEnv, ...this.#edgeEnv },
    });
  }

  /**
   * `kill -9` of edge `i`: its lease stays until the TTL, requests find no responder.
   * Resolves once the server has dropped its subscriptions (a probe of its subject gets "no
   * responders"), or, when another subscriber listens there (a test's spy), once three
   * probes went unanswered.
   */
  async crashEdge(i: number): Promise<void> {
    const edge = this.edges[i]!;
    await edge.kill();
    const probe = await this.connect('crash-probe');
    let unanswered = 0;
    await waitFor(
      () =>
        probe.request(nodeSubject(edge.nodeId), new Uint8Array(0), { timeout: 100 }).then(
          () => false,
          (err: unknown) =>
            err instanceof NoRespondersError ||
            (err instanceof RequestError && err.isNoResponders()) ||
            (err instanceof TimeoutError && ++unanswered >= 3),
        ),
      { message: 'the server still routes to the crashed edge' },
    );
  }

  edgeUrl(i: number): string {
    return this.edges[i]!.url;
  }

  /**
   * Connects a user to edge `i` and waits until `presence-users` names that node for it
   * (which the edge stores before the client sees `connect`).
   */
  async client(userId: string, edge: number): Promise<ClientSocket> {
    const socket = await connectClient(this.edgeUrl(edge), {
      token: await mintToken({ sub: userId, secret: STACK_SECRET }),
    });
    this.clients.push(socket);
    await this.waitForPresence(userId, edge);
    return socket;
  }

  /**
   * Resolves once the stored presence of `userId` names edge `i` (with `connections`, when
   * given; `0`: once it no longer names it).
   */
  async waitForPresence(userId: string, edge: number, connections?: number): Promise<void> {
    await (await this.buckets()).waitFor(userId, this.edges[edge]!.nodeId, connections);
  }

  post(path: string, body: unknown, headers: Record<string, string> = {}): Promise<TestResponse> {
    return http(`${this.apiUrl}${path}`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        authorization: `Bearer ${STACK_API_KEY}`,
        ...headers,
      },
      body: typeof body === 'string' ? body : JSON.stringify(body),
    });
  }

  async close(): Promise<void> {
    for (const c of this.clients) c.close();
    await this.api?.stop().catch(() => {});
    // Nothing is checked at the end: processes are killed, not drained.
    await Promise.all([
      ...this.edges.map((e) => e.kill()),
      this.presence?.kill(),
      this.osPush?.kill(),
    ]);
    await Promise.all(this.#spies.map((nc) => nc.close().catch(() => {})));
    await (this.cluster ?? this.nats).stop();
  }
}

function throwFirstFailure(results: readonly PromiseSettledResult<unknown>[]): void {
  const failed = results.find((r) => r.status === 'rejected');
  if (failed) throw failed.reason;
}
