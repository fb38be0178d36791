import type { KV } from '@nats-io/kv';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { openPresenceBuckets } from '@switchboard/presence-registry';
import type { UserEntry } from '@switchboard/protocol';
import { encodeUserKey } from '@switchboard/protocol';
import { NatsServer, waitFor } from '@switchboard/testkit';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type LeaseLost, LeaseTable } from '../src/lease-table.js';
import { NodeIdConflictError, NodeLease } from '../src/node-lease.js';
import { PresenceReader } from '../src/presence-reader.js';
import { UserRegistrar } from '../src/user-registrar.js';

const log = pino({ level: 'silent' });
const TTL = 1_500;

describe('presence registry', () => {
  let nats: NatsServer;
  let nc: NatsConnection;
  let nodes: KV;
  let users: KV;
  let table: LeaseTable;
  const lost: LeaseLost[] = [];

  beforeAll(async () => {
    nats = await NatsServer.start();
    nc = await connect({ servers: nats.url });
    ({ nodes, users } = await openPresenceBuckets(nc, { replicas: 1, leaseTtlMs: TTL }));
    table = await LeaseTable.create({ kv: nodes, leaseTtlMs: TTL, log, sweepIntervalMs: 50 });
    table.onLost((l) => lost.push(l));
  });
  afterAll(async () => {
    table?.stop();
    await nc?.close();
    await nats?.stop();
  });

  const entry = async (userId: string): Promise<UserEntry | null> => {
    const e = await users.get(encodeUserKey(userId));
    return e && e.operation === 'PUT' ? (e.json() as UserEntry) : null;
  };

  it('lease - alive while heartbeating, lost ("expired") within the TTL once heartbeats stop', async () => {
    const lease = new NodeLease({
      kv: nodes,
      nodeId: 'n-expire',
      epoch: 'e1',
      url: 'x',
      leaseTtlMs: TTL,
      connections: () => 0,
      log,
    });
    await lease.start();
    await waitFor(() => table.isAlive('n-expire', 'e1'));
    // Survives several TTLs of heartbeats.
    await new Promise((r) => setTimeout(r, TTL * 2));
    expect(table.isAlive('n-expire', 'e1')).toBe(true);
    lease.abandon();
    const t0 = Date.now();
    await waitFor(() => lost.find((l) => l.lease.nodeId === 'n-expire'), { timeoutMs: TTL * 3 });
    const elapsed = Date.now() - t0;
    expect(lost.find((l) => l.lease.nodeId === 'n-expire')?.reason).toBe('expired');
    expect(elapsed).toBeLessThanOrEqual(TTL + 200);
    expect(table.isAlive('n-expire', 'e1')).toBe(false);
    expect(table.isDead('n-expire', 'e1')).toBe(true);
  });

  it('lease - a restart under a new epoch marks the old one dead ("replaced")', async () => {
    const a = new NodeLease({
      kv: nodes,
      nodeId: 'n-restart',
      epoch: 'old',
      url: 'x',
      leaseTtlMs: TTL,
      connections: () => 0,
      log,
    });
    await a.start();
    await waitFor(() => table.isAlive('n-restart', 'old'));
    a.abandon();
    const b = new NodeLease({
      kv: nodes,
      nodeId: 'n-restart',
      epoch: 'new',
      url: 'x',
      leaseTtlMs: TTL,
      connections: () => 0,
      log,
    });
    await b.start();
    await waitFor(() => table.isAlive('n-restart', 'new'));
    expect(table.isAlive('n-restart', 'old')).toBe(false);
    expect(lost.find((l) => l.lease.nodeId === 'n-restart')).toMatchObject({
      reason: 'replaced',
      lease: { epoch: 'old' },
    });
    await b.stop();
    await waitFor(() => lost.find((l) => l.lease.nodeId === 'n-restart' && l.reason === 'deleted'));
  });

  it.each([
    ['ahead of', 60_000],
    ['behind', -60_000],
  ])(
    'lease - a reader whose clock is a minute %s the server judges leases right (one clock)',
    async (_, skewMs) => {
      const nodeId = `n-skew-${skewMs > 0 ? 'ahead' : 'behind'}`;
      const lease = new NodeLease({
        kv: nodes,
        nodeId,
        epoch: 'e',
        url: 'x',
        leaseTtlMs: TTL,
        connections: () => 0,
        log,
      });
      await lease.start();
      // Started after the lease was written: it comes in the snapshot.
      const skewed = await LeaseTable.create({
        kv: nodes,
        leaseTtlMs: TTL,
        log,
        sweepIntervalMs: 50,
        clock: () => Date.now() + skewMs,
      });
      const skewedLost: LeaseLost[] = [];
      skewed.onLost((l) => skewedLost.push(l));
      try {
        expect(skewed.isAlive(nodeId, 'e')).toBe(true);
        // Time passing is the point: alive across two TTLs of heartbeats, whatever the skew.
        await new Promise((r) => setTimeout(r, TTL * 2));
        expect(skewed.isAlive(nodeId, 'e')).toBe(true);
        lease.abandon();
        const t0 = Date.now();
        await waitFor(() => skewedLost.find((l) => l.lease.nodeId === nodeId), {
          timeoutMs: TTL * 3,
        });
        expect(Date.now() - t0).toBeLessThanOrEqual(TTL + 200);
      } finally {
        skewed.stop();
      }
    },
  );

  it('lease - the start of a second holder of a node id fails compare-and-set (NodeIdConflictError)', async () => {
    const make = (epoch: string) =>
      new NodeLease({
        kv: nodes,
        nodeId: 'n-twin',
        epoch,
        url: 'x',
        leaseTtlMs: TTL,
        connections: () => 0,
        log,
      });
    // Both read the key, then both write: exactly one wins.
    const results = await Promise.allSettled([make('t1').start(), make('t2').start()]);
    const rejected = results.filter((r) => r.status === 'rejected');
    expect(rejected).toHaveLength(1);
    expect((rejected[0] as PromiseRejectedResult).reason).toBeInstanceOf(NodeIdConflictError);
  });

  it('lease - the heartbeat is one small write whatever the user count', async () => {
    // Two nodes side by side, one with no user and one with 500 users really registered:
    // over the same heartbeat intervals both write their lease key as often and as big,
    // and no user entry is rewritten by a heartbeat. Writes are counted by a spy on both
    // buckets' subjects (the KV puts themselves), flushed before each read.
    const USERS = 500;
    const REFRESH_AFTER_MS = 60_000;
    const userIds = Array.from({ length: USERS }, (_, i) => `hb-user-${i}`);
    const userKeys = new Set(userIds.map((id) => `$KV.presence-users.${encodeUserKey(id)}`));
    // Same-length node ids: the payloads differ only by what the user count changes.
    const leaseWrites: Record<string, number[]> = { 'hb-none': [], 'hb-many': [] };
    let userWrites = 0;
    const leaseSub = nc.subscribe('$KV.presence-nodes.>', {
      callback: (_e, m) => {
        const node = m.subject.slice('$KV.presence-nodes.'.length);
        // A heartbeat carries the lease; the delete at stop() is empty.
        if (m.data.length > 0) leaseWrites[node]?.push(m.data.length);
      },
    });
    const userSub = nc.subscribe('$KV.presence-users.>', {
      callback: (_e, m) => {
        if (userKeys.has(m.subject)) userWrites++;
      },
    });
    await nc.flush();
    const registered = new Map<string, number>();
    const lease = (nodeId: string, connections: () => number) =>
      new NodeLease({ kv: nodes, nodeId, epoch: 'e', url: 'x', leaseTtlMs: TTL, connections, log });
    const none = lease('hb-none', () => 0);
    const many = lease('hb-many', () => registered.size);
    const reg = new UserRegistrar({ kv: users, nodeId: 'hb-many', epoch: 'e', log });
    try {
      await Promise.all([none.start(), many.start()]);
      for (const id of userIds) {
        registered.set(id, 1);
        reg.set(id, 1);
      }
      expect(await reg.flush(10_000)).toBe(true);
      reg.startRefresh(REFRESH_AFTER_MS, (id) => registered.get(id) ?? 0);
      await nc.flush();
      expect(userWrites, 'one registration write per user').toBe(USERS);
      // The window: both nodes beat at least 6 more times (about 3 s, far below the 45 s
      // before the first refresh can come due).
      const at = { none: leaseWrites['hb-none']!.length, many: leaseWrites['hb-many']!.length };
      const windowStart = Date.now();
      await waitFor(
        () =>
          leaseWrites['hb-none']!.length - at.none >= 6 &&
          leaseWrites['hb-many']!.length - at.many >= 6,
        { timeoutMs: 10_000, message: () => JSON.stringify({ at, leaseWrites }) },
      );
      await Promise.all([none.stop(), many.stop()]);
      const windowMs = Date.now() - windowStart;
      await nc.flush();
      const beats = {
        none: leaseWrites['hb-none']!.length - at.none,
        many: leaseWrites['hb-many']!.length - at.many,
      };
      const userWritesInWindow = userWrites - USERS;
      expect(windowMs).toBeLessThan(REFRESH_AFTER_MS * 0.75);
      // As many lease writes for 500 users as for none, one per interval and no more.
      expect(Math.abs(beats.many - beats.none), JSON.stringify(beats)).toBeLessThanOrEqual(1);
      const most = 1 + Math.ceil(windowMs / many.heartbeatIntervalMs);
      expect(beats.none).toBeLessThanOrEqual(most);
      expect(beats.many).toBeLessThanOrEqual(most);
      // As big: small, and apart from the count's digits the same size.
      const none0 = leaseWrites['hb-none']!;
      const many0 = leaseWrites['hb-many']!;
      for (const bytes of [...none0, ...many0]) expect(bytes).toBeLessThan(300);
      expect(Math.max(...many0) - Math.max(...none0)).toBeLessThanOrEqual(8);
      // And the users' entries were not touched by any heartbeat.
      expect(userWritesInWindow, 'user entry writes during the heartbeats').toBe(0);
    } finally {
      reg.stop();
      none.abandon();
      many.abandon();
      leaseSub.unsubscribe();
      userSub.unsubscribe();
    }
  }, 20_000);

  it('entries - count only while the node lease is alive with the same epoch', async () => {
    const lease = new NodeLease({
      kv: nodes,
      nodeId: 'n-fence',
      epoch: 'f1',
      url: 'x',
      leaseTtlMs: TTL,
      connections: () => 1,
      log,
    });
    await lease.start();
    const reg = new UserRegistrar({ kv: users, nodeId: 'n-fence', epoch: 'f1', log });
    const reader = new PresenceReader({ kv: users, leases: table });
    reg.set('fenced', 1);
    await reg.flush();
    await waitFor(() => table.isAlive('n-fence', 'f1'));
    expect((await reader.lookup('fenced')).online).toBe(true);
    lease.abandon();
    // The entry is still in KV, but its lease is gone: offline.
    await waitFor(async () => !(await reader.lookup('fenced')).online, { timeoutMs: TTL * 3 });
    expect(Object.keys((await entry('fenced'))?.nodes ?? {})).toEqual(['n-fence']);
  });

  it('entries - concurrent connects of one user on two nodes end in a correct entry (CAS)', async () => {
    const a = new UserRegistrar({ kv: users, nodeId: 'cas-a', epoch: 'ea', log });
    const b = new UserRegistrar({ kv: users, nodeId: 'cas-b', epoch: 'eb', log });
    const ids = Array.from({ length: 50 }, (_, i) => `cas-user-${i}`);
    for (const id of ids) {
      a.set(id, 1);
      b.set(id, 2);
      a.set(id, 3);
    }
    await Promise.all([a.flush(), b.flush()]);
    for (const id of ids) {
      const e = await entry(id);
      expect(e?.nodes['cas-a']).toMatchObject({ epoch: 'ea', connections: 3 });
      expect(e?.nodes['cas-b']).toMatchObject({ epoch: 'eb', connections: 2 });
    }
    expect(a.writeErrors + b.writeErrors).toBe(0);
    // And leaving concurrently leaves no node and a lastSeen.
    for (const id of ids) {
      a.set(id, 0);
      b.set(id, 0);
    }
    await Promise.all([a.flush(), b.flush()]);
    for (const id of ids) {
      const e = await entry(id);
      expect(e?.nodes).toEqual({});
      expect(e?.lastSeen).toBeGreaterThan(0);
    }
  });

  it('entries - a live entry is rewritten once it is refreshAfterMs old, with the count of that moment; a user who left is never written back', async () => {
    const reg = new UserRegistrar({ kv: users, nodeId: 'refresher', epoch: 'r1', log });
    const counts = new Map([
      ['fresh-1', 1],
      ['fresh-2', 2],
      ['fresh-3', 1],
      ['gone', 1],
    ]);
    for (const [id, n] of counts) reg.set(id, n);
    await reg.flush();
    const revision = async (id: string) => (await users.get(encodeUserKey(id)))?.revision ?? 0;
    const before = await Promise.all([...counts.keys()].map(revision));
    // 'gone' leaves; the local count changes for fresh-2 without a write (as a refresh sees it).
    counts.delete('gone');
    reg.set('gone', 0);
    await reg.flush();
    counts.set('fresh-2', 3);
    reg.startRefresh(1_000, (id) => counts.get(id) ?? 0);
    const live = ['fresh-1', 'fresh-2', 'fresh-3'];
    await waitFor(
      async () => (await Promise.all(live.map(revision))).every((r, i) => r > before[i]!),
      { timeoutMs: 5_000 },
    );
    reg.stop();
    expect((await entry('fresh-2'))?.nodes.refresher).toMatchObject({ connections: 3 });
    expect((await entry('fresh-1'))?.nodes.refresher).toMatchObject({
      epoch: 'r1',
      connections: 1,
    });
    expect((await entry('gone'))?.nodes).toEqual({});
  });

  it('entries - refresh writes per user do not grow when a node has few users (users / refreshAfterMs)', async () => {
    // Real KV writes, counted by a spy on the bucket's subjects (not the registrar's own
    // counter); the spy's flush orders it after every put already acked.
    const spy = await connect({ servers: nats.url });
    const measure = async (n: number) => {
      const prefix = `$KV.presence-users.rate-${n}-`;
      let written = 0;
      const sub = spy.subscribe('$KV.presence-users.*', {
        callback: (_e, m) => {
          if (m.subject.startsWith(prefix)) written++;
        },
      });
      await spy.flush();
      let now = Date.now();
      const reg = new UserRegistrar({
        kv: users,
        nodeId: `rate-${n}`,
        epoch: 'r',
        log,
        clock: () => now,
      });
      const ids = Array.from({ length: n }, (_, i) => `rate-${n}-${i}`);
      for (const id of ids) reg.set(id, 1);
      await reg.flush();
      await spy.flush();
      expect(written, 'one first write per user').toBe(n);
      // Passes driven by hand over 10 simulated refresh periods, every 1/20 of a period.
      for (let tick = 1; tick <= 200; tick++) {
        now += 50;
        reg.refreshDue(1_000, () => 1);
        await reg.flush();
      }
      reg.stop();
      await spy.flush();
      sub.unsubscribe();
      return (written - n) / n;
    };
    const few = await measure(2);
    const many = await measure(200);
    await spy.close();
    // About one write per user per period (10 periods, each user due after 75-100% of
    // one), whatever the user count.
    expect(few).toBeGreaterThanOrEqual(10);
    expect(few).toBeLessThanOrEqual(14);
    expect(many).toBeGreaterThanOrEqual(10);
    expect(many).toBeLessThanOrEqual(14);
    expect(Math.abs(many - few)).toBeLessThanOrEqual(2);
  });

  it('entries - a burst of changes to one user coalesces into few writes', async () => {
    const reg = new UserRegistrar({ kv: users, nodeId: 'coalesce', epoch: 'c', log });
    const before = (await users.status()).streamInfo.state.last_seq;
    for (let i = 1; i <= 200; i++) reg.set('tabby', i);
    await reg.flush();
    const after = (await users.status()).streamInfo.state.last_seq;
    expect((await entry('tabby'))?.nodes.coalesce?.connections).toBe(200);
    expect(after - before).toBeLessThanOrEqual(2);
  });

  it('entries - a write during a NATS outage is retried until NATS is back (no user left unregistered)', async () => {
    const reg = new UserRegistrar({ kv: users, nodeId: 'outage', epoch: 'o1', log });
    await nats.kill();
    reg.set('patient-user', 1);
    // A few attempts have failed; the write is still wanted.
    await waitFor(() => reg.writeErrors >= 1, { timeoutMs: 10_000 });
    expect(reg.pending).toBe(1);
    await nats.restart();
    expect(await reg.flush(20_000)).toBe(true);
    expect((await entry('patient-user'))?.nodes.outage?.connections).toBe(1);
    expect(reg.writeErrors).toBeGreaterThan(0);
  }, 40_000);

  it('entries - stop() abandons pending writes (once the attempt in flight times out)', async () => {
    const reg = new UserRegistrar({ kv: users, nodeId: 'stopping', epoch: 's1', log });
    // Its twin is given a user at the same moment and not stopped: its retries, on the
    // same schedule, say when the stopped one's would have landed had it kept trying.
    const twin = new UserRegistrar({ kv: users, nodeId: 'stopping-twin', epoch: 's1', log });
    // A spy on the abandoned user's key sees any write of it, buffered ones included.
    let abandonedWrites = 0;
    const spy = nc.subscribe(`$KV.presence-users.${encodeUserKey('never-written')}`, {
      callback: () => {
        abandonedWrites++;
      },
    });
    await nc.flush();
    try {
      await nats.kill();
      reg.set('never-written', 1);
      twin.set('twin-written', 1);
      await waitFor(() => reg.pending === 1);
      reg.stop();
      // The attempt in flight ends with its timeout; then nothing is pending or retried.
      await waitFor(() => reg.pending === 0, { timeoutMs: 10_000 });
      await nats.restart();
      // The sentinel: the twin's write of the outage, stored once NATS is back, on the
      // connection that carried the stopped registrar's attempts (a publish buffered there
      // during the outage goes out before it).
      expect(await twin.flush(20_000)).toBe(true);
      expect((await entry('twin-written'))?.nodes['stopping-twin']?.connections).toBe(1);
      await nc.flush();
      expect(await users.get(encodeUserKey('never-written'))).toBeNull();
      expect(abandonedWrites).toBe(0);
      expect(reg.writes).toBe(0);
      expect(reg.pending).toBe(0);
    } finally {
      spy.unsubscribe();
      twin.stop();
    }
  }, 30_000);
});
