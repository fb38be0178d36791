/**
 * The metrics registry every app starts from (Node's process metrics, the NATS counters)
 * and the `switchboard_nats_connected` gauge. No Fastify here: the edge and the OS push
 * worker load this through `@switchboard/http/probes`.
 */
import { natsPermissionViolations, natsReconnects } from '@switchboard/nats';
import { Counter, collectDefaultMetrics, Gauge, Registry } from 'prom-client';

/** A registry with Node's default process metrics, prefixed by the app's name. */
export function createMetricsRegistry(app: string): Registry {
  const registry = new Registry();
  registry.setDefaultLabels({ app });
  // Event-loop delay sampled every 100 ms, not prom-client's 10 ms: the default wakes every
  // process 100 times a second (measured: 5.6 against 2.4 ms of CPU per idle second).
  collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: 100 });
  new Counter({
    name: 'switchboard_nats_permission_violations_total',
    help: 'Permission violations NATS reported to this process (a deployment fault; each is logged)',
    registers: [registry],
    collect() {
      this.reset();
      this.inc(natsPermissionViolations());
    },
  });
  new Counter({
    name: 'switchboard_nats_reconnects_total',
    help: 'Times this process reconnected to NATS (a server restarted, or the network broke)',
    registers: [registry],
    collect() {
      this.reset();
      this.inc(natsReconnects());
    },
  });
  return registry;
}

/** `switchboard_nats_connected`: the same gauge, under the same name, in every app. */
export function natsConnectedGauge(registry: Registry, connected: () => boolean): void {
  new Gauge({
    name: 'switchboard_nats_connected',
    help: '1 while the NATS connection is up (not closed, not between servers), else 0',
    registers: [registry],
    collect() {
      this.set(connected() ? 1 : 0);
    },
  });
}
