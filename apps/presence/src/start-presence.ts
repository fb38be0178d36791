/** Builds and starts the presence service from its config: what `main.ts` runs and tests reuse. */
import type { HttpApp } from '@switchboard/http';
import { createMetricsRegistry } from '@switchboard/http';
import { ConnectionHealth } from '@switchboard/nats';
import type { LeaseTable } from '@switchboard/presence-registry';
import { openPresenceReader } from '@switchboard/presence-registry';
import { listenOn, type Running, type StartContext, startOnNats } from '@switchboard/runtime';
import type { Logger } from 'pino';
import { buildApp } from './app.js';
import type { PresenceConfig } from './config.js';
import { LeaderLock, openLeaderBucket } from './leader-lock.js';
import { createPresenceMetrics, observePresenceState } from './metrics.js';
import { PresenceMonitor } from './presence-monitor.js';
import { startQueryService } from './query-service.js';

export type RunningPresence = Running<{
  app: HttpApp;
  url: string;
  monitor: PresenceMonitor;
  leader: LeaderLock;
  leases: LeaseTable;
  stop(): Promise<void>;
}>;

export function startPresence(
  config: PresenceConfig,
  log: Logger,
  context?: StartContext,
): Promise<RunningPresence> {
  return startOnNats({ name: 'presence', config, log, context }, async (nc) => {
    const health = new ConnectionHealth(nc);
    const registry = createMetricsRegistry('presence');
    const metrics = createPresenceMetrics(registry);
    const {
      buckets,
      leases,
      reader: presence,
    } = await openPresenceReader(nc, {
      replicas: config.nats.replicas,
      leaseTtlMs: config.leaseTtlMs,
      log,
    });
    leases.onLost((lost) => metrics.leasesLost.inc({ reason: lost.reason }));
    const leader = new LeaderLock({
      kv: await openLeaderBucket(nc, { replicas: config.nats.replicas, ttlMs: config.leaseTtlMs }),
      ttlMs: config.leaseTtlMs,
      log,
    });
    const monitor = await PresenceMonitor.create({
      nc,
      users: buckets.users,
      nodes: buckets.nodes,
      leases,
      isLeader: () => leader.isLeader,
      leaseTtlMs: config.leaseTtlMs,
      log,
      eventsCounter: metrics.events,
    });
    observePresenceState(registry, {
      leases,
      isLeader: () => leader.isLeader,
      natsConnected: () => health.connected,
      users: () => monitor.size,
      skipped: () => monitor.skipped,
    });
    await leader.start();
    const service = await startQueryService(nc, presence, log, metrics.queries);
    const app = await buildApp({
      apiKeys: config.apiKeys,
      presence,
      logger: log,
      registry,
      readiness: { nats: () => health.connected },
    });
    app.addHook('onClose', async () => {
      await service.stop();
      await leader.stop();
      monitor.stop();
      leases.stop();
    });
    return {
      app,
      url: await listenOn(app, config, context),
      monitor,
      leader,
      leases,
      stop: () => app.close(),
    };
  });
}
