/**
 * DeliveryRouter's outcome logic over in-memory presence, nodes, fallback queue and status
 * sink: per recipient, what is delivered, handed to OS push (and why) or dropped, and what
 * each dependency was asked on the way. The same logic against real edges and a real
 * nats-server is in the integration tests (routing, ack, mirror, deadline).
 */
import { type SendRecord, statusSubject } from '@switchboard/protocol';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import {
  chunkByBytes,
  DeliveryRouter,
  type DeliveryRouterOptions,
  MessageTooLargeError,
  type OutgoingMessage,
} from '../../src/delivery-router.js';
import { createRouterMetrics } from '../../src/metrics.js';
import {
  FakeFallback,
  FakeMirror,
  FakeNats,
  FakeNodes,
  FakePresence,
  FakeStatusSink,
  log,
} from './fakes.js';

const NODE_TIMEOUT_MS = 40;
const ACK_GRACE_MS = 20;

function setup(options: Partial<DeliveryRouterOptions> = {}) {
  const nats = new FakeNats();
  const presence = new FakePresence();
  const mirror = new FakeMirror();
  const nodes = new FakeNodes();
  const fallback = new FakeFallback();
  const status = new FakeStatusSink();
  const router = new DeliveryRouter({
    nc: nats,
    requests: nodes,
    presence,
    mirror,
    fallback,
    status,
    log,
    nodeTimeoutMs: NODE_TIMEOUT_MS,
    ackGraceMs: ACK_GRACE_MS,
    ...options,
  });
  return { router, nats, presence, mirror, nodes, fallback, status };
}

const message = (m: Partial<OutgoingMessage> & { to: string[] }): OutgoingMessage => ({
  id: 'm-1',
  event: 'dm.new',
  data: { n: 1 },
  ack: false,
  ackTimeoutMs: 30_000,
  ...m,
});

const FALLBACK = { title: 'New message' };

/** The send records published at once (not batched) on the message's status subject. */
const publishedRecords = (nats: FakeNats, id = 'm-1'): SendRecord[] =>
  nats.published.filter((p) => p.subject === statusSubject(id)).map((p) => JSON.parse(p.payload));

