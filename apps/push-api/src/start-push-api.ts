/** Builds and starts the push API from its config: what `main.ts` runs and tests reuse. */
import { DeviceRegistry, openDevicesBucket } from '@switchboard/device-registry';
import { ensureFallbackStream, FallbackQueue } from '@switchboard/fallback-queue';
import type { HttpApp } from '@switchboard/http';
import { createMetricsRegistry, natsConnectedGauge } from '@switchboard/http';
import { ensureStatusStream, readStatus, StatusBatcher } from '@switchboard/message-status';
import { ConnectionHealth, RequestMux } from '@switchboard/nats';
import { openPresenceReader, PresenceMirror } from '@switchboard/presence-registry';
import type { SendMessageResponse } from '@switchboard/protocol';
import { listenOn, type Running, type StartContext, startOnNats } from '@switchboard/runtime';
import type { Logger } from 'pino';
import { Counter } from 'prom-client';
import { buildApp } from './app.js';
import type { PushApiConfig } from './config.js';
import { DeliveryRouter } from './delivery-router.js';
import { IdempotencyStore, openIdempotencyBucket } from './idempotency-store.js';
import { createRouterMetrics } from './metrics.js';

export type RunningPushApi = Running<{ app: HttpApp; url: string; stop(): Promise<void> }>;

export function startPushApi(
  config: PushApiConfig,
  log: Logger,
  context?: StartContext,
): Promise<RunningPushApi> {
  return startOnNats({ name: 'push-api', config, log, context }, async (nc) => {
    const health = new ConnectionHealth(nc);
    await ensureFallbackStream(nc, { replicas: config.nats.replicas });
    await ensureStatusStream(nc, { replicas: config.nats.replicas });
    const { buckets, leases, reader } = await openPresenceReader(nc, {
      replicas: config.nats.replicas,
      leaseTtlMs: config.leaseTtlMs,
      log,
    });
    const mirror = await PresenceMirror.create({ kv: buckets.users, log });
    const requests = new RequestMux(nc);
    const status = new StatusBatcher({ nc, log });
    const registry = createMetricsRegistry('push-api');
    natsConnectedGauge(registry, () => health.connected);
    new Counter({
      name: 'switchboard_push_status_records_total',
      help: 'Send status records stored (batched) or failed (dropped or refused: GET /v1/messages/:id then lacks them)',
      labelNames: ['outcome'],
      registers: [registry],
      collect() {
        this.reset();
        this.inc({ outcome: 'written' }, status.written);
        this.inc({ outcome: 'failed' }, status.failed);
      },
    });
    const router = new DeliveryRouter({
      metrics: createRouterMetrics(registry),
      nc,
      requests,
      presence: reader,
      mirror,
      status,
      fallback: new FallbackQueue(nc, { retryMs: config.fallbackRetryMs }),
      log,
      nodeTimeoutMs: config.nodeTimeoutMs,
      sendTimeoutMs: config.sendTimeoutMs,
      ackGraceMs: config.ackGraceMs,
    });
    const idempotency = new IdempotencyStore<SendMessageResponse>({
      kv: await openIdempotencyBucket(nc, { replicas: config.nats.replicas }),
      pendingTimeoutMs: config.idempotencyPendingTimeoutMs,
    });
    const app = await buildApp({
      apiKeys: config.apiKeys,
      bodyLimitBytes: config.bodyLimitBytes,
      rateLimitPerMinute: config.rateLimitPerMinute,
      nc,
      router,
      idempotency,
      readStatus: (messageId) => readStatus(nc, messageId),
      devices: new DeviceRegistry(await openDevicesBucket(nc, { replicas: config.nats.replicas })),
      ...(config.webhooks ? { webhooks: config.webhooks } : {}),
      duplicateWaitMs: config.nodeTimeoutMs + config.ackGraceMs + config.sendTimeoutMs,
      logger: log,
      registry,
      readiness: { nats: () => health.connected },
    });
    app.addHook('onClose', async () => {
      // Records of sends that finished are written before the connection goes.
      await status.stop();
      requests.close();
      mirror.stop();
      leases.stop();
    });
    return { app, url: await listenOn(app, config, context), stop: () => app.close() };
  });
}
