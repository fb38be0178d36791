import { Kvm } from '@nats-io/kv';
import { Buckets, Subjects } from '@switchboard/protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PresenceRig } from './support.js';

describe('presence events, drain and the NATS query service', () => {
  let rig: PresenceRig;
  beforeAll(async () => {
    rig = await PresenceRig.start();
    await rig.addEdges('ev-1', 'ev-2', 'ev-drain');
  });
  afterAll(() => rig?.close());

  it('events - one online for the first device, none for more, one offline after the last', async () => {
    const phone = await rig.client('evt', 0);
    await rig.settle();
    const tab = await rig.client('evt', 1);
    const tab2 = await rig.client('evt', 1);
    await rig.settle();
    expect(rig.eventsOf('evt')).toEqual(['online:connect']);
    tab.close();
    phone.close();
    await rig.settle();
    expect(rig.eventsOf('evt')).toEqual(['online:connect']);
    tab2.close();
    await rig.settle();
    expect(rig.eventsOf('evt')).toEqual(['online:connect', 'offline:disconnect']);
    const ev = rig.events.find((e) => e.userId === 'evt' && e.status === 'offline');
    expect(ev?.at).toBeGreaterThan(Date.now() - 5_000);
  });

  it('drain - clients are told to reconnect, land on another node, and the drained node leaves no entry', async () => {
    const movers = await Promise.all(
      ['mover-1', 'mover-2', 'mover-3'].map((u) => rig.client(u, 2)),
    );
    await rig.client('mover-3', 0); // also on a node that stays
    await rig.settle();
    const reasons = movers.map(
      (s) => new Promise<string>((resolve) => s.once('disconnect', (r) => resolve(r))),
    );
    await rig.edges[2]!.stop();
    // "transport close" is the reason on which Socket.IO clients reconnect by themselves.
    expect(await Promise.all(reasons)).toEqual([
      'transport close',
      'transport close',
      'transport close',
    ]);
    // Reconnecting lands on a node that accepts (the drained one refuses).
    for (const u of ['mover-1', 'mover-2']) await rig.client(u, 1);
    await rig.settle();

    for (const u of ['mover-1', 'mover-2', 'mover-3']) {
      expect(Object.keys((await rig.entry(u))?.nodes ?? {})).not.toContain('ev-drain');
    }
    const leases = await new Kvm(rig.spy).open(Buckets.nodes);
    expect((await leases.get('ev-drain'))?.operation ?? 'gone').not.toBe('PUT');
    expect(rig.eventsOf('mover-1')).toEqual(['online:connect', 'offline:drain', 'online:connect']);
    expect(rig.eventsOf('mover-3')).toEqual(['online:connect']);
    const mover = await rig.entry('mover-1');
    expect(mover?.nodes['ev-2']?.connections, JSON.stringify(mover)).toBe(1);
  });

  it('query service - presence.v1.query answers { userIds } and { userId }, and errors as JSON', async () => {
    await rig.client('svc-user', 0);
    await rig.settle();
    const many = await rig.spy.request(
      Subjects.presenceQuery,
      JSON.stringify({ userIds: ['svc-user', 'nobody-here'] }),
    );
    expect(many.json()).toEqual({
      users: {
        'svc-user': { online: true, connections: 1 },
        'nobody-here': { online: false, connections: 0 },
      },
    });
    const one = await rig.spy.request(
      Subjects.presenceQuery,
      JSON.stringify({ userId: 'svc-user' }),
    );
    expect(one.json()).toMatchObject({
      userId: 'svc-user',
      online: true,
      nodes: [{ nodeId: 'ev-1' }],
    });
    const bad = await rig.spy.request(Subjects.presenceQuery, JSON.stringify({ userIds: [] }));
    expect(bad.headers?.get('Nats-Service-Error-Code')).toBe('400');
    expect(bad.json()).toMatchObject({ error: { code: 'validation_failed' } });
    // Discoverable like any NATS micro service.
    const ping = await rig.spy.request('$SRV.PING.switchboard-presence', '');
    expect(ping.json()).toMatchObject({
      name: 'switchboard-presence',
      type: 'io.nats.micro.v1.ping_response',
    });
  });
});
