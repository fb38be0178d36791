/**
 * The push API routes from an in-memory presence mirror; the node's reply stays the
 * truth. A mirror frozen on old state (as one that lags would be) must cost at most a KV
 * read, never a wrong outcome.
 */
import type { NatsConnection } from '@nats-io/transport-node';
import { FallbackQueue } from '@switchboard/fallback-queue';
import { RequestMux } from '@switchboard/nats';
import { openPresenceReader, PresenceMirror } from '@switchboard/presence-registry';
import { collect, waitFor } from '@switchboard/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DeliveryRouter } from '../src/delivery-router.js';
import { log, Stack } from './support/stack.js';

describe('presence mirror', () => {
  let stack: Stack;
  let nc: NatsConnection;
  beforeAll(async () => {
    stack = await Stack.start({ edges: 2 });
    nc = await stack.connect('mirror-test');
  });
  afterAll(() => stack?.close());

  const frozenRouter = async () => {
    const { buckets, leases, reader } = await openPresenceReader(nc, {
      replicas: 1,
      leaseTtlMs: stack.leaseTtlMs,
      log,
    });
    const mirror = await PresenceMirror.create({ kv: buckets.users, log });
    // Frozen: it keeps what it loaded and never hears of a change.
    mirror.stop();
    const requests = new RequestMux(nc);
    const router = new DeliveryRouter({
      nc,
      requests,
      presence: reader,
      mirror,
      fallback: new FallbackQueue(nc),
      log,
      nodeTimeoutMs: 1_000,
      ackGraceMs: 500,
    });
    return {
      mirror,
      router,
      requests,
      close: () => {
        requests.close();
        leases.stop();
      },
    };
  };

  it('mirror - holds online users only and answers from memory when caught up', async () => {
    const alive = await stack.client('mirror-online', 0);
    const gone = await stack.client('mirror-gone', 1);
    gone.close();
    await waitFor(async () => {
      const res = await stack.post('/v1/messages', { to: 'mirror-gone', event: 'x' });
      return (await res.json()).results[0].reason === 'offline';
    });
    const { mirror, close } = await frozenRouter();
    try {
      expect(mirror.caughtUp).toBe(true);
      expect(mirror.nodes('mirror-online')).toMatchObject({ 'edge-1': { connections: 1 } });
      expect(mirror.nodes('mirror-gone')).toBeUndefined();
    } finally {
      close();
      alive.close();
    }
  });

  it('mirror - a user who moved to another node since the mirror last heard is still delivered (KV re-read), on the new node only', async () => {
    const first = await stack.client('mover', 0);
    const { router, close } = await frozenRouter();
    try {
      first.close();
      const second = collect(await stack.client('mover', 1));
      const results = await router.send({
        id: 'moved-1',
        to: ['mover'],
        event: 'dm.new',
        data: { n: 1 },
        ack: false,
        ackTimeoutMs: 5_000,
      });
      expect(results).toEqual([{ userId: 'mover', status: 'delivered', connections: 1 }]);
      await waitFor(() => second.length === 1);
    } finally {
      close();
    }
  });

  it('mirror - a user who left since the mirror last heard is offline (confirmed in KV), not delivered', async () => {
    const socket = await stack.client('leaver', 0);
    const { router, close } = await frozenRouter();
    try {
      socket.close();
      await waitFor(async () => {
        const res = await stack.post('/v1/messages', { to: 'leaver', event: 'x' });
        return (await res.json()).results[0].reason === 'offline';
      });
      const results = await router.send({
        id: 'left-1',
        to: ['leaver'],
        event: 'dm.new',
        ack: false,
        ackTimeoutMs: 5_000,
      });
      expect(results).toEqual([{ userId: 'leaver', status: 'dropped', reason: 'offline' }]);
    } finally {
      close();
    }
  });

  it('batching - sends for one node made in the same turn share one NATS request and reply; every outcome stays exact', async () => {
    const inbox = await Promise.all(
      Array.from({ length: 50 }, async (_, i) => collect(await stack.client(`batched-${i}`, 0))),
    );
    const spy = await stack.connect('batch-spy');
    let nodeRequests = 0;
    spy.subscribe('push.v1.node.edge-1', {
      callback: () => {
        nodeRequests++;
      },
    });
    await spy.flush();
    const { router, close } = await frozenRouter();
    try {
      const sends = Array.from({ length: 60 }, (_, i) =>
        router.send({
          id: `b-${i}`,
          to: [`batched-${i}`],
          event: 'dm.new',
          data: { i },
          ack: false,
          ackTimeoutMs: 5_000,
        }),
      );
      const results = (await Promise.all(sends)).map((r) => r[0]);
      expect(results.slice(0, 50).every((r) => r?.status === 'delivered')).toBe(true);
      // Ten of them have no connection anywhere.
      expect(
        results.slice(50).every((r) => r?.status === 'dropped' && r.reason === 'offline'),
      ).toBe(true);
      await waitFor(() =>
        inbox.every((got, i) => got.length === 1 && (got[0]!.data as { i: number }).i === i),
      );
      await spy.flush();
      expect(router.batching.deliveries).toBe(50);
      expect(router.batching.requests).toBe(1);
      expect(nodeRequests).toBe(1);
    } finally {
      close();
    }
  });
});
