/**
 * `POST /v1/messages` and `POST /v1/broadcast` through the real app over fakes and
 * `inject()`: validation names the field, every failure of a dependency has its exact
 * answer, and idempotency keys are claimed, replayed, released or kept as the route says.
 */
import { ClosedConnectionError, TimeoutError } from '@nats-io/transport-node';
import { apiKeyIdOf } from '@switchboard/http';
import { Subjects } from '@switchboard/protocol';
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { DeliveryRouter } from '../../src/delivery-router.js';
import {
  API_KEY,
  FakeFallback,
  FakeNats,
  FakeNodes,
  FakePresence,
  FakeStatusSink,
  fakeApp,
  log,
  SECOND_API_KEY,
} from './fakes.js';

type App = Awaited<ReturnType<typeof fakeApp>>;

const headers = { 'content-type': 'application/json', authorization: `Bearer ${API_KEY}` };
const KEY_ID = apiKeyIdOf(API_KEY);
const error = (code: string, message: string) => ({ error: { code, message } });
/** Conditions here hold within a few event-loop turns: poll often. */
const POLL = { interval: 2 };
const UUID_V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

/** Reuses one app per describe; clears what the fakes recorded before each test. */
function useApp(options: Parameters<typeof fakeApp>[0] = {}) {
  const t = {} as App;
  beforeAll(async () => {
    Object.assign(t, await fakeApp(options));
  });
  beforeEach(() => {
    t.router.sent.length = 0;
    t.router.failure = undefined;
    t.nats.published.length = 0;
    t.nats.publishFailure = undefined;
    t.nats.flushFailure = undefined;
    t.idempotency.failure = undefined;
    t.idempotency.commitFailure = undefined;
    t.ready.nats = true;
  });
  afterAll(() => t.app?.close());
  return t;
}

/** POSTs to `url` of `t`'s app with the API key and `extra` headers. */
const poster =
  (t: App, url: string) =>
  (payload: unknown, extra: Record<string, string> = {}) =>
    t.app.inject({
      method: 'POST',
      url,
      headers: { ...headers, ...extra },
      payload: payload as object,
    });

describe('POST /v1/messages - validation', () => {
  const t = useApp();
  const post = poster(t, '/v1/messages');

  it.each<[string, unknown, string, string]>([
    ['missing to', { event: 'e' }, 'body.to', 'Invalid input'],
    [
      'empty recipient list',
      { to: [], event: 'e' },
      'body.to',
      'Too small: expected array to have >=1 items',
    ],
    ['empty user id', { to: '', event: 'e' }, 'body.to', 'user id must not be empty'],
    [
      'user id over 256 bytes',
      { to: 'é'.repeat(129), event: 'e' },
      'body.to',
      'user id must be at most 256 bytes',
    ],
    [
      'a lone surrogate in to',
      '{"to":["ok","a\\ud800"],"event":"e"}',
      'body.to.1',
      'user id must be well-formed Unicode (no lone surrogate)',
    ],
    [
      'a CR LF in to (its NATS header would stall a fallback)',
      '{"to":"a\\r\\nb","event":"e","fallback":{"title":"t"}}',
      'body.to',
      'user id must not contain control characters',
    ],
    [
      'missing event',
      { to: 'u' },
      'body.event',
      'Invalid input: expected string, received undefined',
    ],
    [
      'reserved event connect',
      { to: 'u', event: 'connect' },
      'body.event',
      'event name is reserved by Socket.IO',
    ],
    [
      'reserved event disconnect',
      { to: 'u', event: 'disconnect' },
      'body.event',
      'event name is reserved by Socket.IO',
    ],
    [
      'reserved event error',
      { to: 'u', event: 'error' },
      'body.event',
      'event name is reserved by Socket.IO',
    ],
    [
      'event with spaces',
      { to: 'u', event: 'dm new' },
      'body.event',
      'event must start with a letter or digit and use [A-Za-z0-9._:/-]',
    ],
    [
      'ack timeout too small',
      { to: 'u', event: 'e', ack: true, ackTimeoutMs: 5 },
      'body.ackTimeoutMs',
      'Too small: expected number to be >=100',
    ],
    [
      'ack timeout too large',
      { to: 'u', event: 'e', ack: true, ackTimeoutMs: 600_000 },
      'body.ackTimeoutMs',
      'Too big: expected number to be <=60000',
    ],
    [
      'unknown field',
      { to: 'u', event: 'e', priority: 'high' },
      'body',
      'Unrecognized key: "priority"',
    ],
    [
      'bad fallback',
      { to: 'u', event: 'e', fallback: { title: 7 } },
      'body.fallback.title',
      'Invalid input: expected string, received number',
    ],
    ['bad id', { to: 'u', event: 'e', id: 'has space' }, 'body.id', 'id must use [A-Za-z0-9._:-]'],
    [
      'more than 10,000 recipients',
      { to: Array.from({ length: 10_001 }, (_, i) => `${i}`), event: 'e' },
      'body.to',
      'Invalid input',
    ],
  ])('validation - %s gets 400 naming the field', async (_name, body, field, message) => {
    const res = await post(body);
    expect(res.statusCode).toBe(400);
    expect(res.json()).toEqual({
      error: {
        code: 'validation_failed',
        message: `invalid body: ${field}: ${message}`,
        details: [{ field, message }],
      },
    });
    expect(t.router.sent).toEqual([]);
  });

  it('validation - an over-long Idempotency-Key is a 400 naming the header', async () => {
    const res = await post({ to: 'x', event: 'a' }, { 'idempotency-key': 'k'.repeat(256) });
    expect(res.statusCode).toBe(400);
    const message = 'Too big: expected string to have <=255 characters';
    expect(res.json()).toEqual({
      error: {
        code: 'validation_failed',
        message: `invalid headers: headers.idempotency-key: ${message}`,
        details: [{ field: 'headers.idempotency-key', message }],
      },
    });
    expect(t.idempotency.claims).toEqual([]);
  });
});

