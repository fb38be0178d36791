/**
 * Load shedding: while the event loop lags past the bound, API requests are answered 503
 * in the documented error shape with Retry-After, and probes still answer; once the lag is
 * gone, requests go through again.
 */

import { createHttpApp, createMetricsRegistry } from '@switchboard/http';
import { waitFor } from '@switchboard/testkit';
import { pino } from 'pino';
import { afterAll, describe, expect, it } from 'vitest';

const KEY = 'pressure-test-key-000001';

describe('http app under pressure', async () => {
  const app = await createHttpApp({
    logger: pino({ level: 'silent' }),
    apiKeys: [KEY],
    bodyLimitBytes: 1024,
    readiness: { always: () => true },
    registry: createMetricsRegistry('pressure-test'),
    docs: { title: 't', description: 't', version: '0' },
    maxEventLoopDelayMs: 100,
  });
  app.get('/v1/thing', async () => ({ ok: true }));
  await app.ready();
  afterAll(() => app.close());
  const get = (url: string) => app.inject({ url, headers: { authorization: `Bearer ${KEY}` } });

  it('pressure - a blocked event loop sheds API requests with 503 + Retry-After, probes answer, then it recovers', async () => {
    expect((await get('/v1/thing')).statusCode).toBe(200);
    // Block the loop for 1.5 s: the next sample sees a mean lag far above 100 ms.
    const until = Date.now() + 1_500;
    while (Date.now() < until) {}
    const shed = await waitFor(
      async () => {
        const res = await get('/v1/thing');
        return res.statusCode === 503 ? res : null;
      },
      { timeoutMs: 3_000, intervalMs: 5 },
    );
    expect(shed.headers['retry-after']).toBe('1');
    expect(shed.json()).toMatchObject({ error: { code: 'unavailable' } });
    expect(shed.json().error.message).toMatch(/overloaded/);
    expect((await get('/healthz')).statusCode).toBe(200);
    expect((await get('/readyz')).statusCode).toBe(200);
    await waitFor(async () => (await get('/v1/thing')).statusCode === 200, { timeoutMs: 5_000 });
  });
});
