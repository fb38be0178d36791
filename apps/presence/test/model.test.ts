/**
 * Presence model test: a seeded random schedule of connects, disconnects, short-lived
 * connections, `kill -9` of an edge and restarts under the same node id, on 3 real edge
 * processes. The test keeps the ground truth (which device is connected where) and, after
 * each quiet period, asks every reader: the presence HTTP API, the NATS query service and
 * the push API (whose outcome must match, and whose message must reach every device).
 * At the end, each user's `presence.v1.events` must alternate online/offline and end in
 * the true state.
 *
 * Size and seed: MODEL_OPS (default 240), MODEL_SEED (default: random, printed).
 * `npm run test:model` runs it larger.
 */
import type { PresenceView } from '@switchboard/protocol';
import { Subjects } from '@switchboard/protocol';
import {
  AppProcess,
  type ClientSocket,
  collect,
  connectClient,
  freePort,
  http,
  mintToken,
  type Received,
  waitFor,
} from '@switchboard/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { API_KEY, PresenceRig, SECRET } from './support.js';

const OPS = Number(process.env.MODEL_OPS ?? 240);
const SEED = Number(process.env.MODEL_SEED ?? Math.floor(Math.random() * 2 ** 31));
const USERS = Array.from({ length: Number(process.env.MODEL_USERS ?? 20) }, (_, i) => `m${i}`);
const EDGES = 3;
const MAX_DEVICES = 3;
/** Lease TTL of the run; a killed node's users must be offline one TTL after the kill. */
const TTL = 1_500;
/** The staleness contract under test: after this much quiet, every reader is exact. */
const QUIET_MS = 1_000;