describe('POST /v1/messages - sending', () => {
  const t = useApp({ duplicateWaitMs: 1_000 });
  const post = poster(t, '/v1/messages');

  it('send - the router gets the recipients as a list, an id and the owner; its results are the answer', async () => {
    t.router.answer = (userId) =>
      userId === 'b'
        ? { userId, status: 'fallback', reason: 'offline' }
        : { userId, status: 'delivered', connections: 2 };
    try {
      const res = await post({
        to: ['a', 'b'],
        event: 'dm.new',
        data: { n: 1 },
        fallback: { title: 't' },
      });
      expect(res.statusCode).toBe(200);
      const body = res.json();
      expect(body.id).toMatch(UUID_V7);
      expect(body.results).toEqual([
        { userId: 'a', status: 'delivered', connections: 2 },
        { userId: 'b', status: 'fallback', reason: 'offline' },
      ]);
      expect(t.router.sent).toEqual([
        {
          id: body.id,
          owner: KEY_ID,
          to: ['a', 'b'],
          event: 'dm.new',
          data: { n: 1 },
          ack: false,
          ackTimeoutMs: expect.any(Number),
          fallback: { title: 't' },
        },
      ]);
      const single = await post({ to: 'solo', event: 'e', id: 'my-id' });
      expect(single.json()).toEqual({
        id: 'my-id',
        results: [{ userId: 'solo', status: 'delivered', connections: 2 }],
      });
      expect(t.router.sent[1]).toMatchObject({ id: 'my-id', to: ['solo'] });
    } finally {
      t.router.answer = (userId) => ({ userId, status: 'delivered', connections: 1 });
    }
  });

  it('send - NATS unreachable: 503 with Retry-After at once, nothing claimed or routed', async () => {
    t.ready.nats = false;
    const res = await post({ to: 'u', event: 'e', id: 'while-down' });
    expect(res.statusCode).toBe(503);
    expect(res.headers['retry-after']).toBe('1');
    expect(res.json()).toEqual(error('unavailable', 'NATS is unreachable, retry later'));
    expect(t.router.sent).toEqual([]);
    expect(t.idempotency.claims).not.toContainEqual(
      expect.objectContaining({ key: `${KEY_ID}:while-down` }),
    );
  });

  it('send - the router failing (presence unreadable) is a 503 with Retry-After, no internals', async () => {
    t.router.failure = new TimeoutError();
    const res = await post({ to: 'u', event: 'e' });
    expect(res.statusCode).toBe(503);
    expect(res.headers['retry-after']).toBe('1');
    expect(res.json()).toEqual(error('unavailable', 'message routing is unavailable, retry later'));
  });

  it('send - a message larger than NATS carries is a 413 from the router, before anything is sent', async () => {
    // The real router over fake transports, with a small max_payload.
    const nats = new FakeNats();
    nats.info = { max_payload: 65_536 };
    const presence = new FakePresence().connect('u', 'n1');
    const nodes = new FakeNodes().node('n1', { connections: { u: 1 } });
    const fallback = new FakeFallback();
    const status = new FakeStatusSink();
    const router = new DeliveryRouter({
      nc: nats,
      requests: nodes,
      presence,
      fallback,
      status,
      log,
      nodeTimeoutMs: 1_000,
      ackGraceMs: 100,
    });
    const real = await fakeApp({ router, nats });
    try {
      const res = await real.app.inject({
        method: 'POST',
        url: '/v1/messages',
        headers: { ...headers, 'idempotency-key': 'too-big' },
        payload: { to: 'u', event: 'big', data: 'x'.repeat(60_000), fallback: { title: 't' } },
      });
      expect(res.statusCode).toBe(413);
      expect(res.json()).toEqual(
        error(
          'payload_too_large',
          'the message is 60094 bytes serialized; NATS carries at most 49152 for data here',
        ),
      );
      expect(presence.lookups).toEqual([]);
      expect(nodes.requests).toEqual([]);
      expect(fallback.attempts).toEqual([]);
      expect(status.records).toEqual([]);
      expect(nats.published).toEqual([]);
      // Nothing was sent: the key is free for a retry.
      expect(real.idempotency.releases).toEqual([`${KEY_ID}:too-big`]);
      // A message that fits goes through the same router.
      const ok = await real.app.inject({
        method: 'POST',
        url: '/v1/messages',
        headers,
        payload: { to: 'u', event: 'small', data: 'x' },
      });
      expect(ok.json().results).toEqual([{ userId: 'u', status: 'delivered', connections: 1 }]);
    } finally {
      await real.app.close();
    }
  });
});

