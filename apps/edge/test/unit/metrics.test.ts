/**
 * The edge's series from one place: gauges read at scrape time, and every labelled
 * series present at 0 from the start (rates and alerts see a reason before it happens).
 */
import { CloseReasons, ConnectErrors } from '@switchboard/protocol';
import { describe, expect, it } from 'vitest';
import { metricsRig } from './fakes.js';

describe('edge metrics (unit)', () => {
  it('gauges read their source when scraped', async () => {
    let connections = 3;
    const { value } = metricsRig({ connections: () => connections, users: () => 2 });
    expect(await value('switchboard_edge_connections')).toBe(3);
    connections = 5;
    expect(await value('switchboard_edge_connections')).toBe(5);
    expect(await value('switchboard_edge_users')).toBe(2);
  });

  it('every labelled series exists at 0 before anything happens', async () => {
    const { value } = metricsRig();
    for (const reason of Object.values(ConnectErrors))
      expect(await value('switchboard_edge_connections_rejected_total', { reason })).toBe(0);
    for (const reason of Object.values(CloseReasons))
      expect(await value('switchboard_edge_connections_closed_total', { reason })).toBe(0);
    for (const outcome of ['ok', 'expired', 'unauthorized', 'forbidden'])
      expect(await value('switchboard_edge_token_refreshes_total', { outcome })).toBe(0);
    expect(
      await value('switchboard_edge_deliveries_refused_total', { reason: 'ack-capacity' }),
    ).toBe(0);
    for (const outcome of ['ok', 'failed'])
      expect(await value('switchboard_edge_lease_heartbeats_total', { outcome })).toBe(0);
  });
});
