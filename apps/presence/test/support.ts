/**
 * The presence tests' rig: a real nats-server, the presence service in-process, edges as
 * real processes, Socket.IO clients, and a recorder of presence events. What the edges hold
 * is read from outside: the `presence-users` and `presence-nodes` buckets.
 */
import { connect, type NatsConnection } from '@nats-io/transport-node';
import type { NodeLease, PresenceEvent, PresenceView, UserEntry } from '@switchboard/protocol';
import { Subjects } from '@switchboard/protocol';
import {
  type AppProcess,
  type ClientSocket,
  connectClient,
  EdgeProcess,
  http,
  mintToken,
  NatsServer,
  PresenceBuckets,
  type TestResponse,
  waitFor,
} from '@switchboard/testkit';
import { pino } from 'pino';
import { loadConfig } from '../src/config.js';
import { type RunningPresence, startPresence } from '../src/start-presence.js';

export const SECRET = 'presence-test-secret-presence-test-secret';
export const API_KEY = 'presence-test-api-key-0123';
const log = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });

export class PresenceRig {
  /** Edges of `addEdge`, by index. */
  readonly edges: EdgeProcess[] = [];
  /** Every edge started here (`addEdge` and `spawnEdge`). */
  readonly processes: EdgeProcess[] = [];
  readonly clients: ClientSocket[] = [];
  readonly events: PresenceEvent[] = [];
  presence!: RunningPresence;
  spy!: NatsConnection;
  buckets!: PresenceBuckets;

  private constructor(
    readonly nats: NatsServer,
    readonly leaseTtlMs: number,
    readonly edgeEnv: Record<string, string>,
  ) {}

  static async start(
    options: { leaseTtlMs?: number; edgeEnv?: Record<string, string> } = {},
  ): Promise<PresenceRig> {
    const rig = new PresenceRig(
      await NatsServer.start(),
      options.leaseTtlMs ?? 3_000,
      options.edgeEnv ?? {},
    );
    rig.presence = await startPresence(
      loadConfig({
        PORT: '0',
        HOST: '127.0.0.1',
        NATS_URL: rig.nats.url,
        API_KEYS: API_KEY,
        LEASE_TTL_MS: String(rig.leaseTtlMs),
      }),
      log,
    );
    await waitFor(() => rig.presence.leader.isLeader);
    rig.spy = await connect({ servers: rig.nats.url });
    rig.spy.subscribe(Subjects.presenceEvents, {
      callback: (_e, m) => {
        rig.events.push(m.json() as PresenceEvent);
      },
    });
    await rig.spy.flush();
    rig.buckets = new PresenceBuckets(rig.spy);
    return rig;
  }

