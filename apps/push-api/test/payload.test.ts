import type { NatsConnection } from '@nats-io/transport-node';
import { collect, http, waitFor } from '@switchboard/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
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
});
