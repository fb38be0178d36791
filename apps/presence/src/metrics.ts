/**
 * The presence service's own metrics (beside Node's process metrics), Prometheus
 * conventions: `switchboard_presence_*`, base units (seconds), `_total` for counters.
 * Gauges are read at scrape time from the lease table, the monitor and the leader lock, so
 * the hot paths pay nothing for them. Every replica reports what it sees: dashboards and
 * alerts take `max` over replicas (they all watch the same buckets), and `sum` only of
 * `switchboard_presence_leader`.
 */

import { natsConnectedGauge } from '@switchboard/http';
import type { LeaseLossReason, LeaseTable } from '@switchboard/presence-registry';
import type { NodeLease as Lease } from '@switchboard/protocol';
import { Counter, Gauge, type Registry } from 'prom-client';

export type PresenceMetrics = ReturnType<typeof createPresenceMetrics>;

const LEASE_LOSS_REASONS: readonly LeaseLossReason[] = ['expired', 'deleted', 'replaced'];

/** The counters the service increments as things happen. */
export function createPresenceMetrics(registry: Registry) {
  const leasesLost = new Counter({
    name: 'switchboard_presence_leases_lost_total',
    help: 'Edge lease epochs this replica saw end, by reason: deleted (a clean stop), expired (no heartbeat for a lease TTL), replaced (a new epoch under the same node id)',
    labelNames: ['reason'],
    registers: [registry],
  });
  // Present at 0 so that increase() and alerts work from the start.
  for (const reason of LEASE_LOSS_REASONS) leasesLost.inc({ reason }, 0);
  const queries = new Counter({
    name: 'switchboard_presence_nats_queries_total',
    help: 'Presence lookups on the NATS service presence.v1.query, by outcome (ok, invalid, unavailable)',
    labelNames: ['outcome'],
    registers: [registry],
  });
  for (const outcome of ['ok', 'invalid', 'unavailable']) queries.inc({ outcome }, 0);
  return {
    events: new Counter({
      name: 'switchboard_presence_events_total',
      help: 'Presence events published on presence.v1.events (by the leader only), by status and reason',
      labelNames: ['status', 'reason'],
      registers: [registry],
    }),
    leasesLost,
    queries,
  };
}

export type PresenceState = {
  leases: LeaseTable;
  isLeader: () => boolean;
  natsConnected: () => boolean;
  /** User entries held in memory by the monitor. */
  users: () => number;
  /** Malformed user entries ignored since start. */
  skipped: () => number;
  clock?: () => number;
};

/** Gauges read at scrape time. */
export function observePresenceState(registry: Registry, state: PresenceState): void {
  const now = state.clock ?? Date.now;
  new Gauge({
    name: 'switchboard_presence_live_nodes',
    help: 'Edge nodes whose lease is alive as this replica sees it, by draining (true while a node is being drained)',
    labelNames: ['draining'],
    registers: [registry],
    collect() {
      let serving = 0;
      let draining = 0;
      for (const lease of state.leases.alive()) {
        if (lease.draining) draining++;
        else serving++;
      }
      this.set({ draining: 'false' }, serving);
      this.set({ draining: 'true' }, draining);
    },
  });
  // One series per live edge: a node that is gone leaves no series behind.
  const perLiveNode = (name: string, help: string, value: (lease: Lease, t: number) => number) =>
    new Gauge({
      name,
      help,
      labelNames: ['node'],
      registers: [registry],
      collect() {
        this.reset();
        const t = now();
        for (const lease of state.leases.alive(t))
          this.set({ node: lease.nodeId }, value(lease, t));
      },
    });
  perLiveNode(
    'switchboard_presence_lease_heartbeat_age_seconds',
    "Seconds since each live edge's last heartbeat (this replica's clock minus the edge's heartbeat time: includes clock skew between hosts)",
    (lease, t) => Math.max(0, (t - lease.heartbeatAt) / 1000),
  );
  perLiveNode(
    'switchboard_presence_lease_epoch_age_seconds',
    "Seconds since each live edge's current lease epoch started (process start or last lapse): small and resetting means the node restarts or lapses",
    (lease, t) => Math.max(0, (t - lease.startedAt) / 1000),
  );
  perLiveNode(
    'switchboard_presence_node_connections',
    'Connections each live edge reported in its last heartbeat',
    (lease) => lease.connections,
  );
  new Gauge({
    name: 'switchboard_presence_leader',
    help: '1 while this replica holds the presence leader lock (clean-ups and events), else 0',
    registers: [registry],
    collect() {
      this.set(state.isLeader() ? 1 : 0);
    },
  });
  new Gauge({
    name: 'switchboard_presence_users',
    help: 'User entries (users with at least one connection, or a last-seen time) held in memory',
    registers: [registry],
    collect() {
      this.set(state.users());
    },
  });
  new Counter({
    name: 'switchboard_presence_entries_skipped_total',
    help: 'Malformed user entries ignored (each is logged)',
    registers: [registry],
    collect() {
      this.reset();
      this.inc(state.skipped());
    },
  });
  natsConnectedGauge(registry, state.natsConnected);
}
