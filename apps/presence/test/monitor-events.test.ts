/**
 * Presence events against a lease judged expired here while its node lives on: a replica
 * that stalled (or whose watch lagged) sees a lease go silent for a TTL, and the entries of
 * that epoch stop counting until a heartbeat arrives. A user's events must still alternate
 * online/offline and end in the user's state: each is a change of what this replica last
 * counted for the user, not of a recount of the entry's previous revision (which, taken
 * while the epoch did not count, emitted `online` twice and lost an `offline`).
 */
import type { KV } from '@nats-io/kv';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { LeaseTable, openPresenceBuckets } from '@switchboard/presence-registry';
import { encodeUserKey, type PresenceEvent, Subjects } from '@switchboard/protocol';
import { NatsServer, waitFor } from '@switchboard/testkit';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PresenceMonitor } from '../src/presence-monitor.js';

const TTL = 1_000;
const log = pino({ level: 'silent' });

describe('presence events while a lease is judged expired here', () => {
  let nats: NatsServer;
  let nc: NatsConnection;
  let nodes: KV;
  let users: KV;
  let table: LeaseTable;
  let monitor: PresenceMonitor;
  let skewMs = 0;
  let leader = true;
  const events: PresenceEvent[] = [];

  beforeAll(async () => {
    nats = await NatsServer.start();
    nc = await connect({ servers: nats.url });
    ({ nodes, users } = await openPresenceBuckets(nc, { replicas: 1, leaseTtlMs: TTL }));
    nc.subscribe(Subjects.presenceEvents, {
      callback: (_err, msg) => {
        events.push(msg.json<PresenceEvent>());
      },
    });
    table = await LeaseTable.create({
      kv: nodes,
      leaseTtlMs: TTL,
      log,
      sweepIntervalMs: 50,
      clock: () => Date.now() + skewMs,
    });
    monitor = await PresenceMonitor.create({
      nc,
      users,
      nodes,
      leases: table,
      isLeader: () => leader,
      leaseTtlMs: TTL,
      log,
    });
  });
  afterAll(async () => {
    monitor?.stop();
    table?.stop();
    await nc?.close();
    await nats?.stop();
  });

  const lease = (nodeId: string, epoch: string) =>
    nodes.put(
      nodeId,
      JSON.stringify({
        nodeId,
        epoch,
        startedAt: Date.now(),
        heartbeatAt: Date.now(),
        url: `http://${nodeId}`,
        connections: 1,
        draining: false,
      }),
    );
  const entry = (userId: string, nodeId: string, epoch: string) =>
    users.put(
      encodeUserKey(userId),
      JSON.stringify({ nodes: { [nodeId]: { epoch, connections: 1, since: Date.now() } } }),
    );
  const of = (userId: string) => events.filter((e) => e.userId === userId).map((e) => e.status);

  it('events - alternate and end true for users whose node this replica judged expired', async () => {
    await lease('edge-a', 'a1');
    await entry('moves', 'edge-a', 'a1');
    await entry('leaves', 'edge-a', 'a1');
    await waitFor(() => of('moves').length === 1 && of('leaves').length === 1);

    // edge-a goes silent here for a TTL (this replica not leading then: no fence, no clean-up).
    leader = false;
    skewMs = 2 * TTL;
    await waitFor(() => table.isDead('edge-a', 'a1'));
    leader = true;

    // One user moves to a live node; the other leaves.
    await lease('edge-b', 'b1');
    await entry('moves', 'edge-b', 'b1');
    await users.delete(encodeUserKey('leaves'));
    // Sentinel: events go out in order on one connection; once this one is here, any event
    // for the two users above has arrived.
    await entry('sentinel', 'edge-b', 'b1');
    await waitFor(() => of('sentinel').length === 1);

    expect(of('moves')).toEqual(['online']);
    expect(of('leaves')).toEqual(['online', 'offline']);
    expect(monitor.eventsPublished).toBe(4);
  });
});
