import type { NatsServer } from '@switchboard/testkit';
import { http, waitFor } from '@switchboard/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SECOND_API_KEY, Stack } from './support/stack.js';

describe('push-api rate limit', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await Stack.start({ edges: 0, env: { RATE_LIMIT_PER_MINUTE: '3' } });
  });
  afterAll(() => stack?.close());

  it('rate limit - over the budget of a key gets 429 with Retry-After; another key keeps its own', async () => {
    const send = (headers: Record<string, string> = {}) =>
      stack.post('/v1/messages', { to: 'u', event: 'e' }, headers);
    for (let i = 0; i < 3; i++) expect((await send()).status).toBe(200);
    const limited = await send();
    expect(limited.status).toBe(429);
    expect(Number(limited.headers.get('retry-after'))).toBeGreaterThan(0);
    expect((await limited.json()).error.code).toBe('rate_limited');
    expect((await send({ authorization: `Bearer ${SECOND_API_KEY}` })).status).toBe(200);
    // Unauthenticated requests are refused before they count.
    expect((await send({ authorization: 'Bearer wrong-wrong-wrong' })).status).toBe(401);
    // Health is never limited.
    for (let i = 0; i < 5; i++) expect((await http(`${stack.apiUrl}/healthz`)).status).toBe(200);
  });
});

describe('push-api without NATS', () => {
  let stack: Stack;
  let nats: NatsServer;
  beforeAll(async () => {
    stack = await Stack.start({ edges: 0 });
    nats = stack.nats;
  });
  afterAll(() => stack?.close());

  it('nats down - sends get 503 with Retry-After at once, /readyz fails, and both recover', async () => {
    await nats.kill();
    await waitFor(async () => (await http(`${stack.apiUrl}/readyz`)).status === 503);
    const t0 = Date.now();
    const res = await stack.post('/v1/messages', { to: 'u', event: 'e' });
    expect(res.status).toBe(503);
    expect(Date.now() - t0).toBeLessThan(500);
    expect(res.headers.get('retry-after')).toBe('1');
    const err = await res.json();
    expect(err.error.code).toBe('unavailable');
    expect(err.error.message).not.toMatch(/stack|Error:/);
    expect((await stack.post('/v1/broadcast', { event: 'e' })).status).toBe(503);

    await nats.restart();
    await waitFor(async () => (await http(`${stack.apiUrl}/readyz`)).status === 200, {
      timeoutMs: 10_000,
    });
    await waitFor(
      async () => (await stack.post('/v1/messages', { to: 'u', event: 'e' })).status === 200,
      { timeoutMs: 10_000 },
    );
  });
});
