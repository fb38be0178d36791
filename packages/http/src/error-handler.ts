/**
 * Maps every failure to `{ error: { code, message, details? } }`: validation issues name
 * the field, Fastify's own errors keep their 4xx status, 5xx never leak internals.
 */
import { STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import { hasZodFastifySchemaValidationErrors } from '@fastify/type-provider-zod';
import { type ErrorCode, ErrorCodes } from '@switchboard/protocol';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { ApiError } from './api-error.js';

const FASTIFY_CODES: Record<string, ErrorCode> = {
  FST_ERR_CTP_BODY_TOO_LARGE: ErrorCodes.payloadTooLarge,
  FST_ERR_CTP_INVALID_MEDIA_TYPE: ErrorCodes.unsupportedMediaType,
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: ErrorCodes.badRequest,
  FST_ERR_CTP_EMPTY_JSON_BODY: ErrorCodes.badRequest,
  FST_ERR_CTP_INVALID_JSON_BODY: ErrorCodes.badRequest,
};

const send = (
  reply: FastifyReply,
  status: number,
  code: ErrorCode,
  message: string,
  details?: unknown,
) =>
  reply
    .code(status)
    .send({ error: details === undefined ? { code, message } : { code, message, details } });

export const errorHandler = fp(
  async (app: FastifyInstance) => {
    app.setNotFoundHandler((req, reply) => {
      send(reply, 404, ErrorCodes.notFound, `no route ${req.method} ${req.url.split('?')[0]}`);
    });

    app.setErrorHandler((err: FastifyError, req, reply) => {
      if (hasZodFastifySchemaValidationErrors(err)) {
        const where = err.validationContext ?? 'body';
        const details = err.validation.map((v) => ({
          field: [where, ...pathOf(v)].join('.'),
          message: v.message,
        }));
        return send(
          reply,
          400,
          ErrorCodes.validationFailed,
          `invalid ${where}: ${details.map((d) => `${d.field}: ${d.message}`).join('; ')}`,
          details,
        );
      }
      if (err instanceof ApiError) {
        if (err.retryAfterSeconds !== undefined)
          reply.header('retry-after', String(err.retryAfterSeconds));
        // 503 without a cause is a known state (NATS away, overloaded): one warn line, no
        // stack per request during an outage. A 503 with a cause, or any other 5xx, is logged
        // in full.
        if (err.statusCode === 503 && err.cause === undefined) req.log.warn(err.message);
        else if (err.statusCode >= 500) req.log.error({ err: err.cause ?? err }, err.message);
        return send(reply, err.statusCode, err.code, err.message, err.details);
      }
      const status = err.statusCode ?? 500;
      if (status === 429) {
        return send(reply, 429, ErrorCodes.rateLimited, err.message || 'rate limit exceeded');
      }
      if (status >= 400 && status < 500) {
        const code =
          (err.code && FASTIFY_CODES[err.code]) ||
          (status === 413
            ? ErrorCodes.payloadTooLarge
            : status === 415
              ? ErrorCodes.unsupportedMediaType
              : ErrorCodes.badRequest);
        return send(reply, status, code, err.message);
      }
      req.log.error({ err }, 'request failed');
      return send(reply, 500, ErrorCodes.internal, 'internal error');
    });
  },
  { name: 'switchboard-error-handler' },
);

function pathOf(v: { instancePath?: string; params?: unknown }): string[] {
  const p = (v.instancePath ?? '').split('/').filter(Boolean);
  return p;
}

/** Longest path parameter the router accepts: a user id of 256 UTF-8 bytes, percent-encoded, is 768. */
export const MAX_PARAM_LENGTH = 1024;

/**
 * Fastify's `frameworkErrors`: the errors the router raises before any route or hook runs
 * (a path that is not valid percent-encoded UTF-8, a path parameter over
 * {@link MAX_PARAM_LENGTH}), in the JSON error shape instead of Fastify's own body.
 */
export function frameworkErrors(
  err: FastifyError,
  _req: FastifyRequest,
  reply: FastifyReply,
): void {
  if (err.code === 'FST_ERR_MAX_PARAM_LENGTH') {
    send(
      reply,
      414,
      ErrorCodes.badRequest,
      `a path segment is longer than ${MAX_PARAM_LENGTH} characters`,
    );
    return;
  }
  if (err.code === 'FST_ERR_BAD_URL') {
    send(reply, 400, ErrorCodes.badRequest, 'the path is not valid percent-encoded UTF-8');
    return;
  }
  reply.log.error({ err }, 'request failed in the router');
  send(reply, 500, ErrorCodes.internal, 'internal error');
}

/**
 * Fastify's `clientErrorHandler`: requests Node's HTTP parser refuses (malformed request
 * line or headers, headers over 16 KiB, a request that timed out) get the JSON error
 * shape before the socket is closed, instead of Fastify's own body.
 */
export function clientErrorHandler(
  this: FastifyInstance,
  err: Error & { code?: string },
  socket: Socket,
): void {
  // A reset connection has nobody left to answer.
  if (err.code === 'ECONNRESET' || socket.destroyed) return;
  const status =
    err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : err.code === 'HPE_HEADER_OVERFLOW' ? 431 : 400;
  const message =
    status === 408
      ? 'the request took too long to arrive'
      : status === 431
        ? 'the request line and headers are larger than 16 KiB'
        : 'malformed HTTP request';
  this.log.debug({ err }, 'client error');
  if (socket.writable) {
    const body = JSON.stringify({ error: { code: ErrorCodes.badRequest, message } });
    socket.write(
      `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    );
  }
  socket.destroy(err);
}
