/**
 * Maps every failure to `{ error: { code, message, details? } }`: validation issues name
 * the field, Fastify's own errors keep their 4xx status, 5xx never leak internals.
 */
import { hasZodFastifySchemaValidationErrors } from '@fastify/type-provider-zod';
import { type ErrorCode, ErrorCodes } from '@switchboard/protocol/errors';
import type { FastifyError, FastifyInstance } from 'fastify';
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
  reply: import('fastify').FastifyReply,
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
        if (err.statusCode >= 500) req.log.error({ err: err.cause ?? err }, err.message);
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
