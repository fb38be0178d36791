/**
 * The edges of the presence model: a lease lapse, two processes with one node id, a
 * malformed entry in the bucket, and presence leader failover.
 */
import { Kvm } from '@nats-io/kv';
import { Buckets, encodeUserKey } from '@switchboard/protocol';
import { AppProcess, freePort, waitFor } from '@switchboard/testkit';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.js';
import { startPresence } from '../src/start-presence.js';
import { API_KEY, PresenceRig, SECRET } from './support.js';

const TTL = 1_500;

describe('presence model edges', () => {
  let rig: PresenceRig;
  beforeAll(async () => {
    rig = await PresenceRig.start({ leaseTtlMs: TTL });
  });
  afterEach(() => {
    for (const c of rig.clients.splice(0)) c.close();
  });
  afterAll(() => rig?.close());

  it('lapse - an edge cut off from NATS for longer than the TTL comes back under a new epoch with its users re-registered', async () => {
    const edge = await rig.addEdge('lapser');
    await rig.client('patient', rig.edges.indexOf(edge));
    const before = (await rig.lease('lapser'))!.epoch;
    expect((await rig.entry('patient'))?.nodes.lapser?.epoch).toBe(before);
    await rig.nats.kill();
    // Readers judge the lease dead after a TTL without heartbeats.
    await new Promise((r) => setTimeout(r, TTL * 2));
    await rig.nats.restart();
    await waitFor(async () => (await rig.view('patient')).online, {
      timeoutMs: 15_000,
      message: 'user routable again after the outage',
    });
    const after = (await rig.lease('lapser'))!.epoch;
    expect(after).not.toBe(before);
    expect((await rig.entry('patient'))?.nodes.lapser?.epoch).toBe(after);
    // The old epoch is dead for readers: its entries can never count again.
    expect(rig.presence.leases.isDead('lapser', before)).toBe(true);
  }, 40_000);

  it('stall - an edge paused past its TTL is fenced and cleaned up; when it resumes it rolls its epoch and its users are online again', async () => {
    const { edge, url } = await rig.spawnEdge('staller');
    const client = await rig.client('stalled-user', url);
    await waitFor(async () => (await rig.view('stalled-user')).online);
    const before = (await rig.entry('stalled-user'))?.nodes.staller?.epoch;
    edge.pause(true);
    try {
      await waitFor(() => rig.eventsOf('stalled-user').includes('offline:node-lost'), {
        timeoutMs: TTL * 4,
      });
      await waitFor(async () => !(await rig.entry('stalled-user'))?.nodes.staller);
    } finally {
      edge.pause(false);
    }
    // The socket survived the pause; the node finds its lease fenced and registers again.
    await waitFor(async () => (await rig.view('stalled-user')).online, { timeoutMs: TTL * 4 });
    expect(client.connected).toBe(true);
    const after = (await rig.entry('stalled-user'))?.nodes.staller?.epoch;
    expect(after).toBeDefined();
    expect(after).not.toBe(before);
    expect(rig.eventsOf('stalled-user')).toEqual([
      'online:connect',
      'offline:node-lost',
      'online:connect',
    ]);
    await edge.kill();
  }, 30_000);

  it('node id - a second process with a live node id exits 1 naming the conflict; the first keeps serving', async () => {
    const first = await rig.spawnEdge('twin');
    await rig.client('twin-user', first.url);
    const port = await freePort();
    const second = await AppProcess.spawn('edge', {
      env: {
        PORT: String(port),
        HOST: '127.0.0.1',
        NODE_ID: 'twin',
        NATS_URL: rig.nats.url,
        AUTH_JWT_SECRET: SECRET,
        LEASE_TTL_MS: String(TTL),
      },
    });
    const code = await waitFor(() => (second.running ? null : { code: 0 }), { timeoutMs: 10_000 });
    expect(code).toBeTruthy();
    expect(second.output).toMatch(/node id twin is held by another process|live process answers/);
    expect(first.edge.running).toBe(true);
    expect((await rig.view('twin-user')).online).toBe(true);
    // The first still owns the lease: a TTL later the user is still online.
    await new Promise((r) => setTimeout(r, TTL + 200));
    expect((await rig.view('twin-user')).online).toBe(true);
    await first.edge.kill();
  }, 30_000);

  it('node id - a running edge whose lease is taken under another epoch stops serving and exits 1', async () => {
    const edge = await rig.spawnEdge('usurped');
    const client = await rig.client('usurped-user', edge.url);
    const closed = new Promise((r) => client.once('disconnect', r));
    const kv = await new Kvm(rig.spy).open(Buckets.nodes);
    const e = await kv.get('usurped');
    const lease = e!.json<Record<string, unknown>>();
    await kv.put('usurped', JSON.stringify({ ...lease, epoch: 'someone-else' }));
    await closed;
    await waitFor(() => !edge.edge.running, { timeoutMs: 10_000 });
    expect(edge.edge.output).toMatch(/node id usurped/);
  }, 30_000);

  it('monitor - a malformed key or value in presence-users is skipped and counted; the watch goes on', async () => {
    const kv = await new Kvm(rig.spy).open(Buckets.users);
    const skippedBefore = rig.presence.monitor.skipped;
    await kv.put(encodeUserKey('bad-value'), '{"nodes": 5}');
    await kv.put(encodeUserKey('not-json'), 'nope');
    await kv.put('_not_a_user_key_%', '{"nodes":{}}').catch(async () => {
      // A key the KV refuses cannot reach the watch; use one that decodes badly instead.
      await kv.put('u.ZZ', '{"nodes":{}}');
    });
    await waitFor(() => rig.presence.monitor.skipped >= skippedBefore + 3, {
      message: () => `skipped ${rig.presence.monitor.skipped - skippedBefore}`,
    });
    await rig.addEdge('after-bad');
    await rig.client('after-bad-user', rig.edges.length - 1);
    await waitFor(() => rig.eventsOf('after-bad-user').includes('online:connect'));
  });

  it('leader - when the leading replica dies, the other takes over within the TTL: events and clean-up go on', async () => {
    const log = pino({ level: 'silent' });
    const standby = await startPresence(
      loadConfig({
        PORT: '0',
        HOST: '127.0.0.1',
        NATS_URL: rig.nats.url,
        API_KEYS: API_KEY,
        LEASE_TTL_MS: String(TTL),
      }),
      log,
    );
    try {
      expect(rig.presence.leader.isLeader).toBe(true);
      expect(standby.leader.isLeader).toBe(false);
      // The leader dies without a goodbye: its lock expires after the TTL.
      await rig.presence.nc.close();
      const diedAt = Date.now();
      await waitFor(() => standby.leader.isLeader, { timeoutMs: TTL * 3 });
      const tookOverMs = Date.now() - diedAt;
      console.log(`leader failover: ${tookOverMs} ms (TTL ${TTL} ms)`);
      expect(tookOverMs).toBeLessThanOrEqual(TTL * 2);
      // Events come from the new leader; a killed node's users are cleaned up by it.
      const doomed = await rig.spawnEdge('doomed');
      await rig.client('failover-user', doomed.url);
      await waitFor(() => rig.eventsOf('failover-user').includes('online:connect'));
      await doomed.edge.kill();
      await waitFor(() => rig.eventsOf('failover-user').includes('offline:node-lost'), {
        timeoutMs: TTL * 3,
      });
      await waitFor(
        async () => Object.keys((await rig.entry('failover-user'))?.nodes ?? {}).length === 0,
      );
    } finally {
      await standby.stop();
    }
  }, 30_000);
});
