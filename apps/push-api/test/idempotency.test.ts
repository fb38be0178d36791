import { jetstreamManager } from '@nats-io/jetstream';
import { Streams } from '@switchboard/protocol';
import { collect, http, waitFor } from '@switchboard/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { API_KEY, SECOND_API_KEY, Stack } from './support/stack.js';

describe('push-api idempotency', () => {
  let stack: Stack;
  /**
   * Sends a sentinel after the requests under test answered and waits for it: a duplicate
   * delivery of theirs would have been written to the socket before it.
   */
  const sentinel = async (to: string, inbox: Array<{ event: string }>) => {
    await stack.post('/v1/messages', { to, event: 'sentinel' });
    await waitFor(() => inbox.some((m) => m.event === 'sentinel'));
  };
  beforeAll(async () => {
    stack = await Stack.start({ edges: 1 });
  });
  afterAll(() => stack?.close());

  it('idempotency - a retry with the same Idempotency-Key returns the first response and sends nothing', async () => {
    const inbox = collect(await stack.client('idem-1', 0));
    const body = { to: 'idem-1', event: 'dm.new', data: { n: 1 } };
    const first = await stack.post('/v1/messages', body, { 'idempotency-key': 'key-1' });
    const firstJson = await first.json();
    expect(firstJson.results[0].status).toBe('delivered');
    const again = await stack.post('/v1/messages', body, { 'idempotency-key': 'key-1' });
    expect(again.status).toBe(200);
    expect(again.headers.get('idempotent-replayed')).toBe('true');
    expect(await again.json()).toEqual(firstJson);
    await sentinel('idem-1', inbox);
    expect(inbox.map((m) => m.event)).toEqual(['dm.new', 'sentinel']);
  });

  it('idempotency - the body id works as the key', async () => {
    const inbox = collect(await stack.client('idem-2', 0));
    const body = { id: 'msg-42', to: 'idem-2', event: 'dm.new', data: { n: 1 } };
    const a = await (await stack.post('/v1/messages', body)).json();
    const b = await (await stack.post('/v1/messages', body)).json();
    expect(b).toEqual(a);
    expect(a.id).toBe('msg-42');
    await sentinel('idem-2', inbox);
    expect(inbox.map((m) => m.event)).toEqual(['dm.new', 'sentinel']);
  });

  it('idempotency - concurrent duplicates send once and all get the same answer', async () => {
    const inbox = collect(await stack.client('idem-3', 0), { ack: true });
    const body = { to: 'idem-3', event: 'dm.new', data: { n: 1 }, ack: true, ackTimeoutMs: 1_000 };
    const responses = await Promise.all(
      Array.from({ length: 8 }, () =>
        stack.post('/v1/messages', body, { 'idempotency-key': 'key-concurrent' }),
      ),
    );
    const bodies = await Promise.all(responses.map((r) => r.json()));
    expect(responses.map((r) => r.status)).toEqual(Array(8).fill(200));
    expect(new Set(bodies.map((b) => JSON.stringify(b))).size).toBe(1);
    await waitFor(() => inbox.length >= 1);
    await sentinel('idem-3', inbox);
    expect(inbox.map((m) => m.event)).toEqual(['dm.new', 'sentinel']);
  });

  it('per key - idempotency keys, message status and fallback hand-offs are scoped to the API key', async () => {
    const inbox = collect(await stack.client('scoped', 0));
    const as = (key: string) => ({ authorization: `Bearer ${key}` });
    const body = { to: 'scoped', event: 'dm.new', data: { n: 1 } };
    const a = await stack.post('/v1/messages', body, {
      ...as(API_KEY),
      'idempotency-key': 'shared',
    });
    const b = await stack.post('/v1/messages', body, {
      ...as(SECOND_API_KEY),
      'idempotency-key': 'shared',
    });
    // The second key's request is its own: sent, not a replay of the first key's.
    expect(b.headers.get('idempotent-replayed')).toBeNull();
    const [aJson, bJson] = [await a.json(), await b.json()];
    expect(bJson.id).not.toBe(aJson.id);
    await waitFor(() => inbox.length === 2);
    // Each key reads its own message's status; the other key's is not found.
    const status = async (id: string, key: string) =>
      (await http(`${stack.apiUrl}/v1/messages/${id}`, { headers: as(key) })).status;
    await waitFor(async () => (await status(aJson.id, API_KEY)) === 200);
    expect(await status(aJson.id, SECOND_API_KEY)).toBe(404);
    await waitFor(async () => (await status(bJson.id, SECOND_API_KEY)) === 200);
    expect(await status(bJson.id, API_KEY)).toBe(404);
    // The same message id from both keys to an offline user: two hand-offs, not one deduped.
    const jsm = await jetstreamManager(await stack.connect('per-key-audit'));
    const before = (await jsm.streams.info(Streams.fallback)).state.messages;
    const offline = {
      id: 'same-id-both-keys',
      to: 'scoped-offline',
      event: 'dm.new',
      fallback: { title: 't', body: 'b' },
    };
    for (const key of [API_KEY, SECOND_API_KEY]) {
      const res = await (await stack.post('/v1/messages', offline, as(key))).json();
      expect(res.results[0]).toMatchObject({ status: 'fallback', reason: 'offline' });
    }
    expect((await jsm.streams.info(Streams.fallback)).state.messages).toBe(before + 2);
  });
});
