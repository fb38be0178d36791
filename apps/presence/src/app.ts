/** The presence service as a Fastify app; dependencies come in ready-made. */
import { createHttpApp, type HttpApp } from '@switchboard/http';
import type { PresenceReader } from '@switchboard/presence-registry';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { presenceRoutes } from './routes/presence.js';

export type BuildAppOptions = {
  apiKeys: readonly string[];
  presence: PresenceReader;
  logger: Logger;
  registry: Registry;
  readiness: Record<string, () => boolean>;
};

export async function buildApp(options: BuildAppOptions): Promise<HttpApp> {
  const app = await createHttpApp({
    logger: options.logger,
    apiKeys: options.apiKeys,
    bodyLimitBytes: 256 * 1024,
    readiness: options.readiness,
    registry: options.registry,
    docs: {
      title: 'Switchboard presence API',
      description: 'Who is online, on which nodes, and when they were last seen.',
      version: '1.0.0',
    },
  });
  await app.register(presenceRoutes, { presence: options.presence });
  return app;
}