/** mulberry32: small, seedable, good enough for schedules. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

type Device = { id: number; userId: string; edge: number; socket: ClientSocket; got: Received[] };
type Edge = { nodeId: string; url: string; proc: AppProcess | null };

describe('presence model', () => {
  let rig: PresenceRig;
  let api: AppProcess;
  let apiUrl: string;
  const edges: Edge[] = [];
  const devices = new Map<number, Device>();
  const mismatches: string[] = [];
  let nextDevice = 0;

  beforeAll(async () => {
    // Entries are refreshed within half of their max_age: with the shortest allowed (60 s),
    // refreshes run during the test, as they do on a long-lived node.
    rig = await PresenceRig.start({ leaseTtlMs: TTL, edgeEnv: { USER_ENTRY_TTL_MS: '60000' } });
    for (let i = 0; i < EDGES; i++) {
      const { edge, url } = await rig.spawnEdge(`model-${i + 1}`);
      edges.push({ nodeId: `model-${i + 1}`, url, proc: edge });
    }
    const port = await freePort();
    apiUrl = `http://127.0.0.1:${port}`;
    api = await AppProcess.spawn('push-api', {
      env: {
        PORT: String(port),
        HOST: '127.0.0.1',
        NATS_URL: rig.nats.url,
        API_KEYS: API_KEY,
        LEASE_TTL_MS: String(TTL),
      },
      readyUrl: `${apiUrl}/readyz`,
    });
  });

  afterAll(async () => {
    for (const d of devices.values()) d.socket.close();
    await api?.kill();
    await rig?.close();
  });

  const truthOf = (userId: string) => {
    const byNode = new Map<string, number>();
    for (const d of devices.values()) {
      if (d.userId !== userId) continue;
      const nodeId = edges[d.edge]!.nodeId;
      byNode.set(nodeId, (byNode.get(nodeId) ?? 0) + 1);
    }
    let total = 0;
    for (const n of byNode.values()) total += n;
    return { total, byNode };
  };

  async function connect(userId: string, edge: number): Promise<Device> {
    const token = await mintToken({ sub: userId, secret: SECRET });
    const socket = await connectClient(edges[edge]!.url, { token });
    const d: Device = { id: nextDevice++, userId, edge, socket, got: collect(socket) };
    devices.set(d.id, d);
    return d;
  }

  function disconnect(d: Device): void {
    devices.delete(d.id);
    d.socket.close();
  }

  async function kill(edge: number): Promise<void> {
    await edges[edge]!.proc!.kill();
    edges[edge]!.proc = null;
    for (const d of [...devices.values()]) {
      if (d.edge === edge) {
        devices.delete(d.id);
        d.socket.close();
      }
    }
  }

  async function restart(edge: number): Promise<void> {
    const { edge: proc, url } = await rig.spawnEdge(edges[edge]!.nodeId);
    edges[edge]!.proc = proc;
    edges[edge]!.url = url;
  }

  async function check(step: number, what: string): Promise<void> {
    const tag = `step ${step} (${what})`;
    const httpRes = (await (await rig.post('/v1/presence/query', { userIds: USERS })).json()) as {
      users: Record<string, { online: boolean; connections: number }>;
    };
    const natsRes = (
      await rig.spy.request(Subjects.presenceQuery, JSON.stringify({ userIds: USERS }), {
        timeout: 5_000,
      })
    ).json() as { users: Record<string, { online: boolean; connections: number }> };
    await Promise.all(
      USERS.map(async (userId, i) => {
        const truth = truthOf(userId);
        const want = { online: truth.total > 0, connections: truth.total };
        const viaHttp = httpRes.users[userId];
        const viaNats = natsRes.users[userId];
        if (viaHttp?.online !== want.online || viaHttp.connections !== want.connections)
          mismatches.push(
            `${tag} ${userId}: truth ${truth.total}, HTTP ${JSON.stringify(viaHttp)}`,
          );
        if (viaNats?.online !== want.online || viaNats.connections !== want.connections)
          mismatches.push(
            `${tag} ${userId}: truth ${truth.total}, NATS ${JSON.stringify(viaNats)}`,
          );
        const view = (await rig.view(userId)) as PresenceView;
        const nodes = view.nodes.map((n) => [n.nodeId, n.connections]).sort();
        if (JSON.stringify(nodes) !== JSON.stringify([...truth.byNode].sort()))
          mismatches.push(
            `${tag} ${userId}: truth nodes ${JSON.stringify([...truth.byNode])}, GET ${JSON.stringify(nodes)}`,
          );
        const marker = `${step}:${i}`;
        const res = await http(`${apiUrl}/v1/messages`, {
          method: 'POST',
          headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' },
          body: JSON.stringify({ to: userId, event: 'model.check', data: { marker } }),
        });
        const result = ((await res.json()) as { results?: Array<Record<string, unknown>> })
          .results?.[0];
        const expected =
          truth.total > 0
            ? { status: 'delivered', connections: truth.total }
            : { status: 'dropped', reason: 'offline' };
        if (
          result?.status !== expected.status ||
          result.connections !== expected.connections ||
          result.reason !== expected.reason
        ) {
          mismatches.push(
            `${tag} ${userId}: truth ${truth.total}, push API ${res.status} ${JSON.stringify(result)}`,
          );
        }
        // Every connected device gets the message.
        for (const d of devices.values()) {
          if (d.userId !== userId) continue;
          const arrived = await waitFor(
            () => d.got.some((m) => (m.data as { marker?: string }).marker === marker),
            { timeoutMs: 2_000 },
          ).catch(() => false);
          if (!arrived)
            mismatches.push(
              `${tag} ${userId}: device ${d.id} on ${edges[d.edge]!.nodeId} got nothing`,
            );
        }
      }),
    );
  }

  it(
    'model - after each quiet period, presence (HTTP, NATS, push API) matches the ground truth; events alternate and end true',
    async () => {
      console.log(`presence model: seed ${SEED}, ${OPS} operations (MODEL_SEED=${SEED} to replay)`);
      const rnd = random(SEED);
      const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;
      let done = 0;
      let step = 0;
      let kills = 0;
      let restarts = 0;
      const startedAt = Date.now();
      while (done < OPS) {
        step++;
        const dead = edges.map((e, i) => (e.proc ? -1 : i)).filter((i) => i >= 0);
        const live = edges.map((e, i) => (e.proc ? i : -1)).filter((i) => i >= 0);
        let what: string;
        let quiet = QUIET_MS;
        if (dead.length > 0) {
          // A killed node comes back under the same node id.
          await restart(dead[0]!);
          restarts++;
          done++;
          what = `restart ${edges[dead[0]!]!.nodeId}`;
        } else if (live.length > 1 && rnd() < 0.1) {
          const victim = pick(live);
          await kill(victim);
          kills++;
          done++;
          what = `kill -9 ${edges[victim]!.nodeId}`;
          if (rnd() < 0.5) {
            // Back at once, inside the old lease's TTL: the new epoch replaces it.
            await restart(victim);
            restarts++;
            what += ' + restart';
          } else {
            quiet = TTL + 250;
          }
        } else {
          // A burst of concurrent changes: connects, disconnects, short-lived connections.
          const n = 4 + Math.floor(rnd() * 9);
          const existing = [...devices.values()];
          const ops: Array<Promise<unknown>> = [];
          const leaving = new Set<Device>();
          const counts = new Map(USERS.map((u) => [u, truthOf(u).total]));
          for (let k = 0; k < n; k++) {
            const r = rnd();
            if (r < 0.35 && existing.length > 0) {
              const d = pick(existing);
              if (!leaving.has(d)) {
                leaving.add(d);
                ops.push(Promise.resolve().then(() => disconnect(d)));
              }
            } else {
              const userId = pick(USERS);
              if ((counts.get(userId) ?? 0) >= MAX_DEVICES) continue;
              counts.set(userId, (counts.get(userId) ?? 0) + 1);
              const edge = pick(live);
              const flap = r > 0.8;
              const stayMs = Math.floor(rnd() * 30);
              ops.push(
                connect(userId, edge).then(async (d) => {
                  if (!flap) return;
                  await new Promise((res) => setTimeout(res, stayMs));
                  disconnect(d);
                }),
              );
            }
          }
          await Promise.all(ops);
          done += n;
          what = `${n} changes`;
        }
        await new Promise((r) => setTimeout(r, quiet));
        await check(step, what);
        if (mismatches.length > 20) break;
      }
      // Events, per user: online/offline alternate, starting online, ending in the truth.
      const eventsAgree = () =>
        USERS.filter((userId) => {
          const seq = rig.events.filter((e) => e.userId === userId).map((e) => e.status);
          const alternates = seq.every((s, i) => s === (i % 2 === 0 ? 'online' : 'offline'));
          const last = seq.at(-1) ?? 'offline';
          return !alternates || (last === 'online') !== truthOf(userId).total > 0;
        });
      const bad = await waitFor(() => eventsAgree().length === 0, { timeoutMs: 3_000 })
        .then(() => [])
        .catch(() => eventsAgree());
      for (const userId of bad) {
        mismatches.push(
          `events ${userId}: truth ${truthOf(userId).total}, ${rig.eventsOf(userId).join(' ')}`,
        );
      }
      console.log(
        `presence model: ${step} checks, ${done} operations (${kills} kills, ${restarts} restarts), ${rig.events.length} events, ${mismatches.length} mismatches in ${Date.now() - startedAt} ms`,
      );
      expect(mismatches, `seed ${SEED}: replay with MODEL_SEED=${SEED}`).toEqual([]);
    },
    Math.max(120_000, OPS * 1_000),
  );
});
