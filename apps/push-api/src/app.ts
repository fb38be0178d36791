/**
 * The push API as a Fastify app. `buildApp` takes its dependencies ready-made, so tests
 * construct it around a real NATS connection and call `inject()` or `listen()`.
 */
import type { NatsConnection } from '@nats-io/transport-node';
import { createHttpApp, type HttpApp } from '@switchboard/http/http-app';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { DeliveryRouter } from './delivery-router.js';
import { messageRoutes } from './routes/messages.js';

export type BuildAppOptions = {
  apiKeys: readonly string[];
  bodyLimitBytes: number;
  nc: NatsConnection;
  router: DeliveryRouter;
  logger: Logger;
  registry: Registry;
  /** Named readiness checks, e.g. NATS connected. */
  readiness: Record<string, () => boolean>;
};

export async function buildApp(options: BuildAppOptions): Promise<HttpApp> {
  const app = await createHttpApp({
    logger: options.logger,
    apiKeys: options.apiKeys,
    bodyLimitBytes: options.bodyLimitBytes,
    readiness: options.readiness,
    registry: options.registry,
    docs: {
      title: 'Switchboard push API',
      description: 'Send real-time messages to users over Socket.IO, with OS push fallback.',
      version: '1.0.0',
    },
  });
  await app.register(messageRoutes, { router: options.router, nc: options.nc });
  return app;
}
