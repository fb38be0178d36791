/**
 * EdgeMetrics — every Prometheus series an edge node exports, made in one place so the
 * roles (hub, handshake, node bus, presence writer) share one set and `/metrics` names
 * them all the same way. The gauges are read at scrape time from the functions given.
 */
import { natsConnectedGauge } from '@switchboard/http/probes';
import { CloseReasons, ConnectErrors } from '@switchboard/protocol';
import { Counter, Gauge, type Registry } from 'prom-client';

/** What the gauges read when scraped. */
export type EdgeGaugeSources = {
  connections(): number;
  users(): number;
  natsConnected(): boolean;
};

export type EdgeMetrics = ReturnType<typeof createEdgeMetrics>;

export function createEdgeMetrics(registry: Registry, sources: EdgeGaugeSources) {
  natsConnectedGauge(registry, () => sources.natsConnected());
  const metrics = {
    connections: new Gauge({
      name: 'switchboard_edge_connections',
      help: 'Connected sockets on this node',
      registers: [registry],
      collect() {
        this.set(sources.connections());
      },
    }),
    users: new Gauge({
      name: 'switchboard_edge_users',
      help: 'Distinct users with at least one socket on this node',
      registers: [registry],
      collect() {
        this.set(sources.users());
      },
    }),
    accepted: new Counter({
      name: 'switchboard_edge_connections_accepted_total',
      help: 'Handshakes completed (the client saw connect, routable)',
      registers: [registry],
    }),
    rejected: new Counter({
      name: 'switchboard_edge_connections_rejected_total',
      help: 'Connections refused at the handshake, by connect_error reason',
      labelNames: ['reason'],
      registers: [registry],
    }),
    closed: new Counter({
      name: 'switchboard_edge_connections_closed_total',
      help: 'Sockets the edge closed itself, by reason (expired, slow_consumer)',
      labelNames: ['reason'],
      registers: [registry],
    }),
    refreshes: new Counter({
      name: 'switchboard_edge_token_refreshes_total',
      help: 'Token refreshes by outcome (ok, expired, unauthorized, forbidden)',
      labelNames: ['outcome'],
      registers: [registry],
    }),
    refused: new Counter({
      name: 'switchboard_edge_deliveries_refused_total',
      help: 'Deliveries the edge refused whole, by reason (ack-capacity)',
      labelNames: ['reason'],
      registers: [registry],
    }),
    heartbeats: new Counter({
      name: 'switchboard_edge_lease_heartbeats_total',
      help: 'Lease heartbeats this edge wrote, by outcome (ok, failed)',
      labelNames: ['outcome'],
      registers: [registry],
    }),
    lapses: new Counter({
      name: 'switchboard_edge_lease_lapses_total',
      help: "Times this edge's lease lapsed and it continued under a new epoch",
      registers: [registry],
    }),
    deliveries: new Counter({
      name: 'switchboard_edge_deliveries_total',
      help: 'Per-user deliveries handled from the node subject',
      registers: [registry],
    }),
    broadcasts: new Counter({
      name: 'switchboard_edge_broadcasts_total',
      help: 'Broadcasts emitted to local sockets',
      registers: [registry],
    }),
  };
  // Every labelled series exists from the start (at 0), so rates and alerts see it.
  for (const reason of Object.values(ConnectErrors)) metrics.rejected.inc({ reason }, 0);
  for (const reason of Object.values(CloseReasons)) metrics.closed.inc({ reason }, 0);
  for (const outcome of ['ok', 'expired', 'unauthorized', 'forbidden'])
    metrics.refreshes.inc({ outcome }, 0);
  metrics.refused.inc({ reason: 'ack-capacity' }, 0);
  for (const outcome of ['ok', 'failed']) metrics.heartbeats.inc({ outcome }, 0);
  return metrics;
}
