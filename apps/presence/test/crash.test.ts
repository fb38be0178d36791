/**
 * Fault tests with real edge processes: `kill -9` of an edge, and a fast restart under the
 * same node id. Presence runs in-process so the test can watch its events and entries.
 */
import { waitFor } from '@switchboard/testkit';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { PresenceRig } from './support.js';

const TTL = 3_000;

describe('presence under crashes', () => {
  let rig: PresenceRig;
  beforeAll(async () => {
    rig = await PresenceRig.start({ leaseTtlMs: TTL });
  });
  afterEach(() => {
    for (const c of rig.clients.splice(0)) c.close();
  });
  afterAll(() => rig?.close());

  const nodesOf = async (userId: string) =>
    Object.keys((await rig.entry(userId))?.nodes ?? { missing: 1 });

  it("kill -9 - the dead node's users are offline within TTL + 2 s, with node-lost events; others untouched", async () => {
    const a = await rig.spawnEdge('crash-a');
    const b = await rig.spawnEdge('crash-b');
    await rig.client('only-a', a.url);
    await rig.client('only-a', a.url);
    await rig.client('only-b', b.url);
    await rig.client('both', a.url);
    await rig.client('both', b.url);
    await waitFor(
      async () =>
        (await rig.view('only-a')).connections === 2 &&
        (await rig.view('both')).connections === 2 &&
        (await rig.view('only-b')).online,
    );

    await a.edge.kill();
    const killedAt = Date.now();
    await waitFor(async () => !(await rig.view('only-a')).online, {
      timeoutMs: TTL + 2_000,
      intervalMs: 50,
    });
    const offlineAfterMs = Date.now() - killedAt;
    console.log(`kill -9 → offline: ${offlineAfterMs} ms (lease TTL ${TTL} ms)`);
    expect(offlineAfterMs).toBeLessThanOrEqual(TTL + 2_000);

    // Users on the other node are untouched; a user on both keeps the live node.
    expect(await rig.view('only-b')).toMatchObject({ online: true, connections: 1 });
    expect(await rig.view('both')).toMatchObject({
      online: true,
      connections: 1,
      nodes: [{ nodeId: 'crash-b' }],
    });

    // One node-lost event for the user who lost every node, none for the others.
    await waitFor(() => rig.eventsOf('only-a').includes('offline:node-lost'));
    expect(rig.eventsOf('only-a')).toEqual(['online:connect', 'offline:node-lost']);
    expect(rig.eventsOf('both')).toEqual(['online:connect']);
    expect(rig.eventsOf('only-b')).toEqual(['online:connect']);

    // The dead node's entries are removed, and lastSeen is its last heartbeat.
    await waitFor(async () => (await nodesOf('only-a')).length === 0);
    const gone = await rig.entry('only-a');
    expect(gone?.lastSeen).toBeGreaterThan(killedAt - TTL);
    expect(gone?.lastSeen).toBeLessThanOrEqual(killedAt);
    await waitFor(async () => (await nodesOf('both')).join() === 'crash-b');
    expect((await rig.view('only-a')).lastSeen).toBe(gone?.lastSeen);
  });

  it('restart - a node restarted under the same id (new epoch) does not revive old entries', async () => {
    const c = await rig.spawnEdge('crash-c');
    await rig.client('old-user', c.url);
    await waitFor(async () => (await rig.view('old-user')).online);
    await c.edge.kill();
    // Back before the old lease could expire.
    const again = await rig.spawnEdge('crash-c', c.port);
    await waitFor(async () => !(await rig.view('old-user')).online, { timeoutMs: 1_000 });
    // The new process serves new users normally.
    await rig.client('new-user', again.url);
    await waitFor(async () => (await rig.view('new-user')).online);
    await waitFor(async () => (await nodesOf('old-user')).length === 0);
    expect(rig.eventsOf('old-user')).toEqual(['online:connect', 'offline:node-lost']);
  });
});
