import type { NatsConnection } from '@nats-io/transport-node';
import { collect, http, waitFor } from '@switchboard/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chunkByBytes } from '../src/delivery-router.js';
import { Stack } from './support/stack.js';

describe('push-api and the NATS max_payload', () => {
  let stack: Stack;
  let spy: NatsConnection;
  beforeAll(async () => {
    // A small max_payload makes the limits reachable with small tests.
    stack = await Stack.start({
      edges: 1,
      natsConfig: 'max_payload: 65536',
      env: { BODY_LIMIT_BYTES: String(1024 * 1024) },
    });
    spy = await stack.connect('spy');
  });
  afterAll(() => stack?.close());

  it('payload - data that cannot fit in one NATS message is a 413 before anything is sent', async () => {
    let published = 0;
    spy.subscribe('push.v1.>', {
      callback: () => {
        published++;
      },
    });
    await spy.flush();
    const res = await stack.post('/v1/messages', {
      to: 'u',
      event: 'big',
      data: 'x'.repeat(60_000),
      fallback: { title: 't' },
    });
    expect(res.status).toBe(413);
    const body = await res.json();
    expect(body.error.code).toBe('payload_too_large');
    expect(body.error.message).toMatch(/NATS carries at most/);
    await spy.flush();
    expect(published).toBe(0);
  });

  it('payload - a recipient list too long for one NATS message is split per node, and everyone gets it', async () => {
    const ids = Array.from(
      { length: 300 },
      (_, i) => `${String(i).padStart(3, '0')}-${'u'.repeat(240)}`,
    );
    const inboxes = await Promise.all(ids.map(async (u) => collect(await stack.client(u, 0))));
    const requests: number[] = [];
    spy.subscribe('push.v1.node.>', {
      callback: (_e, m) => {
        requests.push(m.data.length);
      },
    });
    await spy.flush();
    const res = await stack.post('/v1/messages', { to: ids, event: 'feed', data: { v: 1 } });
    const { id, results } = await res.json();
    expect(results.every((r: { status: string }) => r.status === 'delivered')).toBe(true);
    await waitFor(() => inboxes.every((box) => box.length === 1));
    await spy.flush();
    expect(requests.length).toBe(2);
    expect(Math.max(...requests)).toBeLessThanOrEqual(65_536);
    // The status, recorded in several records, lists every recipient.
    const status = await waitFor(async () => {
      const r = await http(`${stack.apiUrl}/v1/messages/${id}`, {
        headers: { authorization: 'Bearer test-api-key-0123456789' },
      });
      const b = r.status === 200 ? await r.json() : null;
      return b?.recipients.length === 300 ? b : null;
    });
    expect(status.recipients.every((r: { status: string }) => r.status === 'delivered')).toBe(true);
  }, 60_000);

  it('payload - a broadcast larger than max_payload is a 413', async () => {
    const res = await stack.post('/v1/broadcast', { event: 'big', data: 'x'.repeat(70_000) });
    expect(res.status).toBe(413);
    expect((await res.json()).error.code).toBe('payload_too_large');
  });

  it('chunkByBytes - fills each chunk up to the budget and keeps order', () => {
    const users = ['aaaa', 'bbbb', 'cccc', 'dddd', 'eeee'];
    // Each user is 7 bytes with its comma, the brackets 2: 16 bytes hold two.
    expect(chunkByBytes(users, 16)).toEqual([['aaaa', 'bbbb'], ['cccc', 'dddd'], ['eeee']]);
    expect(chunkByBytes(users, 1_000)).toEqual([users]);
    expect(chunkByBytes(['too-long-for-any-budget'], 5)).toEqual([['too-long-for-any-budget']]);
  });
});
