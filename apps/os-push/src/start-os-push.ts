/** Builds and starts the OS push worker from its config: what `main.ts` runs and tests reuse. */
import { createServer } from 'node:http';
import { DeviceRegistry, openDevicesBucket } from '@switchboard/device-registry';
import { ensureDeadLetterStream, ensureFallbackStream } from '@switchboard/fallback-queue';
import { createMetricsRegistry, listenHttp, probeHandler } from '@switchboard/http/probes';
import { ensureStatusStream } from '@switchboard/message-status';
import { ConnectionHealth } from '@switchboard/nats';
import type { Platform } from '@switchboard/protocol';
import { type Running, type StartContext, startOnNats } from '@switchboard/runtime';
import type { Logger } from 'pino';
import type { OsPushConfig } from './config.js';
import { DeliveryProgress } from './delivery-progress.js';
import { CONSUMER_NAME, FallbackWorker } from './fallback-worker.js';
import { createOsPushMetrics } from './metrics.js';
import { ApnsProvider } from './providers/apns-provider.js';
import { FcmProvider } from './providers/fcm-provider.js';
import { LogProvider, UnconfiguredProvider } from './providers/log-provider.js';
import type { PushProvider } from './providers/push-provider.js';
import { WebhookProvider } from './providers/webhook-provider.js';

export type RunningOsPush = Running<{
  worker: FallbackWorker;
  url: string;
  stop(): Promise<void>;
}>;

/** One provider per platform: the configured one, else the log or the refusing stand-in. */
export function createProviders(config: OsPushConfig, log: Logger): Record<Platform, PushProvider> {
  const fallback = (p: Platform): PushProvider =>
    config.unconfigured === 'log' ? new LogProvider(p, log) : new UnconfiguredProvider(p);
  return {
    apns: config.apns ? new ApnsProvider({ ...config.apns, log }) : fallback('apns'),
    fcm: config.fcm ? new FcmProvider(config.fcm) : fallback('fcm'),
    webhook: config.webhook ? new WebhookProvider(config.webhook) : fallback('webhook'),
  };
}

export function startOsPush(
  config: OsPushConfig,
  log: Logger,
  context?: StartContext,
): Promise<RunningOsPush> {
  return startOnNats({ name: 'os-push', config, log, context }, async (nc) => {
    const health = new ConnectionHealth(nc);
    const replicas = config.nats.replicas;
    await ensureFallbackStream(nc, { replicas });
    await ensureDeadLetterStream(nc, { replicas });
    await ensureStatusStream(nc, { replicas });
    const providers = createProviders(config, log);
    const registry = createMetricsRegistry('os-push');
    const metrics = createOsPushMetrics({
      registry,
      nc,
      consumer: CONSUMER_NAME,
      natsConnected: () => health.connected,
    });
    const worker = new FallbackWorker({
      nc,
      devices: new DeviceRegistry(await openDevicesBucket(nc, { replicas })),
      progress: await DeliveryProgress.open(nc, { replicas }),
      providers,
      log,
      maxAttempts: config.maxAttempts,
      retryBaseMs: config.retryBaseMs,
      retryMaxMs: config.retryMaxMs,
      concurrency: config.concurrency,
      ackWaitMs: config.ackWaitMs,
      registry,
      metrics,
    });
    await worker.start();
    const http = createServer(
      probeHandler({
        checks: { nats: () => health.connected },
        registry,
        info: () => ({ stats: worker.stats }),
      }),
    );
    await context?.beforeListen();
    const url = await listenHttp(http, config.port, config.host);
    return {
      worker,
      url,
      async stop() {
        http.close();
        await worker.stop();
        await Promise.all(Object.values(providers).map((p) => p.close()));
      },
    };
  });
}
