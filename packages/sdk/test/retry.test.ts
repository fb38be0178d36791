/**
 * Retries: a lost response is retried with the same Idempotency-Key and sends once (a proxy
 * in front of the real push API loses it); Retry-After is honoured and attempts are
 * bounded (a scripted stub answers 503 / 429); what is never retried.
 */
import { createServer } from 'node:net';
import { performance } from 'node:perf_hooks';
import {
  createSwitchboard,
  type Switchboard,
  type SwitchboardError,
  SwitchboardError as SwitchboardErrorClass,
  SwitchboardNetworkError,
} from '@switchboard/sdk';
import { collect, type Received } from '@switchboard/testkit';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { API_KEY, arrived, errorBody, LossyProxy, Stack, StubServer } from './support.js';

const fast = { max: 3, minDelayMs: 50, maxDelayMs: 3_000 };

describe('retries through a proxy that loses responses (real push API)', () => {
  let stack: Stack;
  let proxy: LossyProxy | undefined;
  /** A client straight to the API, for sentinels. */
  let direct: Switchboard;

  beforeAll(async () => {
    stack = await Stack.start({ edges: 1 });
    direct = createSwitchboard({ apiUrl: stack.apiUrl, apiKey: API_KEY });
  });
  afterEach(async () => {
    await proxy?.close();
    proxy = undefined;
  });
  afterAll(() => stack?.close());

  /** Sends a sentinel after everything else and returns how many `event` messages arrived. */
  async function countAfterSentinel(user: string, inbox: Received[], event: string) {
    await direct.send({ to: user, event: 'sentinel', data: { n: 'end' } });
    await arrived(inbox, 'sentinel', 'end');
    return inbox.filter((m) => m.event === event).length;
  }

  const firstPostTo = (path: string, how: 'after-response' | 'before-response') => {
    let dropped = false;
    return (req: { method: string; path: string }) => {
      if (dropped || req.method !== 'POST' || req.path !== path) return false;
      dropped = true;
      return how;
    };
  };

  it('send - the first response is lost: the retry has the same key, the user gets it once, the SDK returns the first response', async () => {
    const inbox = collect(await stack.client('retry-send-1', 0));
    proxy = await LossyProxy.start(stack.apiUrl, firstPostTo('/v1/messages', 'after-response'));
    const sb = createSwitchboard({ apiUrl: proxy.url, apiKey: API_KEY, retries: fast });

    const result = await sb.send({ to: 'retry-send-1', event: 'dm.new', data: { n: 1 } });

    const [first, retry] = proxy.requests;
    expect(proxy.requests).toHaveLength(2);
    expect(first!.dropped).toBe(true);
    expect(first!.upstream!.status).toBe(200);
    const key = first!.headers['idempotency-key'];
    expect(key).toMatch(/^[0-9a-f-]{36}$/);
    expect(retry!.headers['idempotency-key']).toBe(key);
    expect(retry!.body).toBe(first!.body);
    expect(retry!.upstream!.headers['idempotent-replayed']).toBe('true');
    // The SDK returns the response of the request that sent the message.
    expect(result).toEqual(JSON.parse(first!.upstream!.body));
    expect(result.results).toEqual([
      { userId: 'retry-send-1', status: 'delivered', connections: 1 },
    ]);
    expect(inbox.find((m) => m.event === 'dm.new')!.meta.id).toBe(result.id);
    expect(await countAfterSentinel('retry-send-1', inbox, 'dm.new')).toBe(1);
  });

  it('multicast - the first response is lost: same key on the retry, each user gets it once', async () => {
    const a = collect(await stack.client('retry-multi-a', 0));
    const b = collect(await stack.client('retry-multi-b', 0));
    proxy = await LossyProxy.start(stack.apiUrl, firstPostTo('/v1/messages', 'after-response'));
    const sb = createSwitchboard({ apiUrl: proxy.url, apiKey: API_KEY, retries: fast });

    const result = await sb.multicast({
      to: ['retry-multi-a', 'retry-multi-b'],
      event: 'room.message',
      data: { n: 2 },
    });

    expect(proxy.requests).toHaveLength(2);
    const [first, retry] = proxy.requests;
    expect(retry!.headers['idempotency-key']).toBe(first!.headers['idempotency-key']);
    expect(result).toEqual(JSON.parse(first!.upstream!.body));
    expect(result.results.map((r) => r.status)).toEqual(['delivered', 'delivered']);
    expect(await countAfterSentinel('retry-multi-a', a, 'room.message')).toBe(1);
    expect(await countAfterSentinel('retry-multi-b', b, 'room.message')).toBe(1);
  });

  it('send - the connection drops while the API still waits for the ack: the retry gets the first answer, sent once', async () => {
    const socket = await stack.client('retry-ack-1', 0);
    const inbox: Received[] = [];
    // This device confirms only after 400 ms, so the first request is still running when
    // the retry arrives.
    socket.onAny((event: string, data: unknown, meta: Received['meta'], ack?: () => void) => {
      inbox.push({ event, data, meta });
      if (typeof ack === 'function') setTimeout(ack, 400);
    });
    proxy = await LossyProxy.start(stack.apiUrl, firstPostTo('/v1/messages', 'before-response'));
    const sb = createSwitchboard({ apiUrl: proxy.url, apiKey: API_KEY, retries: fast });

    const result = await sb.send({
      to: 'retry-ack-1',
      event: 'dm.acked',
      data: { n: 3 },
      ack: true,
      ackTimeoutMs: 3_000,
    });

    expect(proxy.requests).toHaveLength(2);
    const [first, retry] = proxy.requests;
    expect(first!.dropped).toBe(true);
    expect(retry!.headers['idempotency-key']).toBe(first!.headers['idempotency-key']);
    // The retry arrived while the first request was still waiting for the ack.
    expect(retry!.at).toBeLessThan(first!.upstreamAt!);
    expect(result.results).toEqual([
      { userId: 'retry-ack-1', status: 'delivered', connections: 1 },
    ]);
    // The first request finished (its answer reached the proxy) with this same response.
    expect(first!.upstream && JSON.parse(first!.upstream.body)).toEqual(result);
    expect(retry!.upstream!.headers['idempotent-replayed']).toBe('true');
    expect(await countAfterSentinel('retry-ack-1', inbox, 'dm.acked')).toBe(1);
  });

  it('broadcast - a lost response is retried with the same key: the first answer, one broadcast', async () => {
    const inbox = collect(await stack.client('retry-bc-1', 0));
    proxy = await LossyProxy.start(stack.apiUrl, firstPostTo('/v1/broadcast', 'after-response'));
    const sb = createSwitchboard({ apiUrl: proxy.url, apiKey: API_KEY, retries: fast });

    const result = await sb.broadcast({ event: 'system.notice', data: { n: 4 } });

    expect(proxy.requests).toHaveLength(2);
    expect(proxy.requests[0]!.upstream!.status).toBe(200);
    const keys = proxy.requests.map((r) => r.headers['idempotency-key']);
    expect(keys[0]).toBeTruthy();
    expect(keys[1]).toBe(keys[0]);
    expect(inbox.find((m) => m.event === 'system.notice')?.meta.id ?? result.id).toBe(result.id);
    expect(await countAfterSentinel('retry-bc-1', inbox, 'system.notice')).toBe(1);
  });
});

