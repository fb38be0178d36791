/**
 * The Fastify base of every HTTP app: pino as `loggerInstance`, zod validation and
 * serialization, the JSON error model, health/readiness/metrics and API-key auth.
 */
import {
  serializerCompiler,
  validatorCompiler,
  type ZodTypeProvider,
} from '@fastify/type-provider-zod';
import underPressure from '@fastify/under-pressure';
import { ErrorCodes } from '@switchboard/protocol';
import Fastify, { type FastifyInstance, LogController } from 'fastify';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { apiKeyAuth } from './api-key-auth.js';
import { type DocsOptions, registerDocs } from './docs.js';
import {
  clientErrorHandler,
  errorHandler,
  frameworkErrors,
  MAX_PARAM_LENGTH,
} from './error-handler.js';
import { health } from './health.js';
import { registerHttpMetrics } from './http-metrics.js';
import { useJsonBodyParser } from './json-body.js';

export type HttpAppOptions = {
  logger: Logger;
  apiKeys: readonly string[];
  /** Largest request body in bytes; larger ones get 413. */
  bodyLimitBytes: number;
  readiness: Record<string, () => boolean>;
  registry: Registry;
  /** OpenAPI document and UI at /docs. */
  docs: DocsOptions;
  /**
   * Load shedding: while the event loop lags more than this, API requests get 503 with
   * `Retry-After` at once instead of queueing (probes and metrics still answer). Default 1 s;
   * 0 turns it off.
   */
  maxEventLoopDelayMs?: number;
};

/** Longest a client may take to send one whole request (slow senders hold no socket forever). */
export const REQUEST_TIMEOUT_MS = 30_000;
/** Paths that answer whatever the load: an overloaded instance is alive, and says so. */
const PROBE_PATHS = new Set(['/healthz', '/readyz', '/metrics']);

export type HttpApp = FastifyInstance<
  import('node:http').Server,
  import('node:http').IncomingMessage,
  import('node:http').ServerResponse,
  Logger,
  ZodTypeProvider
>;

export async function createHttpApp(options: HttpAppOptions): Promise<HttpApp> {
  const app = Fastify({
    loggerInstance: options.logger,
    bodyLimit: options.bodyLimitBytes,
    // One log line per request is too much on the hot path; errors are still logged.
    logController: new LogController({ disableRequestLogging: true }),
    return503OnClosing: true,
    requestTimeout: REQUEST_TIMEOUT_MS,
    // User ids of up to 256 bytes, percent-encoded, fit in a path parameter.
    routerOptions: { maxParamLength: MAX_PARAM_LENGTH },
    // The router's and Node's parser's own refusals, in the JSON error shape too.
    frameworkErrors,
    clientErrorHandler,
  }).withTypeProvider<ZodTypeProvider>();
  // JSON only: anything else is 415 rather than a string body that fails validation.
  app.removeContentTypeParser(['text/plain']);
  // UTF-8 only, nesting bounded: see json-body.ts.
  useJsonBodyParser(app as unknown as FastifyInstance);
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  await app.register(errorHandler);
  registerHttpMetrics(app as unknown as FastifyInstance, options.registry);
  const maxEventLoopDelay = options.maxEventLoopDelayMs ?? 1_000;
  if (maxEventLoopDelay > 0) {
    await app.register(underPressure, {
      maxEventLoopDelay,
      retryAfter: 1,
      pressureHandler: (req, reply, type, value) => {
        if (PROBE_PATHS.has(req.url.split('?')[0] ?? '')) return;
        reply.code(503).header('retry-after', '1');
        return {
          error: {
            code: ErrorCodes.unavailable,
            message: `overloaded (${type} ${Math.round(value ?? 0)}), retry later`,
          },
        } as unknown as undefined;
      },
    });
  }
  await registerDocs(app as unknown as FastifyInstance, options.docs);
  await app.register(health, { checks: options.readiness, registry: options.registry });
  await app.register(apiKeyAuth, { keys: options.apiKeys });
  return app as unknown as HttpApp;
}
