import { createMetricsRegistry } from '@switchboard/http/health';
import { createLogger } from '@switchboard/logger/logger';
import { ConnectionHealth, connectNats } from '@switchboard/nats/connection';
import { ensureFallbackStream, openPresenceBuckets } from '@switchboard/nats/provision';
import { LeaseTable } from '@switchboard/presence-registry/lease-table';
import { PresenceReader } from '@switchboard/presence-registry/presence-reader';
import { runService } from '@switchboard/runtime/service';
import { buildApp } from './app.js';
import { loadConfig } from './config.js';
import { DeliveryRouter } from './delivery-router.js';
import { FallbackQueue } from './fallback-queue.js';

const log = createLogger({ name: 'push-api' });

await runService({
  name: 'push-api',
  log,
  async start() {
    const config = loadConfig(process.env);
    log.level = config.logLevel;
    const nc = await connectNats({ servers: config.natsServers, name: 'push-api', log });
    const health = new ConnectionHealth(nc);
    const buckets = await openPresenceBuckets(nc, { replicas: config.natsReplicas, leaseTtlMs: config.leaseTtlMs });
    await ensureFallbackStream(nc, { replicas: config.natsReplicas });
    const leases = await LeaseTable.create({ kv: buckets.nodes, leaseTtlMs: config.leaseTtlMs, log });
    const presence = new PresenceReader({ kv: buckets.users, leases });
    const router = new DeliveryRouter({
      nc,
      presence,
      fallback: new FallbackQueue(nc),
      log,
      nodeTimeoutMs: config.nodeTimeoutMs,
      ackGraceMs: config.ackGraceMs,
    });
    const app = await buildApp({
      apiKeys: config.apiKeys,
      bodyLimitBytes: config.bodyLimitBytes,
      nc,
      router,
      logger: log,
      registry: createMetricsRegistry('push-api'),
      readiness: { nats: () => health.connected },
    });
    await app.listen({ port: config.port, host: config.host });
    return {
      async stop() {
        await app.close();
        leases.stop();
        await nc.drain();
      },
    };
  },
});
