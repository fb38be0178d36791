/**
 * What a failure of a push API route answers, decided in one place, so each route is
 * written as its happy path: it awaits its dependencies and throws nothing of its own but
 * `ApiError`s for what it refuses.
 *
 * `routeErrorHandler` is the error handler of the context the routes are registered in
 * (see app.ts). It turns what a route threw into an `ApiError` and throws that on to the
 * shared handler of @switchboard/http, which writes the JSON error body and logs:
 * - an `ApiError`, a validation error, any of Fastify's own (rate limit, body limit):
 *   passed on as it is;
 * - `MessageTooLargeError` (the router): 413 `payload_too_large`, with its message;
 * - `TooManyDevicesError` (the device registry): 409 `conflict`, with its message;
 * - `IdempotencyUnavailableError` (the idempotency store): 503, "idempotency store";
 * - NATS or JetStream failing under the route (`isNatsUnavailable`: unreachable, timed out,
 *   nobody serving, compare-and-set retries exhausted): 503 `unavailable` with Retry-After,
 *   "<the route's `config.dependency`> is unavailable, retry later", its cause logged;
 * - anything else is a bug of ours, not an outage: passed on, so it answers 500 and is
 *   logged as an error (telling a caller to retry a bug would hide it).
 *
 * Mapping on the way out costs the happy path nothing: no wrapper, no extra await.
 */
import { TooManyDevicesError } from '@switchboard/device-registry';
import { ApiError } from '@switchboard/http';
import { isNatsUnavailable } from '@switchboard/nats';
import { ErrorCodes } from '@switchboard/protocol';
import type { FastifyError, FastifyRequest } from 'fastify';
import { MessageTooLargeError } from './delivery-router.js';
import { IdempotencyUnavailableError } from './idempotency-store.js';

declare module 'fastify' {
  interface FastifyContextConfig {
    /**
     * What the route depends on, as its 503 names it when that fails:
     * "<dependency> is unavailable, retry later".
     */
    dependency?: string;
  }
}

/** The `ApiError` a route's failure answers, or the error itself when it is not the route's. */
export function toApiError(err: unknown, dependency: string | undefined): unknown {
  if (err instanceof ApiError) return err;
  if (err instanceof MessageTooLargeError)
    return new ApiError(413, ErrorCodes.payloadTooLarge, err.message);
  if (err instanceof TooManyDevicesError)
    return new ApiError(409, ErrorCodes.conflict, err.message);
  if (err instanceof IdempotencyUnavailableError)
    return unavailable('idempotency store', err.cause);
  if (dependency === undefined || isFastifys(err) || !isNatsUnavailable(err)) return err;
  return unavailable(dependency, err);
}

/** The error handler of the routes' context: see the file comment. */
export function routeErrorHandler(err: FastifyError, req: FastifyRequest): never {
  throw toApiError(err, req.routeOptions.config?.dependency);
}

const unavailable = (what: string, cause: unknown) =>
  ApiError.unavailable(`${what} is unavailable, retry later`, cause);

/** Fastify's own errors (a `FST_` code) and those that carry their own 4xx status. */
function isFastifys(err: unknown): boolean {
  const { code, statusCode } = (err ?? {}) as { code?: unknown; statusCode?: unknown };
  return (
    (typeof code === 'string' && code.startsWith('FST_')) ||
    (typeof statusCode === 'number' && statusCode < 500)
  );
}
