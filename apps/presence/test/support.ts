/**
 * The presence tests' rig: a real nats-server, the presence service in-process, edges
 * in-process or as real processes, Socket.IO clients, and a recorder of presence events.
 */
import { Kvm } from '@nats-io/kv';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { loadConfig as loadEdgeConfig } from '@switchboard/edge/config';
import { type RunningEdge, startEdge } from '@switchboard/edge/start-edge';
import type { PresenceEvent, PresenceView, UserEntry } from '@switchboard/protocol';
import { Buckets, encodeUserKey, Subjects } from '@switchboard/protocol';
import {
  AppProcess,
  type ClientSocket,
  connectClient,
  freePort,
  http,
  mintToken,
  NatsServer,
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
  readonly edges: RunningEdge[] = [];
  readonly processes: AppProcess[] = [];
  readonly clients: ClientSocket[] = [];
  readonly events: PresenceEvent[] = [];
  presence!: RunningPresence;
  spy!: NatsConnection;

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
    return rig;
  }

  #edgeEnv(nodeId: string, port: number): Record<string, string> {
    return {
      PORT: String(port),
      HOST: '127.0.0.1',
      NODE_ID: nodeId,
      NATS_URL: this.nats.url,
      AUTH_JWT_SECRET: SECRET,
      LEASE_TTL_MS: String(this.leaseTtlMs),
      ...this.edgeEnv,
    };
  }

  /** An edge in this process; its URL is `edgeUrl(i)` with `i` its index in `edges`. */
  async addEdge(nodeId: string): Promise<RunningEdge> {
    const edge = await startEdge(loadEdgeConfig(this.#edgeEnv(nodeId, 0)), log);
    this.edges.push(edge);
    return edge;
  }

  /** An edge as its own process (for kill -9). */
  async spawnEdge(
    nodeId: string,
    port?: number,
  ): Promise<{ edge: AppProcess; url: string; port: number }> {
    const p = port ?? (await freePort());
    const edge = await AppProcess.spawn('edge', {
      env: this.#edgeEnv(nodeId, p),
      readyUrl: `http://127.0.0.1:${p}/readyz`,
    });
    this.processes.push(edge);
    return { edge, url: `http://127.0.0.1:${p}`, port: p };
  }

  edgeUrl(i: number): string {
    return `http://127.0.0.1:${this.edges[i]!.node.port}`;
  }

  /** Connects `userId` to an in-process edge (by index) or any URL. */
  async client(userId: string, edge: number | string): Promise<ClientSocket> {
    const url = typeof edge === 'number' ? this.edgeUrl(edge) : edge;
    const s = await connectClient(url, { token: await mintToken({ sub: userId, secret: SECRET }) });
    this.clients.push(s);
    if (typeof edge === 'number') {
      this.#localClients.add(s);
      await this.edges[edge]!.node.flushPresence();
    }
    return s;
  }

  /**
   * Waits for in-process edges' writes and the events they cause, on conditions: every
   * client closed here has left its edge, every edge's presence writes are stored, and a
   * sentinel user's online and offline events (emitted in stream order after everything
   * before them) have arrived.
   */
  async settle(): Promise<void> {
    const local = this.clients.filter((c) => this.#localClients.has(c));
    await waitFor(
      () =>
        this.edges.reduce((n, e) => n + e.node.connections, 0) ===
        local.filter((c) => c.connected).length,
      { message: 'closed clients still held by their edges' },
    );
    await Promise.all(this.edges.map((e) => e.node.flushPresence()));
    const id = `settle-sentinel-${++this.#sentinels}`;
    const token = await mintToken({ sub: id, secret: SECRET });
    let s: ClientSocket | undefined;
    // The first edge that still serves (a test may have stopped some).
    for (let i = 0; i < this.edges.length && !s; i++)
      s = await connectClient(this.edgeUrl(i), { token }).catch(() => undefined);
    if (!s) return;
    await waitFor(() => this.eventsOf(id).length === 1, { message: `no event for ${id}` });
    s.close();
    await waitFor(() => this.eventsOf(id).length === 2, { message: `no offline for ${id}` });
  }

  readonly #localClients = new WeakSet<ClientSocket>();
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
  async entry(userId: string): Promise<UserEntry | null> {
    const kv = await new Kvm(this.spy).open(Buckets.users);
    const e = await kv.get(encodeUserKey(userId));
    return e?.operation === 'PUT' ? e.json<UserEntry>() : null;
  }

  async close(): Promise<void> {
    for (const c of this.clients) c.close();
    await Promise.all(this.processes.map((p) => p.kill()));
    await this.spy?.close();
    await this.presence?.stop().catch(() => {});
    for (const e of this.edges) await e.stop().catch(() => {});
    await this.nats.stop();
  }
}