describe('DeliveryRouter', () => {
  it('delivered - one request to the owning node; the send record goes to the batched sink', async () => {
    const t = setup();
    t.presence.connect('u', 'n1');
    t.nodes.node('n1', { connections: { u: 2 } });
    const before = Date.now();
    expect(await t.router.send(message({ to: ['u'] }))).toEqual([
      { userId: 'u', status: 'delivered', connections: 2 },
    ]);
    expect(t.nodes.requests).toEqual([
      {
        nodeId: 'n1',
        timeoutMs: NODE_TIMEOUT_MS,
        batch: false,
        bytes: expect.any(Number),
        deliveries: [
          {
            id: 'm-1',
            event: 'dm.new',
            sentAt: expect.any(Number),
            userIds: ['u'],
            dataJson: '{"n":1}',
          },
        ],
      },
    ]);
    expect(t.presence.lookups).toEqual([['u']]);
    expect(t.status.records).toEqual([
      {
        kind: 'send',
        id: 'm-1',
        event: 'dm.new',
        acceptedAt: expect.any(Number),
        finishedAt: expect.any(Number),
        ack: false,
        recipients: [{ userId: 'u', status: 'delivered', connections: 2, nodes: ['n1'] }],
      },
    ]);
    expect(t.status.records[0]!.acceptedAt).toBeGreaterThanOrEqual(before);
    expect(t.nats.published).toEqual([]);
    expect(t.fallback.attempts).toEqual([]);
  });

  it('offline - a user on no node is dropped offline without fallback; nothing is sent', async () => {
    const t = setup();
    expect(await t.router.send(message({ to: ['nobody'] }))).toEqual([
      { userId: 'nobody', status: 'dropped', reason: 'offline' },
    ]);
    expect(t.nodes.requests).toEqual([]);
    expect(t.fallback.attempts).toEqual([]);
    expect(t.status.records[0]!.recipients).toEqual([
      { userId: 'nobody', status: 'dropped', reason: 'offline', nodes: [] },
    ]);
  });

  it('recipients - duplicates collapse, order is kept, one request per node', async () => {
    const t = setup();
    t.presence.connect('a', 'n1').connect('b', 'n1').connect('c', 'n2');
    t.nodes.node('n1', { connections: { a: 1, b: 1 } }).node('n2', { connections: { c: 3 } });
    expect(await t.router.send(message({ to: ['b', 'c', 'a', 'b'] }))).toEqual([
      { userId: 'b', status: 'delivered', connections: 1 },
      { userId: 'c', status: 'delivered', connections: 3 },
      { userId: 'a', status: 'delivered', connections: 1 },
    ]);
    expect(t.nodes.requests.map((r) => [r.nodeId, r.deliveries[0]!.userIds])).toEqual([
      ['n1', ['b', 'a']],
      ['n2', ['c']],
    ]);
  });

  it('partial node failure - a user on two nodes is delivered by the one that answered; users only on the dead one go to fallback', async () => {
    const t = setup();
    t.presence.connect('a', 'n1', 'n2').connect('b', 'n2');
    t.nodes.node('n1', { connections: { a: 1 } }).node('n2', 'no-responders');
    const results = await t.router.send(
      message({ to: ['a', 'b', 'c'], owner: 'key-1', fallback: FALLBACK }),
    );
    expect(results).toEqual([
      { userId: 'a', status: 'delivered', connections: 1 },
      { userId: 'b', status: 'fallback', reason: 'node-unavailable' },
      { userId: 'c', status: 'fallback', reason: 'offline' },
    ]);
    expect(t.nodes.requests.map((r) => [r.nodeId, r.deliveries[0]!.userIds])).toEqual([
      ['n1', ['a']],
      ['n2', ['a', 'b']],
    ]);
    expect(t.fallback.stored).toEqual([
      {
        id: 'm-1',
        owner: 'key-1',
        userId: 'b',
        event: 'dm.new',
        data: { n: 1 },
        sentAt: expect.any(Number),
        reason: 'node-unavailable',
        notification: FALLBACK,
      },
      expect.objectContaining({ userId: 'c', reason: 'offline' }),
    ]);
    // A send with fallbacks is recorded at once (before OS push records), not batched.
    expect(t.status.records).toEqual([]);
    const [record] = publishedRecords(t.nats);
    expect(record).toMatchObject({ kind: 'send', id: 'm-1', owner: 'key-1' });
    expect(record!.recipients).toEqual([
      { userId: 'a', status: 'delivered', connections: 1, nodes: ['n1', 'n2'] },
      { userId: 'b', status: 'fallback', reason: 'node-unavailable', nodes: ['n2'] },
      { userId: 'c', status: 'fallback', reason: 'offline', nodes: [] },
    ]);
  });

  it('partial node failure - without fallback the unreachable user is dropped node-unavailable, the offline one offline', async () => {
    const t = setup();
    t.presence.connect('b', 'n2');
    t.nodes.node('n2', 'no-responders');
    expect(await t.router.send(message({ to: ['b', 'c'] }))).toEqual([
      { userId: 'b', status: 'dropped', reason: 'node-unavailable' },
      { userId: 'c', status: 'dropped', reason: 'offline' },
    ]);
    expect(t.fallback.attempts).toEqual([]);
  });

  it('timeout - a node that does not answer within nodeTimeoutMs makes its users node-unavailable', async () => {
    const t = setup();
    t.presence.connect('slow', 'n1');
    t.nodes.node('n1', 'timeout');
    expect(await t.router.send(message({ to: ['slow'], fallback: FALLBACK }))).toEqual([
      { userId: 'slow', status: 'fallback', reason: 'node-unavailable' },
    ]);
    expect(t.nodes.requests[0]!.timeoutMs).toBe(NODE_TIMEOUT_MS);
  });

  it('ack - delivered counts the connections that acked; the request goes alone and waits ackTimeoutMs + ackGraceMs', async () => {
    const t = setup();
    t.presence.connect('u', 'n1');
    t.nodes.node('n1', { connections: { u: 3 }, acks: { u: 1 } });
    const results = await t.router.send(message({ to: ['u'], ack: true, ackTimeoutMs: 100 }));
    expect(results).toEqual([{ userId: 'u', status: 'delivered', connections: 1 }]);
    expect(t.nodes.requests).toEqual([
      expect.objectContaining({ nodeId: 'n1', timeoutMs: 100 + ACK_GRACE_MS, batch: false }),
    ]);
    expect(t.nodes.requests[0]!.deliveries[0]!.ackTimeoutMs).toBe(100);
    expect(t.status.records[0]).toMatchObject({ ack: true });
  });

  it('ack - reached but no ack is fallback ack-timeout; an offline user is fallback offline', async () => {
    const t = setup({ sendTimeoutMs: 5_000 });
    t.presence.connect('silent', 'n1');
    t.nodes.node('n1', { connections: { silent: 1 }, acks: { silent: 0 } });
    const before = Date.now();
    const results = await t.router.send(
      message({ to: ['silent', 'gone'], ack: true, ackTimeoutMs: 100, fallback: FALLBACK }),
    );
    expect(results).toEqual([
      { userId: 'silent', status: 'fallback', reason: 'ack-timeout' },
      { userId: 'gone', status: 'fallback', reason: 'offline' },
    ]);
    expect(t.fallback.stored.map((m) => [m.userId, m.reason])).toEqual([
      ['silent', 'ack-timeout'],
      ['gone', 'offline'],
    ]);
    // One deadline per send: its send timeout beyond its ack wait.
    for (const { deadline } of t.fallback.attempts) {
      expect(deadline).toBeGreaterThanOrEqual(before + 5_000 + 100);
      expect(deadline).toBeLessThanOrEqual(Date.now() + 5_000 + 100);
    }
  });

  it('ack - a node that never replies within the ack wait is node-unavailable, not ack-timeout', async () => {
    const t = setup();
    t.presence.connect('u', 'n1');
    t.nodes.node('n1', 'timeout');
    expect(
      await t.router.send(message({ to: ['u'], ack: true, ackTimeoutMs: 10, fallback: FALLBACK })),
    ).toEqual([{ userId: 'u', status: 'fallback', reason: 'node-unavailable' }]);
    expect(t.nodes.requests[0]!.timeoutMs).toBe(10 + ACK_GRACE_MS);
  });

  it('ack - one acking node settles a recipient: the answer does not wait for its other node', async () => {
    const t = setup();
    t.presence.connect('half', 'n1', 'n2');
    t.nodes.node('n1', { connections: { half: 1 } }).node('n2', 'timeout');
    const results = await t.router.send(message({ to: ['half'], ack: true, ackTimeoutMs: 60_000 }));
    expect(results).toEqual([{ userId: 'half', status: 'delivered', connections: 1 }]);
    // n2's request is still waiting out its 60 s: the router answered without it.
    expect(t.nodes.pending).toBe(1);
  });

  it('dead node - no responders is a fallback at once, beside a user who acked', async () => {
    const t = setup();
    t.presence.connect('ghost', 'n3').connect('alive', 'n1');
    t.nodes.node('n1', { connections: { alive: 1 } }); // n3 serves nobody
    const results = await t.router.send(
      message({ to: ['ghost', 'alive'], ack: true, ackTimeoutMs: 60_000, fallback: FALLBACK }),
    );
    expect(results).toEqual([
      { userId: 'ghost', status: 'fallback', reason: 'node-unavailable' },
      { userId: 'alive', status: 'delivered', connections: 1 },
    ]);
    expect(t.nodes.pending).toBe(0);
  });

  it('dead lease - a node whose lease lapsed is not asked: the user is offline', async () => {
    const t = setup();
    t.presence.connect('u', 'n1');
    t.presence.dead.add('n1');
    t.mirror.connect('u', 'n1');
    expect(await t.router.send(message({ to: ['u'] }))).toEqual([
      { userId: 'u', status: 'dropped', reason: 'offline' },
    ]);
    expect(t.nodes.requests).toEqual([]);
    // The mirror's entry had no live node: KV was read before calling the user offline.
    expect(t.presence.lookups).toEqual([['u']]);
  });

  it('mirror - users it vouches for cost no presence read', async () => {
    const t = setup();
    t.mirror.connect('u', 'n1');
    t.nodes.node('n1', { connections: { u: 1 } });
    expect(await t.router.send(message({ to: ['u'] }))).toEqual([
      { userId: 'u', status: 'delivered', connections: 1 },
    ]);
    expect(t.presence.lookups).toEqual([]);
    t.mirror.caughtUp = false;
    t.presence.connect('u', 'n1');
    await t.router.send(message({ to: ['u'] }));
    expect(t.presence.lookups).toEqual([['u']]);
  });

  it('mirror - a user who moved since the mirror heard is read again and delivered on the new node only', async () => {
    const t = setup();
    t.mirror.connect('mover', 'n1');
    t.presence.connect('mover', 'n2');
    t.nodes.node('n1', { connections: {} }).node('n2', { connections: { mover: 1 } });
    expect(await t.router.send(message({ to: ['mover'] }))).toEqual([
      { userId: 'mover', status: 'delivered', connections: 1 },
    ]);
    expect(t.nodes.requests.map((r) => r.nodeId)).toEqual(['n1', 'n2']);
    expect(t.presence.lookups).toEqual([['mover']]);
    expect(t.status.records[0]!.recipients[0]!.nodes).toEqual(['n1', 'n2']);
  });

  it('mirror - when the re-read fails, the user is node-unavailable, never offline', async () => {
    const t = setup();
    t.mirror.connect('u', 'n1');
    t.nodes.node('n1', { connections: {} });
    t.presence.failure = new Error('KV down');
    expect(await t.router.send(message({ to: ['u'] }))).toEqual([
      { userId: 'u', status: 'dropped', reason: 'node-unavailable' },
    ]);
  });

  it('presence unreadable - the send rejects before anything is sent or recorded', async () => {
    const t = setup();
    t.presence.failure = new Error('KV down');
    await expect(t.router.send(message({ to: ['u'], fallback: FALLBACK }))).rejects.toBe(
      t.presence.failure,
    );
    expect(t.nodes.requests).toEqual([]);
    expect(t.fallback.attempts).toEqual([]);
    expect(t.status.records).toEqual([]);
    expect(t.nats.published).toEqual([]);
  });

  it('too large - data that cannot fit in one NATS message is refused before any lookup', async () => {
    const t = setup();
    t.nats.info = { max_payload: 65_536 };
    const send = t.router.send(message({ to: ['u'], data: 'x'.repeat(60_000) }));
    await expect(send).rejects.toBeInstanceOf(MessageTooLargeError);
    await expect(send).rejects.toThrow(
      'the message is 60064 bytes serialized; NATS carries at most 49152 for data here',
    );
    expect(t.presence.lookups).toEqual([]);
    expect(t.nodes.requests).toEqual([]);
  });

  it('batching - plain deliveries for one node in the same turn share one request; a reply that does not decode fails each', async () => {
    const t = setup();
    t.presence.connect('a', 'n1').connect('b', 'n1');
    t.nodes.node('n1', { connections: { a: 1, b: 2 } });
    const [one, two] = await Promise.all([
      t.router.send(message({ id: 'm-a', to: ['a'] })),
      t.router.send(message({ id: 'm-b', to: ['b'] })),
    ]);
    expect([one, two]).toEqual([
      [{ userId: 'a', status: 'delivered', connections: 1 }],
      [{ userId: 'b', status: 'delivered', connections: 2 }],
    ]);
    expect(t.nodes.requests).toHaveLength(1);
    expect(t.nodes.requests[0]).toMatchObject({ nodeId: 'n1', batch: true });
    expect(t.nodes.requests[0]!.deliveries.map((d) => [d.id, d.userIds])).toEqual([
      ['m-a', ['a']],
      ['m-b', ['b']],
    ]);

    t.nodes.node('n1', 'bad-reply');
    const failed = await Promise.all([
      t.router.send(message({ id: 'm-c', to: ['a'] })),
      t.router.send(message({ id: 'm-d', to: ['b'] })),
    ]);
    expect(failed).toEqual([
      [{ userId: 'a', status: 'dropped', reason: 'node-unavailable' }],
      [{ userId: 'b', status: 'dropped', reason: 'node-unavailable' }],
    ]);
  });

  it('split - a recipient list past max_payload goes in several requests; one failing fails only its users', async () => {
    const t = setup();
    t.nats.info = { max_payload: 17_000 };
    const users = Array.from(
      { length: 100 },
      (_, i) => `${String(i).padStart(3, '0')}-${'u'.repeat(240)}`,
    );
    for (const u of users) t.presence.connect(u, 'n1');
    const last = users.at(-1)!;
    t.nodes.node('n1', (req) =>
      req.deliveries[0]!.userIds.includes(last)
        ? 'no-responders'
        : { connections: Object.fromEntries(users.map((u) => [u, 1])) },
    );
    const results = await t.router.send(message({ to: users }));
    const requests = t.nodes.to('n1');
    expect(requests).toHaveLength(2);
    for (const r of requests) expect(r.bytes).toBeLessThanOrEqual(17_000);
    expect(requests.flatMap((r) => r.deliveries[0]!.userIds)).toEqual(users);
    const failedUsers = new Set(requests[1]!.deliveries[0]!.userIds);
    expect(failedUsers.has(last)).toBe(true);
    expect(results).toEqual(
      users.map((userId) =>
        failedUsers.has(userId)
          ? { userId, status: 'dropped', reason: 'node-unavailable' }
          : { userId, status: 'delivered', connections: 1 },
      ),
    );
  });

  it('fallback failing - a hand-off JetStream never acked is dropped fallback-failed; the others are handed over', async () => {
    const t = setup();
    t.fallback.failing.add('b');
    expect(await t.router.send(message({ to: ['a', 'b', 'c'], fallback: FALLBACK }))).toEqual([
      { userId: 'a', status: 'fallback', reason: 'offline' },
      { userId: 'b', status: 'dropped', reason: 'fallback-failed' },
      { userId: 'c', status: 'fallback', reason: 'offline' },
    ]);
    expect(t.fallback.stored.map((m) => m.userId)).toEqual(['a', 'c']);
    expect(publishedRecords(t.nats)[0]!.recipients.map((r) => r.reason)).toEqual([
      'offline',
      'fallback-failed',
      'offline',
    ]);
  });

  it('deadline - hand-offs not done by the send deadline: the one tried fails, the ones not reached are dropped deadline', async () => {
    const t = setup({ sendTimeoutMs: 30, fallbackConcurrency: 1 });
    t.fallback.mode = 'hang';
    const before = Date.now();
    const results = await t.router.send(message({ to: ['a', 'b', 'c'], fallback: FALLBACK }));
    expect(results).toEqual([
      { userId: 'a', status: 'dropped', reason: 'fallback-failed' },
      { userId: 'b', status: 'dropped', reason: 'deadline' },
      { userId: 'c', status: 'dropped', reason: 'deadline' },
    ]);
    expect(t.fallback.attempts.map((a) => a.message.userId)).toEqual(['a']);
    expect(t.fallback.attempts[0]!.deadline).toBeGreaterThanOrEqual(before + 30);
    expect(Date.now()).toBeGreaterThanOrEqual(t.fallback.attempts[0]!.deadline);
  });

  it('status - without a batched sink every send record is published at once', async () => {
    const t = setup({ status: undefined });
    t.presence.connect('u', 'n1');
    t.nodes.node('n1', { connections: { u: 1 } });
    await t.router.send(message({ to: ['u'] }));
    expect(publishedRecords(t.nats).map((r) => r.recipients)).toEqual([
      [{ userId: 'u', status: 'delivered', connections: 1, nodes: ['n1'] }],
    ]);
  });

  it('metrics - recipients by outcome, node requests by result, rechecks', async () => {
    const registry = new Registry();
    const t = setup({ metrics: createRouterMetrics(registry) });
    t.presence.connect('a', 'n1').connect('b', 'n2');
    t.nodes.node('n1', { connections: { a: 1 } }).node('n2', 'no-responders');
    t.mirror.connect('m', 'n1');
    await t.router.send(message({ to: ['a', 'b', 'c', 'm'], fallback: FALLBACK }));
    const text = await registry.metrics();
    const value = (line: string) => Number(new RegExp(`^${line} (\\d+)$`, 'm').exec(text)?.[1]);
    expect(value('switchboard_push_recipients_total\\{status="delivered",reason=""\\}')).toBe(1);
    expect(value('switchboard_push_recipients_total\\{status="fallback",reason="offline"\\}')).toBe(
      2,
    );
    expect(
      value('switchboard_push_recipients_total\\{status="fallback",reason="node-unavailable"\\}'),
    ).toBe(1);
    expect(value('switchboard_push_node_requests_total\\{outcome="ok"\\}')).toBe(1);
    expect(value('switchboard_push_node_requests_total\\{outcome="failed"\\}')).toBe(1);
    expect(value('switchboard_push_presence_rechecks_total')).toBe(1);
  });
});

describe('chunkByBytes', () => {
  it('fills each chunk up to the budget and keeps order', () => {
    const users = ['aaaa', 'bbbb', 'cccc', 'dddd', 'eeee'];
    // Each user is 7 bytes with its comma, the brackets 2: 16 bytes hold two.
    expect(chunkByBytes(users, 16)).toEqual([['aaaa', 'bbbb'], ['cccc', 'dddd'], ['eeee']]);
    expect(chunkByBytes(users, 1_000)).toEqual([users]);
    expect(chunkByBytes(['too-long-for-any-budget'], 5)).toEqual([['too-long-for-any-budget']]);
    // With a reply allowance per user: 7 + 9 bytes each, so one per 18-byte chunk.
    expect(chunkByBytes(['aaaa', 'bbbb'], 18, 9)).toEqual([['aaaa'], ['bbbb']]);
  });
});