describe('POST /v1/messages - idempotency', () => {
  const t = useApp({ duplicateWaitMs: 50 });
  const post = poster(t, '/v1/messages');

  it('idempotency - a retry with the same key replays the first answer and routes nothing', async () => {
    const body = { to: 'u', event: 'dm.new', data: { n: 1 } };
    const first = await post(body, { 'idempotency-key': 'k-replay' });
    const again = await post(body, { 'idempotency-key': 'k-replay' });
    expect(first.headers['idempotent-replayed']).toBeUndefined();
    expect(again.statusCode).toBe(200);
    expect(again.headers['idempotent-replayed']).toBe('true');
    expect(again.json()).toEqual(first.json());
    expect(t.router.sent).toHaveLength(1);
    // Scoped to the API key; the wait bound is the route's own.
    expect(t.idempotency.claims.at(-1)).toMatchObject({
      key: `${KEY_ID}:k-replay`,
      waitTimeoutMs: 50,
    });
    expect(t.idempotency.commits.at(-1)).toEqual({
      key: `${KEY_ID}:k-replay`,
      response: first.json(),
    });
  });

  it('idempotency - the body id is the key when no header is given; an acked send waits its ack timeout longer', async () => {
    const body = { id: 'msg-42', to: 'u', event: 'e', ack: true, ackTimeoutMs: 2_000 };
    const a = await post(body);
    const b = await post(body);
    expect(b.json()).toEqual(a.json());
    expect(a.json().id).toBe('msg-42');
    expect(b.headers['idempotent-replayed']).toBe('true');
    expect(t.idempotency.claims.at(-1)).toMatchObject({
      key: `${KEY_ID}:msg-42`,
      waitTimeoutMs: 2_050,
    });
  });

  it('idempotency - another API key with the same key sends on its own', async () => {
    const body = { to: 'u', event: 'e' };
    await post(body, { 'idempotency-key': 'shared' });
    const other = await post(body, {
      'idempotency-key': 'shared',
      authorization: `Bearer ${SECOND_API_KEY}`,
    });
    expect(other.headers['idempotent-replayed']).toBeUndefined();
    expect(t.router.sent).toHaveLength(2);
  });

  it('idempotency - reusing a key for a different request is a 409 conflict', async () => {
    await post({ to: 'x', event: 'a' }, { 'idempotency-key': 'k-reuse' });
    const res = await post({ to: 'y', event: 'a' }, { 'idempotency-key': 'k-reuse' });
    expect(res.statusCode).toBe(409);
    expect(res.headers['retry-after']).toBeUndefined();
    expect(res.json()).toEqual(
      error('conflict', 'this idempotency key was used for a different request'),
    );
    expect(t.router.sent).toHaveLength(1);
  });

  it('idempotency - a duplicate that outwaits a first request still running is a 409 with Retry-After', async () => {
    const body = { to: 'u', event: 'e' };
    const release = t.router.hold();
    const first = post(body, { 'idempotency-key': 'k-running' });
    await vi.waitFor(() => expect(t.router.sent).toHaveLength(1), POLL);
    // The duplicate waits duplicateWaitMs (50 ms here) for the first answer, then gives up.
    const res = await post(body, { 'idempotency-key': 'k-running' });
    release();
    expect(res.statusCode).toBe(409);
    expect(res.headers['retry-after']).toBe('1');
    expect(res.json()).toEqual(
      error('conflict', 'a request with this idempotency key is still running'),
    );
    expect((await first).statusCode).toBe(200);
    expect(t.router.sent).toHaveLength(1);
  });

  it('idempotency - concurrent duplicates route once and all get the first answer', async () => {
    const body = { to: 'u', event: 'e' };
    const release = t.router.hold();
    const first = post(body, { 'idempotency-key': 'k-concurrent' });
    await vi.waitFor(() => expect(t.router.sent).toHaveLength(1), POLL);
    const second = post(body, { 'idempotency-key': 'k-concurrent' });
    await vi.waitFor(
      () =>
        expect(t.idempotency.claims.filter((c) => c.key.endsWith(':k-concurrent'))).toHaveLength(2),
      POLL,
    );
    release();
    const [a, b] = await Promise.all([first, second]);
    expect([a.statusCode, b.statusCode]).toEqual([200, 200]);
    expect(b.json()).toEqual(a.json());
    expect(b.headers['idempotent-replayed']).toBe('true');
    expect(t.router.sent).toHaveLength(1);
  });

  it('idempotency - the store unreachable is a 503 with Retry-After, and nothing is routed', async () => {
    t.idempotency.failure = new Error('KV: no responders');
    const res = await post({ to: 'u', event: 'e' }, { 'idempotency-key': 'k-down' });
    expect(res.statusCode).toBe(503);
    expect(res.headers['retry-after']).toBe('1');
    expect(res.json()).toEqual(
      error('unavailable', 'idempotency store is unavailable, retry later'),
    );
    expect(t.router.sent).toEqual([]);
  });

  it('idempotency - a router failure releases the key: the retry sends', async () => {
    const body = { to: 'u', event: 'e' };
    t.router.failure = new TimeoutError();
    const failed = await post(body, { 'idempotency-key': 'k-retry' });
    expect(failed.statusCode).toBe(503);
    expect(t.idempotency.releases).toContain(`${KEY_ID}:k-retry`);
    expect(t.idempotency.state(`${KEY_ID}:k-retry`)).toBeUndefined();
    t.router.failure = undefined;
    const retried = await post(body, { 'idempotency-key': 'k-retry' });
    expect(retried.statusCode).toBe(200);
    expect(retried.headers['idempotent-replayed']).toBeUndefined();
    expect(t.router.sent).toHaveLength(2);
  });

  it('idempotency - an answer that cannot be stored is still given (the send happened)', async () => {
    t.idempotency.commitFailure = new Error('KV put failed');
    const res = await post({ to: 'u', event: 'e' }, { 'idempotency-key': 'k-uncommitted' });
    expect(res.statusCode).toBe(200);
    expect(res.json().results).toEqual([{ userId: 'u', status: 'delivered', connections: 1 }]);
  });
});

