import { createMetricsRegistry } from '@switchboard/http/health';
import { createLogger } from '@switchboard/logger/logger';
import { ConnectionHealth, connectNats } from '@switchboard/nats/connection';
import { openPresenceBuckets } from '@switchboard/nats/provision';
import { LeaseTable } from '@switchboard/presence-registry/lease-table';
import { PresenceReader } from '@switchboard/presence-registry/presence-reader';
import { runService } from '@switchboard/runtime/service';
import { buildApp } from './app.js';
import { loadConfig } from './config.js';

const log = createLogger({ name: 'presence' });

await runService({
  name: 'presence',
  log,
  async start() {
    const config = loadConfig(process.env);
    log.level = config.logLevel;
    const nc = await connectNats({ servers: config.natsServers, name: 'presence', log });
    const health = new ConnectionHealth(nc);
    const buckets = await openPresenceBuckets(nc, { replicas: config.natsReplicas, leaseTtlMs: config.leaseTtlMs });
    const leases = await LeaseTable.create({ kv: buckets.nodes, leaseTtlMs: config.leaseTtlMs, log });
    const presence = new PresenceReader({ kv: buckets.users, leases });
    const app = await buildApp({
      apiKeys: config.apiKeys,
      presence,
      logger: log,
      registry: createMetricsRegistry('presence'),
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
