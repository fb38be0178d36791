import type { NatsConnection } from '@nats-io/transport-node';
import { collect, waitFor } from '@switchboard/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Stack } from './support/stack.js';

describe('push-api broadcast, multicast at scale and slow nodes', () => {
  let stack: Stack;
  let spy: NatsConnection;
  beforeAll(async () => {
    stack = await Stack.start({ edges: 3, env: { NODE_TIMEOUT_MS: '300' } });
    spy = await stack.connect('spy');
  });
  afterAll(() => stack?.close());

  it('broadcast - a retry with the same Idempotency-Key returns the first answer and broadcasts once', async () => {
    const inbox = collect(await stack.client('b-idem', 0));
    const body = { event: 'system.notice', data: { n: 1 } };
    const first = await stack.post('/v1/broadcast', body, { 'idempotency-key': 'bc-1' });
    const again = await stack.post('/v1/broadcast', body, { 'idempotency-key': 'bc-1' });
    expect(again.headers.get('idempotent-replayed')).toBe('true');
    expect(await again.json()).toEqual(await first.json());
    // A sentinel broadcast after the retry: once it is in, a second copy would be too.
    await stack.post('/v1/broadcast', { event: 'sentinel' });
    await waitFor(() => inbox.some((m) => m.event === 'sentinel'));
    expect(inbox.filter((m) => m.event === 'system.notice')).toHaveLength(1);
    const reuse = await stack.post(
      '/v1/broadcast',
      { event: 'other' },
      { 'idempotency-key': 'bc-1' },
    );
    expect(reuse.status).toBe(409);
  });

  it('broadcast - one publish reaches every connected user on three nodes', async () => {
    const inboxes = await Promise.all(
      ['b1', 'b2', 'b3', 'b4'].map(async (u, i) => collect(await stack.client(u, i % 3))),
    );
    let publishes = 0;
    spy.subscribe('push.v1.>', {
      callback: () => {
        publishes++;
      },
    });
    await spy.flush();
    const res = await stack.post('/v1/broadcast', {
      event: 'system.notice',
      data: { text: 'hello all' },
    });
    expect(res.status).toBe(200);
    const { id } = await res.json();
    await waitFor(() => inboxes.every((box) => box.length === 1));
    for (const box of inboxes)
      expect(box[0]).toMatchObject({
        event: 'system.notice',
        data: { text: 'hello all' },
        meta: { id },
      });
    await spy.flush();
    expect(publishes).toBe(1);
  });

  it('multicast - 10,000 recipients in one request: one NATS request per owning node', async () => {
    const online = ['mc-a', 'mc-b', 'mc-c'];
    await Promise.all(online.map((u, i) => stack.client(u, i % 2)));
    const to = [...online, ...Array.from({ length: 9_997 }, (_, i) => `mc-offline-${i}`)];
    const subjects: string[] = [];
    spy.subscribe('push.v1.node.>', {
      callback: (_e, m) => {
        subjects.push(m.subject);
      },
    });
    await spy.flush();
    const res = await stack.post('/v1/messages', { to, event: 'feed.update', data: { v: 1 } });
    expect(res.status).toBe(200);
    const { results } = await res.json();
    expect(results).toHaveLength(10_000);
    expect(results.slice(0, 3).map((r: { status: string }) => r.status)).toEqual([
      'delivered',
      'delivered',
      'delivered',
    ]);
    expect(results.slice(3).every((r: { status: string }) => r.status === 'dropped')).toBe(true);
    await spy.flush();
    expect(subjects.sort()).toEqual(['push.v1.node.edge-1', 'push.v1.node.edge-2']);
  });

  it('slow node - a node that does not answer within NODE_TIMEOUT_MS is treated as unavailable', async () => {
    await stack.client('stuck-user', 2);
    // The node stays alive (lease, subscription) but stops answering.
    const zombie = await stack.connect('zombie');
    await stack.crashEdge(2);
    zombie.subscribe('push.v1.node.edge-3', { callback: () => {} });
    await zombie.flush();
    const t0 = Date.now();
    const res = await stack.post('/v1/messages', {
      to: 'stuck-user',
      event: 'e',
      fallback: { title: 't' },
    });
    const elapsed = Date.now() - t0;
    expect((await res.json()).results).toEqual([
      { userId: 'stuck-user', status: 'fallback', reason: 'node-unavailable' },
    ]);
    expect(elapsed).toBeGreaterThanOrEqual(300);
  });
});
