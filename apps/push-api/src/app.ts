/**
 * The push API as a Fastify app. `buildApp` takes its dependencies ready-made, as the
 * narrow interfaces of `ports.ts`: `start-push-api.ts` passes the real ones (over NATS),
 * the unit tests in-memory fakes and `inject()`.
 */
import rateLimit from '@fastify/rate-limit';
import type {} from '@switchboard/http';
import { createHttpApp, type HttpApp } from '@switchboard/http';
import type { SendMessageResponse } from '@switchboard/protocol';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type {
  BroadcastLink,
  DeviceStore,
  IdempotencyClaims,
  MessageRouter,
  StatusRecords,
} from './ports.js';
import { routeErrorHandler } from './route-errors.js';
import { deviceRoutes } from './routes/devices.js';
import { messageRoutes } from './routes/messages.js';
import { statusRoutes } from './routes/status.js';

export type BuildAppOptions = {
  apiKeys: readonly string[];
  bodyLimitBytes: number;
  /** Requests per minute per API key (per instance). */
  rateLimitPerMinute: number;
  /** Broadcasts are one publish on it (a `NatsConnection`). */
  nc: BroadcastLink;
  router: MessageRouter;
  idempotency: IdempotencyClaims<SendMessageResponse>;
  /** `GET /v1/messages/:id`'s records. */
  readStatus: StatusRecords;
  devices: DeviceStore;
  /** Webhook URLs allowed at device registration (unset: not checked here). */
  webhooks?: { allowedHosts: readonly string[]; requireHttps: boolean };
  /** Longest a duplicate waits for the first request with its key (plus its ack timeout). */
  duplicateWaitMs: number;
  logger: Logger;
  registry: Registry;
  /** Named readiness checks; `nats` also gates the send routes. */
  readiness: { nats: () => boolean } & Record<string, () => boolean>;
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
  await app.register(rateLimit, {
    max: options.rateLimitPerMinute,
    timeWindow: 60_000,
    // After authentication, so an unknown key gets 401 and a known one its own budget.
    hook: 'preHandler',
    // The key authentication already identified: no second hash of the header.
    keyGenerator: (req) => req.apiKeyId ?? req.ip,
    allowList: (req) => req.routeOptions.config?.public === true,
  });
  // The routes share one context whose error handler says what their failures answer
  // (route-errors.ts), then hands them to the shared one that writes the error body.
  await app.register(async (api: HttpApp) => {
    api.setErrorHandler(routeErrorHandler);
    await api.register(messageRoutes, {
      router: options.router,
      nc: options.nc,
      idempotency: options.idempotency,
      ready: options.readiness.nats,
      duplicateWaitMs: options.duplicateWaitMs,
    });
    await api.register(statusRoutes, { readStatus: options.readStatus });
    await api.register(deviceRoutes, {
      devices: options.devices,
      ...(options.webhooks ? { webhooks: options.webhooks } : {}),
    });
  });
  return app;
}
