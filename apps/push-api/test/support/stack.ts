/**
 * An in-process Switchboard for tests: a real nats-server, N real edge nodes (each with
 * its own NATS connection, as separate processes have) and the push API on real HTTP,
 * all built from their real configs. `close()` closes everything opened here.
 */
import { connect, type NatsConnection, TimeoutError } from '@nats-io/transport-node';
import { loadConfig as loadEdgeConfig } from '@switchboard/edge/config';
import { type RunningEdge, startEdge } from '@switchboard/edge/start-edge';
import { isNoResponders } from '@switchboard/nats';
import { nodeSubject } from '@switchboard/protocol';
import {
  type ClientSocket,
  connectClient,
  http,
  mintToken,
  NatsCluster,
  NatsServer,
  type TestResponse,
  waitFor,
} from '@switchboard/testkit';
import { pino } from 'pino';
import { loadConfig } from '../../src/config.js';
import { type RunningPushApi, startPushApi } from '../../src/start-push-api.js';

export const SECRET = 'test-secret-test-secret-test-secret-0123';
export const API_KEY = 'test-api-key-0123456789';
export const SECOND_API_KEY = 'second-api-key-for-rotation';
export const log = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });

export type StackOptions = {
  edges?: number;
  leaseTtlMs?: number;
  env?: Record<string, string>;
  /** Run on a 3-node JetStream cluster with R3 buckets and streams. */
  cluster?: boolean;
  /** Extra nats-server configuration lines (single server). */
  natsConfig?: string;
};

export class Stack {
  /** The single server, or the cluster's first node. */
  readonly nats: NatsServer;
  readonly cluster: NatsCluster | undefined;
  readonly #natsEnv: Record<string, string>;
  readonly edges: RunningEdge[] = [];
  readonly clients: ClientSocket[] = [];
  readonly #spies: NatsConnection[] = [];
  readonly leaseTtlMs: number;
  api!: RunningPushApi;

  private constructor(nats: NatsServer | NatsCluster, leaseTtlMs: number) {
    this.cluster = nats instanceof NatsCluster ? nats : undefined;
    this.nats = nats instanceof NatsCluster ? nats.servers[0]! : nats;
    this.#natsEnv =
      nats instanceof NatsCluster
        ? { NATS_URL: nats.urls.join(','), NATS_REPLICAS: '3' }
        : { NATS_URL: nats.url };
    this.leaseTtlMs = leaseTtlMs;
  }

  static async start(options: StackOptions = {}): Promise<Stack> {
    const nats = options.cluster
      ? await NatsCluster.start({ size: 3 })
      : await NatsServer.start(options.natsConfig ? { config: options.natsConfig } : {});
    const stack = new Stack(nats, options.leaseTtlMs ?? 3_000);
    for (let i = 0; i < (options.edges ?? 2); i++) await stack.addEdge(`edge-${i + 1}`);
    const config = loadConfig({
      PORT: '0',
      HOST: '127.0.0.1',
      ...stack.#natsEnv,
      API_KEYS: `${API_KEY},${SECOND_API_KEY}`,
      LEASE_TTL_MS: String(stack.leaseTtlMs),
      ACK_GRACE_MS: '500',
      ...options.env,
    });
    stack.api = await startPushApi(config, log);
    return stack;
  }

  get apiUrl(): string {
    return this.api.url;
  }

  /** A separate NATS connection for the test itself (spying, stream reads). */
  async connect(name: string): Promise<NatsConnection> {
    const nc = await connect({ servers: this.#natsEnv.NATS_URL!.split(','), name });
    this.#spies.push(nc);
    return nc;
  }

  async addEdge(nodeId: string): Promise<RunningEdge> {
    const config = loadEdgeConfig({
      PORT: '0',
      HOST: '127.0.0.1',
      NODE_ID: nodeId,
      ...this.#natsEnv,
      AUTH_JWT_SECRET: SECRET,
      LEASE_TTL_MS: String(this.leaseTtlMs),
    });
    const edge = await startEdge(config, log);
    this.edges.push(edge);
    return edge;
  }

  /**
   * Cuts edge `i` off NATS without a goodbye: its lease stays until the TTL, requests find
   * no responder. Resolves once the server has dropped its subscriptions (a probe of its
   * subject gets "no responders", as it does at once for a process that died), or, when
   * another subscriber listens there (a test's spy), once three probes went unanswered.
   */
  async crashEdge(i: number): Promise<void> {
    const edge = this.edges[i]!;
    await edge.nc.close();
    const probe = await this.connect('crash-probe');
    let unanswered = 0;
    await waitFor(
      () =>
        probe.request(nodeSubject(edge.node.nodeId), new Uint8Array(0), { timeout: 100 }).then(
          () => false,
          (err: unknown) =>
            isNoResponders(err) || (err instanceof TimeoutError && ++unanswered >= 3),
        ),
      { message: 'the server still routes to the crashed edge' },
    );
  }

  edgeUrl(i: number): string {
    return `http://127.0.0.1:${this.edges[i]!.node.port}`;
  }

  /** Connects a user to edge `i` and waits until its presence is written. */
  async client(userId: string, edge: number): Promise<ClientSocket> {
    const socket = await connectClient(this.edgeUrl(edge), {
      token: await mintToken({ sub: userId, secret: SECRET }),
    });
    this.clients.push(socket);
    await this.edges[edge]!.node.flushPresence();
    return socket;
  }

  post(path: string, body: unknown, headers: Record<string, string> = {}): Promise<TestResponse> {
    return http(`${this.apiUrl}${path}`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        authorization: `Bearer ${API_KEY}`,
        ...headers,
      },
      body: typeof body === 'string' ? body : JSON.stringify(body),
    });
  }

  async close(): Promise<void> {
    for (const c of this.clients) c.close();
    await this.api?.stop().catch(() => {});
    for (const e of this.edges) await e.stop().catch(() => {});
    await Promise.all(this.#spies.map((nc) => nc.close()));
    await (this.cluster ?? this.nats).stop();
  }
}
