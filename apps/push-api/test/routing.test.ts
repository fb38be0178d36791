import { jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { FallbackMessage, Streams } from '@switchboard/protocol';
import { collect, http, waitFor } from '@switchboard/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Stack } from './support/stack.js';

/** Counts every message on `push.v1.>` by subject. */
function countSubjects(nc: NatsConnection): Map<string, number> {
  const counts = new Map<string, number>();
  nc.subscribe('push.v1.>', {
    callback: (_err, msg) => {
      counts.set(msg.subject, (counts.get(msg.subject) ?? 0) + 1);
    },
  });
  return counts;
}

describe('push-api routing', () => {
  let stack: Stack;
  let spy: NatsConnection;

  beforeAll(async () => {
    stack = await Stack.start({ edges: 2 });
    spy = await stack.connect('spy');
  });
  afterAll(() => stack?.close());

  it('routing - a user on two nodes gets one copy on each; another user on one node gets nothing', async () => {
    const aliceA = collect(await stack.client('alice', 0));
    const aliceB = collect(await stack.client('alice', 1));
    const bob = collect(await stack.client('bob', 0));

    const res = await stack.post('/v1/messages', {
      to: 'alice',
      event: 'dm.new',
      data: { text: 'hi' },
    });
    expect(res.status).toBe(200);
    const body = await res.json();
    expect(body.results).toEqual([{ userId: 'alice', status: 'delivered', connections: 2 }]);

    await waitFor(() => aliceA.length === 1 && aliceB.length === 1);
    expect(aliceA[0]).toMatchObject({
      event: 'dm.new',
      data: { text: 'hi' },
      meta: { id: body.id },
    });
    expect(aliceB[0]?.meta.id).toBe(body.id);
    // Sentinels sent after the answer (every write for alice happened before the edges
    // answered): once they are in, a stray copy would be too.
    await stack.post('/v1/messages', { to: 'bob', event: 'sentinel' });
    await stack.post('/v1/messages', { to: 'alice', event: 'sentinel' });
    await waitFor(() => bob.length === 1 && aliceA.length === 2 && aliceB.length === 2);
    expect(bob.map((m) => m.event)).toEqual(['sentinel']);
    expect(aliceA.map((m) => m.event)).toEqual(['dm.new', 'sentinel']);
  });

  it('routing - a message to one user crosses only the owning node subject', async () => {
    await stack.client('carol', 1);
    const counts = countSubjects(spy);
    await spy.flush();
    const res = await stack.post('/v1/messages', { to: 'carol', event: 'dm.new', data: 1 });
    expect((await res.json()).results[0].status).toBe('delivered');
    await spy.flush();
    expect(Object.fromEntries(counts)).toEqual({ 'push.v1.node.edge-2': 1 });
  });

  it('routing - a multicast to users on two nodes is two NATS requests, not one per user', async () => {
    const users = ['m1', 'm2', 'm3', 'm4', 'm5', 'm6'];
    const inboxes = await Promise.all(
      users.map(async (u, i) => collect(await stack.client(u, i % 2))),
    );
    const counts = countSubjects(spy);
    await spy.flush();
    const res = await stack.post('/v1/messages', {
      to: users,
      event: 'feed.update',
      data: { n: 1 },
    });
    const body = await res.json();
    expect(body.results.map((r: { status: string }) => r.status)).toEqual(
      users.map(() => 'delivered'),
    );
    await spy.flush();
    expect(Object.fromEntries(counts)).toEqual({
      'push.v1.node.edge-1': 1,
      'push.v1.node.edge-2': 1,
    });
    await waitFor(() => inboxes.every((box) => box.length === 1));
  });

  it('routing - an offline user without fallback is dropped, and nothing is published', async () => {
    const counts = countSubjects(spy);
    await spy.flush();
    const res = await stack.post('/v1/messages', { to: 'nobody', event: 'dm.new', data: {} });
    expect((await res.json()).results).toEqual([
      { userId: 'nobody', status: 'dropped', reason: 'offline' },
    ]);
    await spy.flush();
    expect(counts.size).toBe(0);
  });

  it('routing - an offline user with fallback is queued durably in PUSH_FALLBACK', async () => {
    const res = await stack.post('/v1/messages', {
      to: 'offline-user@example.com',
      event: 'dm.new',
      data: { text: 'are you there?' },
      fallback: { title: 'New message', body: 'are you there?' },
    });
    const body = await res.json();
    expect(body.results).toEqual([
      { userId: 'offline-user@example.com', status: 'fallback', reason: 'offline' },
    ]);

    const jsm = await jetstreamManager(spy);
    const stored = await jsm.streams.getMessage(Streams.fallback, {
      last_by_subj: 'push.v1.fallback.offline-user=40example=2Ecom',
    });
    const msg = FallbackMessage.parse(stored?.json());
    expect(msg).toMatchObject({
      id: body.id,
      userId: 'offline-user@example.com',
      event: 'dm.new',
      data: { text: 'are you there?' },
      reason: 'offline',
      notification: { title: 'New message', body: 'are you there?' },
    });
  });

  it('routing - a user who disconnected is offline again', async () => {
    const socket = await stack.client('dave', 0);
    socket.close();
    await stack.waitForPresence('dave', 0, 0);
    await waitFor(async () => {
      const res = await stack.post('/v1/messages', { to: 'dave', event: 'x', data: 1 });
      return (await res.json()).results[0].status === 'dropped';
    });
  });

  it('metrics - recipients are counted by outcome, node requests by result', async () => {
    const text = await (await http(`${stack.apiUrl}/metrics`)).text();
    expect(text).toMatch(
      /switchboard_push_recipients_total\{status="delivered",reason="",app="push-api"\} [1-9]/,
    );
    expect(text).toMatch(
      /switchboard_push_recipients_total\{status="fallback",reason="offline",app="push-api"\} [1-9]/,
    );
    expect(text).toMatch(
      /switchboard_push_node_requests_total\{outcome="ok",app="push-api"\} [1-9]/,
    );
    expect(text).toMatch(/switchboard_push_send_seconds_count\{app="push-api"\} [1-9]/);
  });
});