describe('POST /v1/broadcast', () => {
  const t = useApp({ duplicateWaitMs: 50 });
  const post = poster(t, '/v1/broadcast');

  it('broadcast - one flushed publish on push.v1.broadcast carrying id, event, data and time', async () => {
    const before = Date.now();
    const res = await post({ event: 'system.notice', data: { text: 'maintenance' } });
    expect(res.statusCode).toBe(200);
    const { id } = res.json();
    expect(res.json()).toEqual({ id: expect.any(String) });
    expect(t.nats.published).toHaveLength(1);
    const [msg] = t.nats.published;
    expect(msg!.subject).toBe(Subjects.broadcast);
    const envelope = JSON.parse(msg!.payload);
    expect(envelope).toEqual({
      id,
      event: 'system.notice',
      data: { text: 'maintenance' },
      sentAt: expect.any(Number),
    });
    expect(envelope.sentAt).toBeGreaterThanOrEqual(before);
    expect(t.nats.flushes).toBeGreaterThan(0);
    expect(t.router.sent).toEqual([]);
  });

  it('broadcast - a retry with the same key replays and publishes nothing (own key space)', async () => {
    const a = await post({ event: 'e', id: 'b-1' });
    const b = await post({ event: 'e', id: 'b-1' });
    expect(a.json()).toEqual({ id: 'b-1' });
    expect(b.json()).toEqual({ id: 'b-1' });
    expect(b.headers['idempotent-replayed']).toBe('true');
    expect(t.nats.published).toHaveLength(1);
    expect(t.idempotency.claims.at(-1)).toMatchObject({
      key: `broadcast:${KEY_ID}:b-1`,
      waitTimeoutMs: 50,
    });
  });

  it('broadcast - NATS unreachable: 503 at once', async () => {
    t.ready.nats = false;
    const res = await post({ event: 'e' });
    expect(res.statusCode).toBe(503);
    expect(res.headers['retry-after']).toBe('1');
    expect(res.json()).toEqual(error('unavailable', 'NATS is unreachable, retry later'));
    expect(t.nats.published).toEqual([]);
  });

  it('broadcast - larger than NATS carries is a 413; its key is released', async () => {
    const max = t.nats.info!.max_payload;
    t.nats.info = { max_payload: 1_000 };
    try {
      const res = await post(
        { event: 'big', data: 'x'.repeat(1_000) },
        { 'idempotency-key': 'b-big' },
      );
      expect(res.statusCode).toBe(413);
      expect(res.json()).toEqual(
        error('payload_too_large', 'the broadcast is larger than NATS carries (1000 bytes)'),
      );
      expect(t.nats.published).toEqual([]);
      expect(t.idempotency.releases).toContain(`broadcast:${KEY_ID}:b-big`);
    } finally {
      t.nats.info = { max_payload: max };
    }
  });

  it.each([
    ['the publish', 'publishFailure'],
    ['the flush', 'flushFailure'],
  ] as const)(
    'broadcast - %s failing is a 503; the key stays claimed (it may still go out)',
    async (_name, failure) => {
      t.nats[failure] = new ClosedConnectionError();
      const res = await post({ event: 'e' }, { 'idempotency-key': `b-${failure}` });
      expect(res.statusCode).toBe(503);
      expect(res.headers['retry-after']).toBe('1');
      expect(res.json()).toEqual(error('unavailable', 'broadcast is unavailable, retry later'));
      expect(t.idempotency.state(`broadcast:${KEY_ID}:b-${failure}`)).toBe('pending');
    },
  );

  it('broadcast - validation names the field', async () => {
    const res = await post({ event: 'connect' });
    expect(res.statusCode).toBe(400);
    expect(res.json()).toEqual({
      error: {
        code: 'validation_failed',
        message: 'invalid body: body.event: event name is reserved by Socket.IO',
        details: [{ field: 'body.event', message: 'event name is reserved by Socket.IO' }],
      },
    });
  });
});
