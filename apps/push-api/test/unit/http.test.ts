/**
 * The HTTP layer every push API route shares, through the real app (`buildApp`) over
 * fakes and `inject()`: authentication, unknown routes, body parsing and limits, path
 * errors, the rate limit. Each answer is checked to the status, the JSON body and the
 * headers that matter, and nothing reached a dependency when the request was refused.
 */
import { apiKeyIdOf } from '@switchboard/http';
import type { InjectOptions } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { API_KEY, fakeApp, SECOND_API_KEY } from './fakes.js';

type App = Awaited<ReturnType<typeof fakeApp>>;

const json = { 'content-type': 'application/json' };
const bearer = (key: string) => ({ authorization: `Bearer ${key}` });
const error = (code: string, message: string) => ({ error: { code, message } });

/** One request per route, each valid but for what a test changes. */
const ROUTES: InjectOptions[] = [
  { method: 'POST', url: '/v1/messages', payload: { to: 'u', event: 'e' } },
  { method: 'POST', url: '/v1/broadcast', payload: { event: 'e' } },
  { method: 'GET', url: '/v1/messages/m-1' },
  { method: 'PUT', url: '/v1/users/u/devices/d', payload: { platform: 'webhook', token: 'x' } },
  { method: 'DELETE', url: '/v1/users/u/devices/d' },
  { method: 'GET', url: '/v1/users/u/devices' },
];

