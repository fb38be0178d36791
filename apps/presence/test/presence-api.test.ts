import type { TestResponse } from '@switchboard/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PresenceRig } from './support.js';

describe('presence API', () => {
  let rig: PresenceRig;
  beforeAll(async () => {
    rig = await PresenceRig.start();
    await rig.addEdges('p-edge-1', 'p-edge-2');
  });
  afterAll(() => rig?.close());

  it('presence - a phone on one node and two tabs on another: online, 3 connections, 2 nodes', async () => {
    const phone = await rig.client('multi@example.com', 0);
    const tab1 = await rig.client('multi@example.com', 1);
    const tab2 = await rig.client('multi@example.com', 1);
    const view = await rig.view('multi@example.com');
    expect(view).toMatchObject({ userId: 'multi@example.com', online: true, connections: 3 });
    expect(view.nodes.map((n) => [n.nodeId, n.connections]).sort()).toEqual([
      ['p-edge-1', 1],
      ['p-edge-2', 2],
    ]);

    tab1.close();
    tab2.close();
    await rig.settle();
    expect(await rig.view('multi@example.com')).toMatchObject({
      online: true,
      connections: 1,
      nodes: [{ nodeId: 'p-edge-1', connections: 1 }],
    });

    phone.close();
    await rig.settle();
    const gone = await rig.view('multi@example.com');
    expect(gone).toMatchObject({ online: false, connections: 0, nodes: [] });
    expect(gone.lastSeen).toBeGreaterThan(Date.now() - 10_000);
  });

  it('presence - a never-seen user is offline without lastSeen', async () => {
    expect(await rig.view('never-seen')).toEqual({
      userId: 'never-seen',
      online: false,
      connections: 0,
      nodes: [],
    });
  });

  it('presence - a query answers for many users at once', async () => {
    await rig.client('q1', 0);
    await rig.client('q2', 1);
    const res = await rig.post('/v1/presence/query', { userIds: ['q1', 'q2', 'q3'] });
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
    const cases: Array<[Promise<TestResponse>, number, string]> = [
      [rig.get('/v1/presence/x', 'wrong-key'), 401, 'unauthorized'],
      [rig.post('/v1/presence/query', { userIds: [] }), 400, 'validation_failed'],
      [
        rig.post('/v1/presence/query', { userIds: Array.from({ length: 1001 }, (_, i) => `${i}`) }),
        400,
        'validation_failed',
      ],
      [rig.post('/v1/presence/query', { userIds: [''] }), 400, 'validation_failed'],
      [rig.post('/v1/presence/query', { ids: ['a'] }), 400, 'validation_failed'],
      [rig.post('/v1/presence/query', '{oops'), 400, 'bad_request'],
      [rig.get(`/v1/presence/${'x'.repeat(300)}`), 400, 'validation_failed'],
      [rig.get('/v1/nothing-here'), 404, 'not_found'],
    ];
    for (const [pending, status, code] of cases) {
      const res = await pending;
      expect(res.status, code).toBe(status);
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe(code);
    }
  });
});
