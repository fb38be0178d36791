/**
 * The Fastify base of every HTTP app: pino as `loggerInstance`, zod validation and
 * serialization, the JSON error model, health/readiness/metrics and API-key auth.
 */
import {
  serializerCompiler,
  validatorCompiler,
  type ZodTypeProvider,
} from '@fastify/type-provider-zod';
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
};

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
  await registerDocs(app as unknown as FastifyInstance, options.docs);
  await app.register(health, { checks: options.readiness, registry: options.registry });
  await app.register(apiKeyAuth, { keys: options.apiKeys });
  return app as unknown as HttpApp;
}