describe('push-api HTTP layer', () => {
  let t: App;
  beforeAll(async () => {
    t = await fakeApp({ bodyLimitBytes: 64 * 1024 });
  });
  afterAll(() => t?.app.close());

  const post = (payload: string | Buffer | object, headers: Record<string, string> = {}) =>
    t.app.inject({
      method: 'POST',
      url: '/v1/messages',
      headers: { ...json, ...bearer(API_KEY), ...headers },
      payload,
    });

  it.each([
    ['no Authorization header', {}],
    ['an empty one', { authorization: '' }],
    ['another scheme', { authorization: 'Basic abc' }],
    ['an unknown key', { authorization: 'Bearer nope' }],
    ['a known key with a suffix', { authorization: `Bearer ${API_KEY}x` }],
  ])('auth - %s gets 401 on every route, and nothing is done', async (_name, auth) => {
    for (const route of ROUTES) {
      const res = await t.app.inject({ ...route, headers: { ...json, ...auth } });
      expect([route.url, res.statusCode]).toEqual([route.url, 401]);
      expect(res.headers['content-type']).toMatch(/^application\/json/);
      expect(res.json()).toEqual(error('unauthorized', 'missing or invalid API key'));
    }
    expect(t.router.sent).toEqual([]);
    expect(t.nats.published).toEqual([]);
    expect(t.idempotency.claims).toEqual([]);
  });

  it('auth - every configured key works (rotation), and sends as its own owner', async () => {
    const first = await post({ to: 'u', event: 'e' });
    const second = await post({ to: 'u', event: 'e' }, bearer(SECOND_API_KEY));
    expect([first.statusCode, second.statusCode]).toEqual([200, 200]);
    expect(t.router.sent.slice(-2).map((m) => m.owner)).toEqual([
      apiKeyIdOf(API_KEY),
      apiKeyIdOf(SECOND_API_KEY),
    ]);
  });

  it('routes - an unknown route gets a JSON 404, with or without a key', async () => {
    for (const headers of [{}, bearer(API_KEY)]) {
      const res = await t.app.inject({ method: 'POST', url: '/v1/nope?x=1', headers, payload: {} });
      expect(res.statusCode).toBe(404);
      expect(res.json()).toEqual(error('not_found', 'no route POST /v1/nope'));
    }
  });

  it('routes - a known path with another method is a 404 too (there is no 405)', async () => {
    const res = await t.app.inject({
      method: 'GET',
      url: '/v1/messages',
      headers: bearer(API_KEY),
    });
    expect(res.statusCode).toBe(404);
    expect(res.json()).toEqual(error('not_found', 'no route GET /v1/messages'));
    const del = await t.app.inject({ method: 'DELETE', url: '/v1/broadcast' });
    expect(del.statusCode).toBe(404);
    expect(del.json()).toEqual(error('not_found', 'no route DELETE /v1/broadcast'));
  });

  it('body - malformed JSON gets 400 bad_request', async () => {
    const res = await post('{"to":');
    expect(res.statusCode).toBe(400);
    expect(res.json()).toEqual(
      error('bad_request', "Body is not valid JSON but content-type is set to 'application/json'"),
    );
  });

  it('body - a content type other than JSON gets 415', async () => {
    for (const type of ['text/plain', 'application/x-www-form-urlencoded']) {
      const res = await post('hello', { 'content-type': type });
      expect(res.statusCode).toBe(415);
      expect(res.json()).toEqual(error('unsupported_media_type', 'Unsupported Media Type'));
    }
  });

  it('body - a body over the limit gets 413 on every route with a body', async () => {
    const big = 'x'.repeat(64 * 1024);
    for (const route of ROUTES.filter((r) => r.payload)) {
      const res = await t.app.inject({
        ...route,
        headers: { ...json, ...bearer(API_KEY) },
        payload: { ...(route.payload as object), data: big },
      });
      expect([route.url, res.statusCode]).toEqual([route.url, 413]);
      expect(res.json()).toEqual(error('payload_too_large', 'Request body is too large'));
    }
  });

  it('body - a body that is not UTF-8 gets 400 bad_request', async () => {
    const res = await post(
      Buffer.concat([Buffer.from('{"to":"a'), Buffer.from([0xff]), Buffer.from('","event":"e"}')]),
    );
    expect(res.statusCode).toBe(400);
    expect(res.json()).toEqual(error('bad_request', 'the body is not valid UTF-8'));
  });

  it('body - data nested deeper than 64 levels gets 400 bad_request (a send, a broadcast)', async () => {
    const deep = (n: number) => `${'['.repeat(n)}${']'.repeat(n)}`;
    const nested = error('bad_request', 'the body nests arrays and objects deeper than 64 levels');
    const send = await post(`{"to":"a","event":"e","data":${deep(10_000)}}`);
    expect(send.statusCode).toBe(400);
    expect(send.json()).toEqual(nested);
    const broadcast = await t.app.inject({
      method: 'POST',
      url: '/v1/broadcast',
      headers: { ...json, ...bearer(API_KEY) },
      payload: `{"event":"e","data":${'{"a":'.repeat(10_000)}1${'}'.repeat(10_000)}}`,
    });
    expect(broadcast.statusCode).toBe(400);
    expect(broadcast.json()).toEqual(nested);
    // 63 levels of data (64 with the body itself) are fine.
    expect((await post(`{"to":"a","event":"e","data":${deep(63)}}`)).statusCode).toBe(200);
  });

  it.each([
    [
      'a 1,025-character path parameter',
      `/v1/users/${'a'.repeat(1025)}/devices`,
      414,
      'a path segment is longer than 1024 characters',
    ],
    [
      'a path that is not UTF-8',
      '/v1/messages/%FF',
      400,
      'the path is not valid percent-encoded UTF-8',
    ],
    [
      'a path with an encoded lone surrogate',
      '/v1/users/a%ED%A0%80/devices',
      400,
      'the path is not valid percent-encoded UTF-8',
    ],
  ])('path - %s gets %i bad_request', async (_name, url, status, message) => {
    const res = await t.app.inject({ method: 'GET', url, headers: bearer(API_KEY) });
    expect(res.statusCode).toBe(status);
    expect(res.json()).toEqual(error('bad_request', message));
  });

  it('probes - /healthz and /readyz answer without a key; /readyz follows NATS', async () => {
    expect((await t.app.inject({ url: '/healthz' })).statusCode).toBe(200);
    const ready = await t.app.inject({ url: '/readyz' });
    expect([ready.statusCode, ready.json()]).toEqual([
      200,
      { status: 'ready', checks: { nats: true } },
    ]);
    t.ready.nats = false;
    try {
      const down = await t.app.inject({ url: '/readyz' });
      expect(down.statusCode).toBe(503);
      expect(down.json()).toMatchObject({ checks: { nats: false } });
    } finally {
      t.ready.nats = true;
    }
  });
});

describe('push-api rate limit', () => {
  let t: App;
  beforeAll(async () => {
    t = await fakeApp({ rateLimitPerMinute: 3 });
  });
  afterAll(() => t?.app.close());

  const send = (key = API_KEY) =>
    t.app.inject({
      method: 'POST',
      url: '/v1/messages',
      headers: { ...json, ...bearer(key) },
      payload: { to: 'u', event: 'e' },
    });

  it('rate limit - over the budget of a key gets 429 with Retry-After; another key keeps its own', async () => {
    for (let i = 0; i < 3; i++) expect((await send()).statusCode).toBe(200);
    const limited = await send();
    expect(limited.statusCode).toBe(429);
    expect(limited.headers['retry-after']).toBe('60');
    expect(limited.json()).toEqual(error('rate_limited', 'Rate limit exceeded, retry in 1 minute'));
    expect(t.router.sent).toHaveLength(3);
    expect((await send(SECOND_API_KEY)).statusCode).toBe(200);
    // Unauthenticated requests are refused before they count.
    expect((await send('wrong-wrong-wrong')).statusCode).toBe(401);
    // Probes are never limited.
    for (let i = 0; i < 5; i++)
      expect((await t.app.inject({ url: '/healthz' })).statusCode).toBe(200);
  });
});