describe('Retry-After, bounds and what is never retried (stub server)', () => {
  const stubs: StubServer[] = [];
  const stub = async (script: Parameters<typeof StubServer.start>[0]) => {
    const s = await StubServer.start(script);
    stubs.push(s);
    return s;
  };
  afterEach(async () => {
    await Promise.all(stubs.splice(0).map((s) => s.close()));
  });

  const ok = { id: 'm-1', results: [{ userId: 'u', status: 'delivered', connections: 1 }] };
  const client = (url: string, retries: Partial<typeof fast> = fast, timeoutMs?: number) =>
    createSwitchboard({
      apiUrl: url,
      presenceUrl: url,
      apiKey: API_KEY,
      retries,
      ...(timeoutMs === undefined ? {} : { timeoutMs }),
    });

  it('503 with Retry-After: 1 - the retry comes at least 1 s later, same key, and its answer is returned', async () => {
    const s = await stub((i) =>
      i === 0
        ? {
            status: 503,
            headers: { 'retry-after': '1' },
            body: errorBody('unavailable', 'NATS is unreachable, retry later'),
          }
        : { status: 200, body: ok },
    );
    const result = await client(s.url).send({ to: 'u', event: 'dm.new' });
    expect(result).toEqual(ok);
    expect(s.requests).toHaveLength(2);
    expect(s.gaps()[0]).toBeGreaterThanOrEqual(1_000);
    // Backoff alone (minDelayMs 50) would have come back within ~100 ms.
    expect(s.gaps()[0]).toBeLessThan(2_000);
    expect(s.requests[1]!.headers['idempotency-key']).toBe(
      s.requests[0]!.headers['idempotency-key'],
    );
    expect(s.requests[1]!.body).toBe(s.requests[0]!.body);
  });

  it('429 with Retry-After as an HTTP date - the retry does not come before that date', async () => {
    let until = 0;
    const s = await stub((i) => {
      if (i > 0) return { status: 200, body: ok };
      // HTTP dates have 1 s resolution: the next whole second at least 1 s from now.
      until = Math.ceil((Date.now() + 1_000) / 1_000) * 1_000;
      return {
        status: 429,
        headers: { 'retry-after': new Date(until).toUTCString() },
        body: errorBody('rate_limited', 'Rate limit exceeded, retry in 1 second'),
      };
    });
    await client(s.url).send({ to: 'u', event: 'dm.new' });
    expect(s.requests).toHaveLength(2);
    expect(s.requests[1]!.wallAt).toBeGreaterThanOrEqual(until);
    expect(s.gaps()[0]).toBeGreaterThanOrEqual(1_000 - 5);
  });

  it('429 every time - max + 1 attempts, each retry waits Retry-After, then a typed 429', async () => {
    const s = await stub(() => ({
      status: 429,
      headers: { 'retry-after': '1' },
      body: errorBody('rate_limited', 'Rate limit exceeded'),
    }));
    const started = performance.now();
    const err = await client(s.url, { max: 2, minDelayMs: 50, maxDelayMs: 3_000 })
      .multicast({ to: ['u', 'v'], event: 'dm.new' })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SwitchboardErrorClass);
    expect(err).toMatchObject({
      status: 429,
      code: 'rate_limited',
      retryAfterMs: 1_000,
      attempts: 3,
    });
    expect(s.requests).toHaveLength(3);
    for (const gap of s.gaps()) expect(gap).toBeGreaterThanOrEqual(1_000);
    // Thrown after the last attempt, without a further wait.
    expect(performance.now() - started).toBeLessThan(2 * 1_000 + 2 * 1_000);
    const keys = new Set(s.requests.map((r) => r.headers['idempotency-key']));
    expect(keys.size).toBe(1);
    expect((err as SwitchboardError).idempotencyKey).toBe([...keys][0]);
  });

  it('a Retry-After beyond maxDelayMs is not waited for: one attempt, the error carries retryAfterMs', async () => {
    const s = await stub(() => ({
      status: 503,
      headers: { 'retry-after': '30' },
      body: errorBody('unavailable', 'overloaded'),
    }));
    const started = performance.now();
    const err = await client(s.url)
      .presence.get('u')
      .catch((e: unknown) => e);
    expect(err).toMatchObject({
      status: 503,
      code: 'unavailable',
      retryAfterMs: 30_000,
      attempts: 1,
    });
    expect(s.requests).toHaveLength(1);
    expect(performance.now() - started).toBeLessThan(1_000);
  });

  it('503 without Retry-After - retried with jittered exponential backoff within [min, max]', async () => {
    const s = await stub(() => ({ status: 503, body: errorBody('unavailable', 'down') }));
    const err = await client(s.url, { max: 4, minDelayMs: 100, maxDelayMs: 300 })
      .devices.list('u')
      .catch((e: unknown) => e);
    expect(err).toMatchObject({ status: 503, attempts: 5, retryAfterMs: undefined });
    expect(s.requests).toHaveLength(5);
    const gaps = s.gaps();
    // Ceilings 100, 200, 300 (capped), 300; each wait is between half and all of it.
    const ceilings = [100, 200, 300, 300];
    gaps.forEach((gap, i) => {
      expect(gap).toBeGreaterThanOrEqual(ceilings[i]! / 2 - 1);
      expect(gap).toBeLessThan(ceilings[i]! + 250);
    });
  });

  it('4xx other than 429 is never retried, Retry-After or not (400, 401, 404, 409, 413)', async () => {
    for (const [status, code] of [
      [400, 'validation_failed'],
      [401, 'unauthorized'],
      [404, 'not_found'],
      [409, 'conflict'],
      [413, 'payload_too_large'],
    ] as const) {
      const s = await stub(() => ({
        status,
        // The 409 of a key whose first request still runs carries Retry-After: 1.
        headers: { 'retry-after': '1' },
        body: errorBody(code, `refused ${status}`),
      }));
      const err = await client(s.url)
        .send({ to: 'u', event: 'dm.new' })
        .catch((e: unknown) => e);
      expect(err).toBeInstanceOf(SwitchboardErrorClass);
      expect(err).toMatchObject({ status, code, message: `refused ${status}`, attempts: 1 });
      expect(s.requests).toHaveLength(1);
    }
  });

  it('an answer without the error body keeps its status, with code unknown; 500 is not retried', async () => {
    const s = await stub(() => ({ status: 500, headers: { 'content-type': 'text/html' } }));
    const err = await client(s.url)
      .messages.status('m-1')
      .catch((e: unknown) => e);
    expect(err).toMatchObject({ status: 500, code: 'unknown', attempts: 1 });
    expect(s.requests).toHaveLength(1);
  });

  it('network - a refused connection is retried max times with backoff, then a SwitchboardNetworkError', async () => {
    const port = await new Promise<number>((resolve) => {
      const srv = createServer();
      srv.listen(0, '127.0.0.1', () => {
        const p = (srv.address() as { port: number }).port;
        srv.close(() => resolve(p));
      });
    });
    let attempts = 0;
    const sb = createSwitchboard({
      apiUrl: `http://127.0.0.1:${port}`,
      apiKey: API_KEY,
      retries: { max: 3, minDelayMs: 100, maxDelayMs: 1_000 },
      fetch: (input, init) => {
        attempts++;
        return fetch(input, init);
      },
    });
    const started = performance.now();
    const err = await sb.send({ to: 'u', event: 'dm.new' }).catch((e: unknown) => e);
    const took = performance.now() - started;
    expect(err).toBeInstanceOf(SwitchboardNetworkError);
    expect(err).toMatchObject({ name: 'SwitchboardNetworkError', kind: 'network', attempts: 4 });
    expect((err as SwitchboardNetworkError).message).toMatch(/ECONNREFUSED/);
    expect((err as SwitchboardNetworkError).idempotencyKey).toEqual(expect.any(String));
    expect(attempts).toBe(4);
    // Waits of at least 50 + 100 + 200 ms, at most 100 + 200 + 400 ms (plus overhead).
    expect(took).toBeGreaterThanOrEqual(350);
    expect(took).toBeLessThan(700 + 500);
  });

  it('timeout - an API that never answers is a SwitchboardNetworkError kind timeout after max + 1 attempts', async () => {
    const s = await stub(() => ({ status: 200, hang: true }));
    const err = await client(s.url, { max: 1, minDelayMs: 10, maxDelayMs: 100 }, 300)
      .send({ to: 'u', event: 'dm.new' })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SwitchboardNetworkError);
    expect(err).toMatchObject({ kind: 'timeout', attempts: 2 });
    expect(s.requests).toHaveLength(2);
    expect(s.requests[1]!.headers['idempotency-key']).toBe(
      s.requests[0]!.headers['idempotency-key'],
    );
    // The timeout runs from before the first request reached the stub: a little slack.
    expect(s.gaps()[0]).toBeGreaterThanOrEqual(280);
  });

  it('timeout - a send with ack gets its ackTimeoutMs on top of timeoutMs', async () => {
    const s = await stub(() => ({ status: 200, hang: true }));
    const started = performance.now();
    const err = await client(s.url, { max: 0, minDelayMs: 10, maxDelayMs: 100 }, 200)
      .send({ to: 'u', event: 'dm.new', ack: true, ackTimeoutMs: 500 })
      .catch((e: unknown) => e);
    expect(err).toMatchObject({ kind: 'timeout', attempts: 1 });
    expect(performance.now() - started).toBeGreaterThanOrEqual(700 - 5);
  });

  it('broadcast - 429, 503 and timeouts are retried like a send (the key makes it safe)', async () => {
    const limited = await stub((i) =>
      i === 0
        ? { status: 429, headers: { 'retry-after': '0' }, body: errorBody('rate_limited', 'slow') }
        : { status: 200, body: { id: 'b-1' } },
    );
    await expect(client(limited.url).broadcast({ event: 'e' })).resolves.toEqual({ id: 'b-1' });
    expect(limited.requests).toHaveLength(2);

    const down = await stub(() => ({
      status: 503,
      headers: { 'retry-after': '0' },
      body: errorBody('unavailable', 'broadcast is unavailable, retry later'),
    }));
    const err = await client(down.url)
      .broadcast({ event: 'e' })
      .catch((e: unknown) => e);
    expect(err).toMatchObject({ status: 503, attempts: fast.max + 1 });
    expect(down.requests).toHaveLength(fast.max + 1);

    const hung = await stub(() => ({ status: 200, hang: true }));
    const timedOut = await client(hung.url, fast, 200)
      .broadcast({ event: 'e' })
      .catch((e: unknown) => e);
    expect(timedOut).toMatchObject({ kind: 'timeout', attempts: fast.max + 1 });
    expect(hung.requests).toHaveLength(fast.max + 1);
  });

  it('abort - the caller’s signal ends the call during a Retry-After wait', async () => {
    const s = await stub(() => ({
      status: 503,
      headers: { 'retry-after': '2' },
      body: errorBody('unavailable', 'down'),
    }));
    const controller = new AbortController();
    const call = client(s.url).send({ to: 'u', event: 'dm.new' }, { signal: controller.signal });
    const started = performance.now();
    setTimeout(() => controller.abort(new Error('caller gave up')), 200);
    await expect(call).rejects.toThrow('caller gave up');
    expect(performance.now() - started).toBeLessThan(1_500);
    expect(s.requests).toHaveLength(1);
  });
});

describe('a real 429 from the push API (rate limit)', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await Stack.start({ edges: 0, env: { RATE_LIMIT_PER_MINUTE: '2' } });
  });
  afterAll(() => stack?.close());

  it('429 - the real Retry-After (beyond maxDelayMs) comes back as retryAfterMs, one attempt', async () => {
    let attempts = 0;
    const sb = createSwitchboard({
      apiUrl: stack.apiUrl,
      apiKey: API_KEY,
      retries: fast,
      fetch: (input, init) => {
        attempts++;
        return fetch(input, init);
      },
    });
    await sb.send({ to: 'rl', event: 'dm.new' });
    await sb.send({ to: 'rl', event: 'dm.new' });
    attempts = 0;
    const err = await sb.send({ to: 'rl', event: 'dm.new' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SwitchboardErrorClass);
    const e = err as SwitchboardError;
    expect(e).toMatchObject({ status: 429, code: 'rate_limited', attempts: 1 });
    // The window is a minute: the API asks for (up to) 60 s, more than maxDelayMs (3 s).
    expect(e.retryAfterMs).toBeGreaterThan(fast.maxDelayMs);
    expect(e.retryAfterMs).toBeLessThanOrEqual(60_000);
    expect(attempts).toBe(1);
  });
});