  #startEdge(nodeId: string, port?: number): Promise<EdgeProcess> {
    return EdgeProcess.start({
      nodeId,
      natsUrl: this.nats.url,
      secret: SECRET,
      leaseTtlMs: this.leaseTtlMs,
      env: this.edgeEnv,
      ...(port === undefined ? {} : { port }),
    }).then((edge) => {
      this.processes.push(edge);
      return edge;
    });
  }

  /** An edge process; its URL is `edgeUrl(i)` with `i` its index in `edges`. */
  async addEdge(nodeId: string): Promise<EdgeProcess> {
    const edge = await this.#startEdge(nodeId);
    this.edges.push(edge);
    return edge;
  }

  /** Edge processes started side by side, appended to `edges` in this order. */
  async addEdges(...nodeIds: string[]): Promise<EdgeProcess[]> {
    const started = await Promise.all(nodeIds.map((id) => this.#startEdge(id)));
    this.edges.push(...started);
    return started;
  }

  /** An edge process outside `edges` (for kill -9, SIGSTOP, a restart on `port`). */
  async spawnEdge(
    nodeId: string,
    port?: number,
  ): Promise<{ edge: AppProcess; url: string; port: number }> {
    const edge = await this.#startEdge(nodeId, port);
    return { edge: edge.process, url: edge.url, port: edge.port };
  }

  edgeUrl(i: number): string {
    return this.edges[i]!.url;
  }

  /**
   * Connects `userId` to an edge of `edges` (by index) or any URL. Through an index, it
   * resolves once `presence-users` counts the connection on that node.
   */
  async client(userId: string, edge: number | string): Promise<ClientSocket> {
    const url = typeof edge === 'number' ? this.edgeUrl(edge) : edge;
    const s = await connectClient(url, { token: await mintToken({ sub: userId, secret: SECRET }) });
    this.clients.push(s);
    if (typeof edge === 'number') {
      const nodeId = this.edges[edge]!.nodeId;
      this.#onEdges.set(s, { userId, nodeId });
      await this.buckets.waitFor(userId, nodeId, this.#held(userId, nodeId));
    }
    return s;
  }

  /** Connected clients of `userId` on `nodeId` made by `client(userId, index)`. */
  #held(userId: string, nodeId: string): number {
    let n = 0;
    for (const c of this.clients) {
      const at = this.#onEdges.get(c);
      if (c.connected && at?.userId === userId && at.nodeId === nodeId) n++;
    }
    return n;
  }

  /**
   * Waits until what the clients made through `edges` did is stored and its events are
   * out, on conditions: `presence-users` counts, for every user and node they touched,
   * exactly the clients still connected there; then a sentinel user's online and offline
   * events (emitted in stream order after everything before them) have arrived.
   */
  async settle(): Promise<void> {
    const pairs = new Map<string, { userId: string; nodeId: string }>();
    for (const c of this.clients) {
      const at = this.#onEdges.get(c);
      if (at) pairs.set(`${at.userId}\n${at.nodeId}`, at);
    }
    await Promise.all(
      [...pairs.values()].map(({ userId, nodeId }) =>
        this.buckets.waitFor(userId, nodeId, this.#held(userId, nodeId)),
      ),
    );
    const id = `settle-sentinel-${++this.#sentinels}`;
    const token = await mintToken({ sub: id, secret: SECRET });
    let s: ClientSocket | undefined;
    // The first edge that still serves (a test may have stopped some).
    for (let i = 0; i < this.edges.length && !s; i++)
      if (this.edges[i]!.running)
        s = await connectClient(this.edgeUrl(i), { token }).catch(() => undefined);
    if (!s) return;
    await waitFor(() => this.eventsOf(id).length === 1, { message: `no event for ${id}` });
    s.close();
    await waitFor(() => this.eventsOf(id).length === 2, { message: `no offline for ${id}` });
  }

  readonly #onEdges = new WeakMap<ClientSocket, { userId: string; nodeId: string }>();
  #sentinels = 0;

  /** `status:reason` of every event about `userId`, in order. */
  eventsOf(userId: string): string[] {
    return this.events.filter((e) => e.userId === userId).map((e) => `${e.status}:${e.reason}`);
  }

  get(path: string, key = API_KEY): Promise<TestResponse> {
    return http(`${this.presence.url}${path}`, { headers: { authorization: `Bearer ${key}` } });
  }

  post(path: string, body: unknown): Promise<TestResponse> {
    return http(`${this.presence.url}${path}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' },
      body: typeof body === 'string' ? body : JSON.stringify(body),
    });
  }

  async view(userId: string): Promise<PresenceView> {
    return (
      await this.get(`/v1/presence/${encodeURIComponent(userId)}`)
    ).json() as Promise<PresenceView>;
  }

  /** The raw `presence-users` entry. */
  entry(userId: string): Promise<UserEntry | null> {
    return this.buckets.user(userId);
  }

  /** The raw `presence-nodes` lease. */
  lease(nodeId: string): Promise<NodeLease | null> {
    return this.buckets.lease(nodeId);
  }

  async close(): Promise<void> {
    for (const c of this.clients) c.close();
    await Promise.all(this.processes.map((p) => p.kill()));
    await this.spy?.close();
    await this.presence?.stop().catch(() => {});
    await this.nats.stop();
  }
}
