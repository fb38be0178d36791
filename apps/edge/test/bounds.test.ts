/**
 * The edge's bounds, each against a real nats-server and real Socket.IO clients: token
 * expiry and refresh, slow consumers, acked deliveries waiting at once, connections per
 * address and per user (cluster-wide, across two edges).
 */
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { createMetricsRegistry } from '@switchboard/http';
import { openPresenceBuckets } from '@switchboard/presence-registry';
import { decodeNodeReply, deliveryHead, encodeDelivery, nodeSubject } from '@switchboard/protocol';
import {
  type ClientSocket,
  connectClient,
  http,
  mintToken,
  NatsServer,
  waitFor,
} from '@switchboard/testkit';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { EdgeConfig } from '../src/config.js';
import { EdgeNode } from '../src/edge-node.js';
import { TokenVerifier } from '../src/token-verifier.js';
import { edgeTestConfig } from './support.js';

const SECRET = 'bounds-test-secret-bounds-test-secret-01';

describe('edge bounds', () => {
  let nats: NatsServer;
  let nc: NatsConnection;
  const edges: EdgeNode[] = [];
  const clients: ClientSocket[] = [];

  beforeAll(async () => {
    nats = await NatsServer.start();
    nc = await connect({ servers: nats.url });
  });
  afterEach(() => {
    for (const c of clients.splice(0)) c.close();
  });
  afterAll(async () => {
    await Promise.all(edges.map((e) => e.stop().catch(() => {})));
    await nc?.close();
    await nats?.stop();
  });

  let n = 0;
  async function startEdge(overrides: Partial<EdgeConfig> = {}): Promise<EdgeNode> {
    const config = edgeTestConfig(nats.url, SECRET, { nodeId: `bounds-${++n}`, ...overrides });
    const edge = new EdgeNode({
      config,
      nc,
      buckets: await openPresenceBuckets(nc, { replicas: 1, leaseTtlMs: 3_000 }),
      verifier: await TokenVerifier.create({ jwtSecret: SECRET }),
      log: pino({ level: 'silent' }),
      registry: createMetricsRegistry('edge'),
    });
    await edge.start();
    edges.push(edge);
    return edge;
  }
  const urlOf = (e: EdgeNode) => `http://127.0.0.1:${e.port}`;
  const token = (sub: string, expiresInSeconds = 3600) =>
    mintToken({ sub, secret: SECRET, expiresInSeconds });
  const open = async (e: EdgeNode, sub: string, t?: string) => {
    const c = await connectClient(urlOf(e), { token: t ?? (await token(sub)) });
    clients.push(c);
    return c;
  };
  const refused = (e: EdgeNode, t: string) =>
    connectClient(urlOf(e), { token: t }).then(
      (c) => {
        c.close();
        return 'connected';
      },
      (err: Error) => err.message,
    );
  const deliver = async (e: EdgeNode, users: string[], data: unknown, ackTimeoutMs?: number) => {
    const head = deliveryHead({
      id: `m-${Math.random()}`,
      event: 'note',
      sentAt: Date.now(),
      ...(ackTimeoutMs ? { ackTimeoutMs } : {}),
    });
    const msg = await nc.request(
      nodeSubject(e.nodeId),
      encodeDelivery(head, users, JSON.stringify(data)),
      { timeout: 10_000 },
    );
    return msg;
  };
  const metric = async (e: EdgeNode, pattern: RegExp) =>
    Number((await (await http(`${urlOf(e)}/metrics`)).text()).match(pattern)?.[1] ?? 0);

  it('token - the edge warns before expiry and closes with reason expired at expiry', async () => {
    const edge = await startEdge({ tokenExpiryWarningMs: 1_500 });
    const c = await open(edge, 'short', await token('short', 3));
    const expiring: Array<{ expiresAt: number }> = [];
    const closing: Array<{ reason: string }> = [];
    let reason = '';
    c.on('$expiring', (p: { expiresAt: number }) => expiring.push(p));
    c.on('$closing', (p: { reason: string }) => closing.push(p));
    c.on('disconnect', (r) => {
      reason = r;
    });
    await waitFor(() => expiring.length === 1, { timeoutMs: 5_000 });
    expect(expiring[0]!.expiresAt).toBeGreaterThan(Date.now());
    await waitFor(() => reason !== '', { timeoutMs: 6_000 });
    expect(closing).toEqual([{ reason: 'expired' }]);
    expect(reason).toBe('io server disconnect');
    expect(
      await metric(
        edge,
        /switchboard_edge_connections_closed_total\{reason="expired"[^}]*\} (\d+)/,
      ),
    ).toBe(1);
  });

  it('token - a refreshed token keeps the socket past the first expiry; another user or an expired token is refused', async () => {
    const edge = await startEdge({ tokenExpiryWarningMs: 1_500 });
    const c = await open(edge, 'refresher', await token('refresher', 3));
    // The sentinel: same expiry, never refreshed. Once it is closed, the sweep that would
    // have closed the refreshed socket has run.
    const sentinel = await open(edge, 'sentinel', await token('sentinel', 3));
    let sentinelGone = false;
    sentinel.on('disconnect', () => {
      sentinelGone = true;
    });
    const closing: unknown[] = [];
    c.on('$closing', (p) => closing.push(p));
    const refresh = (t: string) =>
      c.timeout(5_000).emitWithAck('$refresh', t) as Promise<Record<string, unknown>>;
    expect(await refresh(await token('someone-else', 60))).toEqual({
      ok: false,
      error: 'forbidden',
    });
    expect(await refresh(await token('refresher', -5))).toEqual({ ok: false, error: 'expired' });
    expect(await refresh('garbage')).toEqual({ ok: false, error: 'unauthorized' });
    const renewed = await refresh(await token('refresher', 60));
    expect(renewed).toMatchObject({ ok: true });
    expect(renewed.expiresAt).toBeGreaterThan(Date.now() + 50_000);
    await waitFor(() => sentinelGone, { timeoutMs: 8_000 });
    expect(c.connected).toBe(true);
    expect(closing).toEqual([]);
    const got: unknown[] = [];
    c.on('note', (d) => got.push(d));
    const reply = await deliver(edge, ['refresher'], { after: 'expiry' });
    expect(decodeNodeReply(reply.data, 1).connections).toEqual([1]);
    await waitFor(() => got.length === 1);
  });

  it('slow consumer - a client that stops reading is disconnected, its deliveries not counted as reached', async () => {
    const edge = await startEdge({ maxBufferedBytes: 256 * 1024 });
    const c = await open(edge, 'slow');
    // Stop reading: the kernel's buffers fill, then the edge's queue.
    const engine = c.io.engine as unknown as { transport: { ws: { _socket: { pause(): void } } } };
    engine.transport.ws._socket.pause();
    const chunk = 'x'.repeat(60_000);
    let reached = 1;
    let sent = 0;
    while (reached > 0 && sent < 2_000) {
      const reply = await deliver(edge, ['slow'], { chunk });
      reached = decodeNodeReply(reply.data, 1).connections[0]!;
      sent++;
    }
    expect(reached).toBe(0);
    // Tens of megabytes at most went out before the cap bit (the kernel holds some).
    expect(sent).toBeLessThan(2_000);
    await waitFor(() => edge.connections === 0);
    expect(
      await metric(
        edge,
        /switchboard_edge_connections_closed_total\{reason="slow_consumer"[^}]*\} (\d+)/,
      ),
    ).toBe(1);
    // A reading client on the same node is unaffected.
    const ok = await open(edge, 'fast');
    const got: unknown[] = [];
    ok.on('note', (d) => got.push(d));
    expect(decodeNodeReply((await deliver(edge, ['fast'], { chunk })).data, 1).connections).toEqual(
      [1],
    );
    await waitFor(() => got.length === 1);
  });

  it('acks - past the cap of acked deliveries waiting, the edge refuses at once; the ack wait is bounded', async () => {
    const edge = await startEdge({ maxInflightAcks: 1 });
    const c = await open(edge, 'silent');
    let seen = 0;
    c.on('note', () => {
      seen++; // never acks
    });
    const started = Date.now();
    const first = deliver(edge, ['silent'], { n: 1 }, 1_000);
    await waitFor(() => seen === 1);
    // A second one while the first waits on the device is over the cap: answered at once.
    const second = await deliver(edge, ['silent'], { n: 2 }, 1_000);
    expect(new TextDecoder().decode(second.data)).toMatch(/overloaded/);
    expect(Date.now() - started).toBeLessThan(900);
    expect(
      await metric(
        edge,
        /switchboard_edge_deliveries_refused_total\{reason="ack-capacity"[^}]*\} (\d+)/,
      ),
    ).toBe(1);
    expect(decodeNodeReply((await first).data, 1)).toMatchObject({ connections: [1], acked: [0] });
    expect(Date.now() - started).toBeGreaterThanOrEqual(990);
    // The slot is free again, and a wait below the API's minimum is raised to it (100 ms).
    const t = Date.now();
    const third = decodeNodeReply((await deliver(edge, ['silent'], { n: 3 }, 1)).data, 1);
    expect(third.acked).toEqual([0]);
    expect(Date.now() - t).toBeGreaterThanOrEqual(95);
  });

  it('admission - junk tokens spend no budget; JWT-shaped attempts are limited per address', async () => {
    const edge = await startEdge({ maxConnectsPerIpPerSecond: 2 });
    for (let i = 0; i < 10; i++) expect(await refused(edge, 'junk')).toBe('unauthorized');
    // Burst 4 (twice the rate): a forged token spends one, three real ones fit.
    expect(
      await refused(
        edge,
        await mintToken({ sub: 'x', secret: 'forged-forged-forged-forged-forged-00' }),
      ),
    ).toBe('unauthorized');
    const t = await token('per-ip');
    const outcomes: string[] = [];
    for (let i = 0; i < 5; i++) outcomes.push(await refused(edge, t));
    expect(outcomes.slice(0, 3)).toEqual(['connected', 'connected', 'connected']);
    expect(outcomes.slice(3)).toContain('overloaded');
  });

  it('per user - connections past the cluster-wide cap are refused with too_many_connections', async () => {
    const a = await startEdge({ maxConnectionsPerUser: 3 });
    const b = await startEdge({ maxConnectionsPerUser: 3 });
    const first = await open(a, 'capped');
    await open(b, 'capped');
    await open(a, 'capped');
    // The fourth, on either node, is one too many.
    expect(await refused(b, await token('capped'))).toBe('too_many_connections');
    expect(await refused(a, await token('capped'))).toBe('too_many_connections');
    // Another user is not affected; and once one leaves, there is room again.
    await open(b, 'other-user');
    first.close();
    await waitFor(async () => (await refused(b, await token('capped'))) === 'connected', {
      timeoutMs: 5_000,
    });
  });
});
