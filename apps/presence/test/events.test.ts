import { Kvm } from '@nats-io/kv';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { loadConfig as loadEdgeConfig } from '@switchboard/edge/config';
import { type RunningEdge, startEdge } from '@switchboard/edge/start-edge';
import type { PresenceEvent, UserEntry } from '@switchboard/protocol/presence';
import { Buckets, Subjects } from '@switchboard/protocol/subjects';
import { encodeUserKey } from '@switchboard/protocol/user-key';
import { NatsServer } from '@switchboard/testkit/nats-server';
import { type ClientSocket, connectClient } from '@switchboard/testkit/socket-client';
import { mintToken } from '@switchboard/testkit/tokens';
import { waitFor } from '@switchboard/testkit/wait-for';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.js';
import { type RunningPresence, startPresence } from '../src/start-presence.js';

const SECRET = 'events-test-secret-events-test-secret-00';
const API_KEY = 'events-test-api-key-0000';
const log = pino({ level: 'silent' });

describe('presence events, drain and the NATS query service', () => {
  let nats: NatsServer;
  let spy: NatsConnection;
  let presence: RunningPresence;
  const edges: RunningEdge[] = [];
  const clients: ClientSocket[] = [];
  const events: PresenceEvent[] = [];

  const client = async (userId: string, edge: number) => {
    const s = await connectClient(`http://127.0.0.1:${edges[edge]!.node.port}`, {
      token: await mintToken({ sub: userId, secret: SECRET }),
    });
    clients.push(s);
    return s;
  };
  const of = (userId: string) =>
    events.filter((e) => e.userId === userId).map((e) => `${e.status}:${e.reason}`);
  const settle = async () => {
    await Promise.all(edges.map((e) => e.node.flushPresence()));
    await new Promise((r) => setTimeout(r, 150));
  };

  beforeAll(async () => {
    nats = await NatsServer.start();
    for (const nodeId of ['ev-1', 'ev-2', 'ev-drain']) {
      edges.push(
        await startEdge(
          loadEdgeConfig({
            PORT: '0',
            HOST: '127.0.0.1',
            NODE_ID: nodeId,
            NATS_URL: nats.url,
            AUTH_JWT_SECRET: SECRET,
            LEASE_TTL_MS: '3000',
          }),
          log,
        ),
      );
    }
    presence = await startPresence(
      loadConfig({
        PORT: '0',
        HOST: '127.0.0.1',
        NATS_URL: nats.url,
        API_KEYS: API_KEY,
        LEASE_TTL_MS: '3000',
      }),
      log,
    );
    await waitFor(() => presence.leader.isLeader);
    spy = await connect({ servers: nats.url });
    spy.subscribe(Subjects.presenceEvents, {
      callback: (_e, m) => events.push(m.json() as PresenceEvent),
    });
    await spy.flush();
  });
  afterAll(async () => {
    for (const c of clients) c.close();
    await spy?.close();
    await presence?.stop();
    for (const e of edges) await e.stop().catch(() => {});
    await nats?.stop();
  });

  it('events - one online for the first device, none for more, one offline after the last', async () => {
    const phone = await client('evt', 0);
    await settle();
    const tab = await client('evt', 1);
    const tab2 = await client('evt', 1);
    await settle();
    expect(of('evt')).toEqual(['online:connect']);
    tab.close();
    phone.close();
    await settle();
    expect(of('evt')).toEqual(['online:connect']);
    tab2.close();
    await waitFor(() => of('evt').length === 2);
    expect(of('evt')).toEqual(['online:connect', 'offline:disconnect']);
    const ev = events.find((e) => e.userId === 'evt' && e.status === 'offline');
    expect(ev?.at).toBeGreaterThan(Date.now() - 5_000);
  });

  it('drain - clients are told to reconnect, land on another node, and the drained node leaves no entry', async () => {
    const movers = await Promise.all(['mover-1', 'mover-2', 'mover-3'].map((u) => client(u, 2)));
    await client('mover-3', 0); // also on a node that stays
    await settle();
    const reasons = movers.map(
      (s) => new Promise<string>((resolve) => s.once('disconnect', (r) => resolve(r))),
    );
    await edges[2]!.stop();
    // "transport close" is the reason on which Socket.IO clients reconnect by themselves.
    expect(await Promise.all(reasons)).toEqual([
      'transport close',
      'transport close',
      'transport close',
    ]);
    // Reconnecting lands on a node that accepts (the drained one refuses).
    for (const u of ['mover-1', 'mover-2']) await client(u, 1);
    await settle();

    const kv = await new Kvm(spy).open(Buckets.users);
    for (const u of ['mover-1', 'mover-2', 'mover-3']) {
      const e = (await kv.get(encodeUserKey(u)))?.json() as UserEntry;
      expect(Object.keys(e.nodes)).not.toContain('ev-drain');
    }
    expect(await kv.get('ev-drain')).toBeNull();
    const leases = await new Kvm(spy).open(Buckets.nodes);
    expect((await leases.get('ev-drain'))?.operation ?? 'gone').not.toBe('PUT');
    expect(of('mover-1')).toEqual(['online:connect', 'offline:drain', 'online:connect']);
    expect(of('mover-3')).toEqual(['online:connect']);
  });

  it('query service - presence.v1.query answers { userIds } and { userId }, and errors as JSON', async () => {
    await client('svc-user', 0);
    await settle();
    const many = await spy.request(
      Subjects.presenceQuery,
      JSON.stringify({ userIds: ['svc-user', 'nobody-here'] }),
    );
    expect(many.json()).toEqual({
      users: {
        'svc-user': { online: true, connections: 1 },
        'nobody-here': { online: false, connections: 0 },
      },
    });
    const one = await spy.request(Subjects.presenceQuery, JSON.stringify({ userId: 'svc-user' }));
    expect(one.json()).toMatchObject({
      userId: 'svc-user',
      online: true,
      nodes: [{ nodeId: 'ev-1' }],
    });
    const bad = await spy.request(Subjects.presenceQuery, JSON.stringify({ userIds: [] }));
    expect(bad.headers?.get('Nats-Service-Error-Code')).toBe('400');
    expect(bad.json()).toMatchObject({ error: { code: 'validation_failed' } });
    // Discoverable like any NATS micro service.
    const ping = await spy.request('$SRV.PING.switchboard-presence', '');
    expect(ping.json()).toMatchObject({
      name: 'switchboard-presence',
      type: 'io.nats.micro.v1.ping_response',
    });
  });
});
