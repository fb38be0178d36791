import { loadConfig as loadEdgeConfig } from '@switchboard/edge/config';
import { type RunningEdge, startEdge } from '@switchboard/edge/start-edge';
import { NatsServer } from '@switchboard/testkit/nats-server';
import { type ClientSocket, connectClient } from '@switchboard/testkit/socket-client';
import { mintToken } from '@switchboard/testkit/tokens';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.js';
import { type RunningPresence, startPresence } from '../src/start-presence.js';

const SECRET = 'presence-test-secret-presence-test-secret';
const API_KEY = 'presence-test-api-key-0123';
const log = pino({ level: 'silent' });

describe('presence API', () => {
  let nats: NatsServer;
  const edges: RunningEdge[] = [];
  const clients: ClientSocket[] = [];
  let presence: RunningPresence;

  const client = async (userId: string, edge: number) => {
    const s = await connectClient(`http://127.0.0.1:${edges[edge]!.node.port}`, {
      token: await mintToken({ sub: userId, secret: SECRET }),
    });
    clients.push(s);
    await edges[edge]!.node.flushPresence();
    return s;
  };
  const get = (path: string, key = API_KEY) =>
    fetch(`${presence.url}${path}`, { headers: { authorization: `Bearer ${key}` } });
  const post = (path: string, body: unknown) =>
    fetch(`${presence.url}${path}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' },
      body: typeof body === 'string' ? body : JSON.stringify(body),
    });

  beforeAll(async () => {
    nats = await NatsServer.start();
    for (const nodeId of ['p-edge-1', 'p-edge-2']) {
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
  });
  afterAll(async () => {
    for (const c of clients) c.close();
    await presence?.stop();
    for (const e of edges) await e.stop();
    await nats?.stop();
  });

  it('presence - a phone on one node and two tabs on another: online, 3 connections, 2 nodes', async () => {
    const phone = await client('multi@example.com', 0);
    const tab1 = await client('multi@example.com', 1);
    const tab2 = await client('multi@example.com', 1);
    const view = await (
      await get(`/v1/presence/${encodeURIComponent('multi@example.com')}`)
    ).json();
    expect(view).toMatchObject({ userId: 'multi@example.com', online: true, connections: 3 });
    expect(
      view.nodes
        .map((n: { nodeId: string; connections: number }) => [n.nodeId, n.connections])
        .sort(),
    ).toEqual([
      ['p-edge-1', 1],
      ['p-edge-2', 2],
    ]);

    tab1.close();
    tab2.close();
    await new Promise((r) => setTimeout(r, 50));
    await edges[1]!.node.flushPresence();
    const after = await (
      await get(`/v1/presence/${encodeURIComponent('multi@example.com')}`)
    ).json();
    expect(after).toMatchObject({
      online: true,
      connections: 1,
      nodes: [{ nodeId: 'p-edge-1', connections: 1 }],
    });

    phone.close();
    await new Promise((r) => setTimeout(r, 50));
    await edges[0]!.node.flushPresence();
    const gone = await (
      await get(`/v1/presence/${encodeURIComponent('multi@example.com')}`)
    ).json();
    expect(gone).toMatchObject({ online: false, connections: 0, nodes: [] });
    expect(gone.lastSeen).toBeGreaterThan(Date.now() - 10_000);
  });

  it('presence - a never-seen user is offline without lastSeen', async () => {
    const view = await (await get('/v1/presence/never-seen')).json();
    expect(view).toEqual({ userId: 'never-seen', online: false, connections: 0, nodes: [] });
  });

  it('presence - a query answers for many users at once', async () => {
    await client('q1', 0);
    await client('q2', 1);
    const res = await post('/v1/presence/query', { userIds: ['q1', 'q2', 'q3'] });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({
      users: {
        q1: { online: true, connections: 1 },
        q2: { online: true, connections: 1 },
        q3: { online: false, connections: 0 },
      },
    });
  });

  it('presence - bad inputs get 4xx with the JSON error body', async () => {
    const cases: Array<[Promise<Response>, number, string]> = [
      [get('/v1/presence/x', 'wrong-key'), 401, 'unauthorized'],
      [post('/v1/presence/query', { userIds: [] }), 400, 'validation_failed'],
      [
        post('/v1/presence/query', { userIds: Array.from({ length: 1001 }, (_, i) => `${i}`) }),
        400,
        'validation_failed',
      ],
      [post('/v1/presence/query', { userIds: [''] }), 400, 'validation_failed'],
      [post('/v1/presence/query', { ids: ['a'] }), 400, 'validation_failed'],
      [post('/v1/presence/query', '{oops'), 400, 'bad_request'],
      [get(`/v1/presence/${'x'.repeat(300)}`), 400, 'validation_failed'],
      [get('/v1/nothing-here'), 404, 'not_found'],
    ];
    for (const [pending, status, code] of cases) {
      const res = await pending;
      expect(res.status, code).toBe(status);
      expect((await res.json()).error.code).toBe(code);
    }
  });
});
