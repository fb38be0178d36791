/**
 * The one place that says what a route's failure answers (route-errors.ts), and the typed
 * failure of the idempotency store it relies on.
 */

import { Writable } from 'node:stream';
import { ClosedConnectionError, NoRespondersError, TimeoutError } from '@nats-io/transport-node';
import { TooManyDevicesError } from '@switchboard/device-registry';
import { ApiError } from '@switchboard/http';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { MessageTooLargeError } from '../../src/delivery-router.js';
import {
  type IdempotencyBucket,
  IdempotencyStore,
  IdempotencyUnavailableError,
} from '../../src/idempotency-store.js';
import { toApiError } from '../../src/route-errors.js';
import { API_KEY, fakeApp } from './fakes.js';

const answer = (err: unknown) => {
  expect(err).toBeInstanceOf(ApiError);
  const e = err as ApiError;
  return { status: e.statusCode, code: e.code, message: e.message, retry: e.retryAfterSeconds };
};

describe('toApiError', () => {
  it('passes ApiErrors and Fastify’s own errors on as they are', () => {
    const api = new ApiError(409, 'conflict', 'no');
    expect(toApiError(api, 'x')).toBe(api);
    const fastify = Object.assign(new Error('bad response'), {
      code: 'FST_ERR_RESPONSE_SERIALIZATION',
      statusCode: 500,
    });
    expect(toApiError(fastify, 'x')).toBe(fastify);
    const limited = Object.assign(new Error('Rate limit exceeded'), { statusCode: 429 });
    expect(toApiError(limited, 'x')).toBe(limited);
  });

  it('maps the typed errors of the router, the device registry and the idempotency store', () => {
    const tooLarge = new MessageTooLargeError(70_000, 65_536);
    expect(answer(toApiError(tooLarge, 'message routing'))).toEqual({
      status: 413,
      code: 'payload_too_large',
      message: tooLarge.message,
      retry: undefined,
    });
    expect(answer(toApiError(new TooManyDevicesError(), 'the device registry'))).toEqual({
      status: 409,
      code: 'conflict',
      message: 'a user may have at most 100 devices',
      retry: undefined,
    });
    const cause = new Error('KV: timeout');
    const idem = toApiError(new IdempotencyUnavailableError(cause), 'message routing');
    expect(answer(idem)).toEqual({
      status: 503,
      code: 'unavailable',
      message: 'idempotency store is unavailable, retry later',
      retry: 1,
    });
    expect((idem as ApiError).cause).toBe(cause);
  });

  it('NATS failing under a route is its dependency failing: 503 naming it, the error as its cause', () => {
    const err = new ClosedConnectionError();
    const mapped = toApiError(err, 'broadcast');
    expect(answer(mapped)).toEqual({
      status: 503,
      code: 'unavailable',
      message: 'broadcast is unavailable, retry later',
      retry: 1,
    });
    expect((mapped as ApiError).cause).toBe(err);
    // A route that names no dependency: left to the shared handler (500 internal).
    expect(toApiError(err, undefined)).toBe(err);
    for (const nats of [new TimeoutError(), new NoRespondersError('push.v1.node.e1')])
      expect(answer(toApiError(nats, 'message routing'))).toMatchObject({ status: 503 });
  });

  it('a bug is not an outage: left to the shared handler (500), never "retry later"', () => {
    for (const bug of [
      new TypeError("Cannot read properties of undefined (reading 'id')"),
      new Error('x'),
    ])
      expect(toApiError(bug, 'message routing')).toBe(bug);
  });
});

describe('IdempotencyStore', () => {
  it('a bucket that fails is an IdempotencyUnavailableError with the failure as its cause', async () => {
    const cause = new Error('no responders');
    const fail = () => Promise.reject(cause);
    const kv: IdempotencyBucket = {
      create: fail,
      get: fail,
      update: fail,
      put: fail,
      delete: fail,
    };
    const store = new IdempotencyStore({ kv, pendingTimeoutMs: 1_000 });
    const claim = store.claim('k', 'f', 100);
    await expect(claim).rejects.toBeInstanceOf(IdempotencyUnavailableError);
    await expect(claim).rejects.toMatchObject({ cause });
  });
});

describe('a failed dependency, through the app', () => {
  it('is logged in full once, at error level, while the answer names no internals', async () => {
    const lines: Array<{ level: number; msg: string; err?: { message: string } }> = [];
    const sink = new Writable({
      write(chunk, _enc, done) {
        lines.push(JSON.parse(chunk.toString()));
        done();
      },
    });
    const t = await fakeApp({ logger: pino({ level: 'warn' }, sink) });
    try {
      t.devices.failure = new TimeoutError({ cause: new Error('KV read timed out at 10.0.0.7') });
      const res = await t.app.inject({
        url: '/v1/users/u/devices',
        headers: { authorization: `Bearer ${API_KEY}` },
      });
      expect(res.statusCode).toBe(503);
      expect(res.body).not.toContain('10.0.0.7');
      expect(lines.map((l) => [l.level, l.msg, l.err?.message])).toEqual([
        [
          50,
          'the device registry is unavailable, retry later',
          'timeout: KV read timed out at 10.0.0.7',
        ],
      ]);
    } finally {
      await t.app.close();
    }
  });
});
