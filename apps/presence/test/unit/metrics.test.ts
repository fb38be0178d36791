/**
 * The presence gauges read at scrape time, from an in-memory lease table: what each series
 * says for a known set of leases, and that a node gone leaves no series behind.
 */
import type { LeaseTable } from '@switchboard/presence-registry';
import type { NodeLease } from '@switchboard/protocol';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { observePresenceState } from '../../src/metrics.js';

const lease = (nodeId: string, over: Partial<NodeLease> = {}): NodeLease => ({
  nodeId,
  epoch: `${nodeId}-epoch`,
  startedAt: 0,
  heartbeatAt: 0,
  url: `http://${nodeId}`,
  connections: 0,
  draining: false,
  ...over,
});

function rig(leases: NodeLease[], now: number) {
  const registry = new Registry();
  const table = { alive: () => leases } as unknown as LeaseTable;
  observePresenceState(registry, {
    leases: table,
    isLeader: () => true,
    natsConnected: () => true,
    users: () => 7,
    skipped: () => 2,
    clock: () => now,
  });
  const series = async (name: string) =>
    Object.fromEntries(
      (await registry.getSingleMetric(name)!.get()).values.map((v) => [
        JSON.stringify(v.labels),
        v.value,
      ]),
    );
  return { series };
}

describe('presence metrics (unit)', () => {
  it('per live node: heartbeat age, epoch age and connections; live nodes by draining', async () => {
    const leases = [
      lease('a', { startedAt: 1_000, heartbeatAt: 9_000, connections: 3 }),
      lease('b', { startedAt: 5_000, heartbeatAt: 9_500, connections: 0, draining: true }),
    ];
    const { series } = rig(leases, 10_000);
    expect(await series('switchboard_presence_lease_heartbeat_age_seconds')).toEqual({
      '{"node":"a"}': 1,
      '{"node":"b"}': 0.5,
    });
    expect(await series('switchboard_presence_lease_epoch_age_seconds')).toEqual({
      '{"node":"a"}': 9,
      '{"node":"b"}': 5,
    });
    expect(await series('switchboard_presence_node_connections')).toEqual({
      '{"node":"a"}': 3,
      '{"node":"b"}': 0,
    });
    expect(await series('switchboard_presence_live_nodes')).toEqual({
      '{"draining":"false"}': 1,
      '{"draining":"true"}': 1,
    });
    expect(await series('switchboard_presence_users')).toEqual({ '{}': 7 });
    expect(await series('switchboard_presence_leader')).toEqual({ '{}': 1 });
    expect(await series('switchboard_presence_entries_skipped_total')).toEqual({ '{}': 2 });
  });

  it('a node that is gone leaves no series behind; a clock behind a heartbeat reads 0', async () => {
    const leases = [lease('a', { heartbeatAt: 20_000, startedAt: 20_000 }), lease('b')];
    const { series } = rig(leases, 10_000);
    expect(Object.keys(await series('switchboard_presence_node_connections'))).toHaveLength(2);
    leases.pop();
    expect(await series('switchboard_presence_node_connections')).toEqual({ '{"node":"a"}': 0 });
    expect(await series('switchboard_presence_lease_heartbeat_age_seconds')).toEqual({
      '{"node":"a"}': 0,
    });
  });
});
