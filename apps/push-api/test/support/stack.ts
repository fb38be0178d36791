/**
 * An in-process Switchboard for tests: a real nats-server, N real edge nodes (each with
 * its own NATS connection, as separate processes would have) and the push API on real
 * HTTP. Everything opened here is closed by `close()`.
 */
import type { AddressInfo } from 'node:net';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import type { EdgeConfig } from '@switchboard/edge/config';
import { EdgeNode } from '@switchboard/edge/edge-node';
import { TokenVerifier } from '@switchboard/edge/token-verifier';
import { createMetricsRegistry } from '@switchboard/http/health';
import type { HttpApp } from '@switchboard/http/http-app';
import { ensureFallbackStream, openPresenceBuckets } from '@switchboard/nats/provision';
import { LeaseTable } from '@switchboard/presence-registry/lease-table';
import { PresenceReader } from '@switchboard/presence-registry/presence-reader';
import { NatsServer } from '@switchboard/testkit/nats-server';
import { type ClientSocket, connectClient } from '@switchboard/testkit/socket-client';
import { mintToken } from '@switchboard/testkit/tokens';
import { pino } from 'pino';
import { buildApp } from '../../src/app.js';
import { DeliveryRouter } from '../../src/delivery-router.js';
import { FallbackQueue } from '../../src/fallback-queue.js';

export const SECRET = 'test-secret-test-secret-test-secret-0123';
export const API_KEY = 'test-api-key-0123456789';
export const log = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });

export type StackOptions = { edges?: number; leaseTtlMs?: number; nodeTimeoutMs?: number; bodyLimitBytes?: number };

export class Stack {
  readonly nats: NatsServer;
  readonly edges: EdgeNode[] = [];
  readonly edgeConnections: NatsConnection[] = [];
  readonly connections: NatsConnection[] = [];
  readonly clients: ClientSocket[] = [];
  api!: HttpApp;
  apiUrl = '';
  leases!: LeaseTable;
  readonly leaseTtlMs: number;

  private constructor(nats: NatsServer, leaseTtlMs: number) {
    this.nats = nats;
    this.leaseTtlMs = leaseTtlMs;
  }

  static async start(options: StackOptions = {}): Promise<Stack> {
    const stack = new Stack(await NatsServer.start(), options.leaseTtlMs ?? 3_000);
    for (let i = 0; i < (options.edges ?? 2); i++) await stack.addEdge(`edge-${i + 1}`);
    const nc = await stack.connect('push-api');
    const buckets = await openPresenceBuckets(nc, { replicas: 1, leaseTtlMs: stack.leaseTtlMs });
    await ensureFallbackStream(nc, { replicas: 1 });
    stack.leases = await LeaseTable.create({ kv: buckets.nodes, leaseTtlMs: stack.leaseTtlMs, log });
    const router = new DeliveryRouter({
      nc,
      presence: new PresenceReader({ kv: buckets.users, leases: stack.leases }),
      fallback: new FallbackQueue(nc),
      log,
      nodeTimeoutMs: options.nodeTimeoutMs ?? 1_000,
      ackGraceMs: 500,
    });
    stack.api = await buildApp({
      apiKeys: [API_KEY, 'second-api-key-for-rotation'],
      bodyLimitBytes: options.bodyLimitBytes ?? 1024 * 1024,
      nc,
      router,
      logger: log,
      registry: createMetricsRegistry('push-api'),
      readiness: { nats: () => !nc.isClosed() },
    });
    await stack.api.listen({ port: 0, host: '127.0.0.1' });
    stack.apiUrl = `http://127.0.0.1:${(stack.api.server.address() as AddressInfo).port}`;
    return stack;
  }

  async connect(name: string): Promise<NatsConnection> {
    const nc = await connect({ servers: this.nats.url, name });
    this.connections.push(nc);
    return nc;
  }

  async addEdge(nodeId: string): Promise<EdgeNode> {
    const nc = await this.connect(nodeId);
    const config: EdgeConfig = {
      port: 0,
      host: '127.0.0.1',
      nodeId,
      publicUrl: 'http://127.0.0.1',
      natsServers: [this.nats.url],
      natsReplicas: 1,
      auth: { jwtSecret: SECRET },
      leaseTtlMs: this.leaseTtlMs,
      maxConnections: 10_000,
      corsOrigins: '*',
      logLevel: 'silent',
    };
    const buckets = await openPresenceBuckets(nc, { replicas: 1, leaseTtlMs: this.leaseTtlMs });
    const edge = new EdgeNode({
      config,
      nc,
      buckets,
      verifier: await TokenVerifier.create({ jwtSecret: SECRET }),
      log,
      registry: createMetricsRegistry('edge'),
    });
    await edge.start();
    this.edges.push(edge);
    this.edgeConnections.push(nc);
    return edge;
  }

  /** Cuts edge `i` off NATS without a goodbye: its lease stays until the TTL, requests find no responder. */
  async crashEdge(i: number): Promise<void> {
    await this.edgeConnections[i]!.close();
  }

  edgeUrl(i: number): string {
    return `http://127.0.0.1:${this.edges[i]!.port}`;
  }

  /** Connects a user to edge `i` and waits until its presence is written. */
  async client(userId: string, edge: number): Promise<ClientSocket> {
    const socket = await connectClient(this.edgeUrl(edge), { token: await mintToken({ sub: userId, secret: SECRET }) });
    this.clients.push(socket);
    await this.edges[edge]!.flushPresence();
    return socket;
  }

  post(path: string, body: unknown, headers: Record<string, string> = {}): Promise<Response> {
    return fetch(`${this.apiUrl}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${API_KEY}`, ...headers },
      body: typeof body === 'string' ? body : JSON.stringify(body),
    });
  }

  async close(): Promise<void> {
    for (const c of this.clients) c.close();
    await this.api?.close();
    this.leases?.stop();
    for (const e of this.edges) await e.stop().catch(() => {});
    await Promise.all(this.connections.map((nc) => nc.close()));
    await this.nats.stop();
  }
}
