import { collect } from '@switchboard/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Stack } from './support/stack.js';

describe('push-api acked delivery and dead nodes', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await Stack.start({ edges: 3 });
  });
  afterAll(() => stack?.close());

  it('ack - a device that acks makes the recipient delivered', async () => {
    collect(await stack.client('acker', 0), { ack: true });
    const res = await stack.post('/v1/messages', {
      to: 'acker',
      event: 'dm.new',
      data: 1,
      ack: true,
      ackTimeoutMs: 2_000,
    });
    expect((await res.json()).results).toEqual([
      { userId: 'acker', status: 'delivered', connections: 1 },
    ]);
  });

  it('ack - one acking device out of two is enough, and the answer does not wait for the other', async () => {
    collect(await stack.client('half', 0), { ack: true });
    collect(await stack.client('half', 1), { ack: false });
    const t0 = Date.now();
    const res = await stack.post('/v1/messages', {
      to: 'half',
      event: 'dm.new',
      data: 1,
      ack: true,
      ackTimeoutMs: 3_000,
    });
    expect((await res.json()).results).toEqual([
      { userId: 'half', status: 'delivered', connections: 1 },
    ]);
    expect(Date.now() - t0).toBeLessThan(2_000);
  });

  it('ack - no ack within ackTimeoutMs goes to fallback with reason ack-timeout', async () => {
    const got = collect(await stack.client('silent', 0), { ack: false });
    const t0 = Date.now();
    const res = await stack.post('/v1/messages', {
      to: 'silent',
      event: 'dm.new',
      data: 1,
      ack: true,
      ackTimeoutMs: 300,
      fallback: { title: 't' },
    });
    const elapsed = Date.now() - t0;
    expect((await res.json()).results).toEqual([
      { userId: 'silent', status: 'fallback', reason: 'ack-timeout' },
    ]);
    expect(got).toHaveLength(1);
    expect(elapsed).toBeGreaterThanOrEqual(300);
  });

  it('dead node - recipients of a node that vanished go to fallback at once, not after a timeout', async () => {
    await stack.client('ghost', 2);
    collect(await stack.client('alive', 0));
    await stack.crashEdge(2);
    const t0 = Date.now();
    const res = await stack.post('/v1/messages', {
      to: ['ghost', 'alive'],
      event: 'dm.new',
      data: 1,
      ack: true,
      ackTimeoutMs: 5_000,
      fallback: { title: 't' },
    });
    const elapsed = Date.now() - t0;
    const { results } = await res.json();
    expect(results).toEqual([
      { userId: 'ghost', status: 'fallback', reason: 'node-unavailable' },
      { userId: 'alive', status: 'delivered', connections: 1 },
    ]);
    // "alive" acks at once; "ghost"'s node answers "no responders" at once.
    expect(elapsed).toBeLessThan(1_000);
  });
});
