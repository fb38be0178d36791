/**
 * Fault tests with real edge processes: `kill -9` of an edge, and a fast restart under the
 * same node id. Presence runs in-process so the test can watch its events and entries.
 */

import { Kvm } from '@nats-io/kv';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import type { PresenceEvent, UserEntry } from '@switchboard/protocol/presence';
import { Buckets, Subjects } from '@switchboard/protocol/subjects';
import { encodeUserKey } from '@switchboard/protocol/user-key';
import { AppProcess } from '@switchboard/testkit/app-process';
import { NatsServer } from '@switchboard/testkit/nats-server';
import { freePort } from '@switchboard/testkit/ports';
import { type ClientSocket, connectClient } from '@switchboard/testkit/socket-client';
import { mintToken } from '@switchboard/testkit/tokens';
import { waitFor } from '@switchboard/testkit/wait-for';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.js';
import { type RunningPresence, startPresence } from '../src/start-presence.js';

const SECRET = 'crash-test-secret-crash-test-secret-0000';
const API_KEY = 'crash-test-api-key-00000';
const TTL = 3_000;

describe('presence under crashes', () => {
  let nats: NatsServer;
  let presence: RunningPresence;
  let spy: NatsConnection;
  const events: PresenceEvent[] = [];
  const edges: AppProcess[] = [];
  const clients: ClientSocket[] = [];

  const startEdge = async (nodeId: string, port?: number) => {
    const p = port ?? (await freePort());
    const edge = await AppProcess.spawn('edge', {
      env: {
        NATS_URL: nats.url,
        NODE_ID: nodeId,
        PORT: String(p),
        HOST: '127.0.0.1',
        AUTH_JWT_SECRET: SECRET,
        LEASE_TTL_MS: String(TTL),
      },
      readyUrl: `http://127.0.0.1:${p}/readyz`,
    });
    edges.push(edge);
    return { edge, url: `http://127.0.0.1:${p}`, port: p };
  };
  const client = async (userId: string, url: string) => {
    const s = await connectClient(url, { token: await mintToken({ sub: userId, secret: SECRET }) });
    clients.push(s);
    return s;
  };
  const view = async (userId: string) =>
    (
      await fetch(`${presence.url}/v1/presence/${encodeURIComponent(userId)}`, {
        headers: { authorization: `Bearer ${API_KEY}` },
      })
    ).json();
  const entry = async (userId: string): Promise<UserEntry | null> => {
    const kv = await new Kvm(spy).open(Buckets.users);
    const e = await kv.get(encodeUserKey(userId));
    return e && e.operation === 'PUT' ? (e.json() as UserEntry) : null;
  };

  beforeAll(async () => {
    nats = await NatsServer.start();
    presence = await startPresence(
      loadConfig({
        PORT: '0',
        HOST: '127.0.0.1',
        NATS_URL: nats.url,
        API_KEYS: API_KEY,
        LEASE_TTL_MS: String(TTL),
      }),
      pino({ level: 'silent' }),
    );
    await waitFor(() => presence.leader.isLeader);
    spy = await connect({ servers: nats.url });
    spy.subscribe(Subjects.presenceEvents, {
      callback: (_e, m) => events.push(m.json() as PresenceEvent),
    });
  });
  afterEach(() => {
    for (const c of clients.splice(0)) c.close();
  });
  afterAll(async () => {
    await Promise.all(edges.map((e) => e.kill()));
    await spy?.close();
    await presence?.stop();
    await nats?.stop();
  });

  it("kill -9 - the dead node's users are offline within TTL + 2 s, with node-lost events; others untouched", async () => {
    const a = await startEdge('crash-a');
    const b = await startEdge('crash-b');
    await client('only-a', a.url);
    await client('only-a', a.url);
    await client('only-b', b.url);
    await client('both', a.url);
    await client('both', b.url);
    await waitFor(
      async () =>
        (await view('only-a')).connections === 2 &&
        (await view('both')).connections === 2 &&
        (await view('only-b')).online,
    );

    await a.edge.kill();
    const killedAt = Date.now();
    await waitFor(async () => !(await view('only-a')).online, {
      timeoutMs: TTL + 2_000,
      intervalMs: 50,
    });
    const offlineAfterMs = Date.now() - killedAt;
    console.log(`kill -9 → offline: ${offlineAfterMs} ms (lease TTL ${TTL} ms)`);
    expect(offlineAfterMs).toBeLessThanOrEqual(TTL + 2_000);

    // Users on the other node are untouched; a user on both keeps the live node.
    expect(await view('only-b')).toMatchObject({ online: true, connections: 1 });
    expect(await view('both')).toMatchObject({
      online: true,
      connections: 1,
      nodes: [{ nodeId: 'crash-b' }],
    });

    // One node-lost event for the user who lost every node, none for the others.
    await waitFor(() => events.some((e) => e.userId === 'only-a' && e.status === 'offline'));
    expect(events.filter((e) => e.userId === 'only-a' && e.status === 'offline')).toEqual([
      expect.objectContaining({ reason: 'node-lost' }),
    ]);
    expect(
      events.filter(
        (e) => (e.userId === 'both' || e.userId === 'only-b') && e.status === 'offline',
      ),
    ).toEqual([]);

    // The dead node's entries are removed, and lastSeen is its last heartbeat.
    await waitFor(async () => Object.keys((await entry('only-a'))?.nodes ?? { x: 1 }).length === 0);
    const gone = await entry('only-a');
    expect(gone?.lastSeen).toBeGreaterThan(killedAt - TTL);
    expect(gone?.lastSeen).toBeLessThanOrEqual(killedAt);
    await waitFor(async () => Object.keys((await entry('both'))?.nodes ?? {}).join() === 'crash-b');
    expect((await view('only-a')).lastSeen).toBe(gone?.lastSeen);
  });

  it('restart - a node restarted under the same id (new epoch) does not revive old entries', async () => {
    const c = await startEdge('crash-c');
    await client('old-user', c.url);
    await waitFor(async () => (await view('old-user')).online);
    await c.edge.kill();
    // Back before the old lease could expire.
    const again = await startEdge('crash-c', c.port);
    await waitFor(async () => !(await view('old-user')).online, { timeoutMs: 1_000 });
    // The new process serves new users normally.
    await client('new-user', again.url);
    await waitFor(async () => (await view('new-user')).online);
    await waitFor(
      async () => Object.keys((await entry('old-user'))?.nodes ?? { x: 1 }).length === 0,
    );
    expect(
      events.filter((e) => e.userId === 'old-user').map((e) => `${e.status}:${e.reason}`),
    ).toEqual(['online:connect', 'offline:node-lost']);
  });
});
