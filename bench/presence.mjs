// Presence costs, each side by side with its raw limit in the same run:
// - connects/s absorbed by one edge with JWT auth and presence registration on, beside a
//   bare Socket.IO server (both as separate processes, same client, same concurrency);
// - presence lookups/s (one KV read + lease filtering), beside raw KV gets of the same keys;
// - the lease heartbeat with 1 and with 10,000 users on the node: bytes written and time
//   per heartbeat (it must be the same).
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { connect } from '@nats-io/transport-node';
import {
  LeaseTable,
  NodeLease,
  openPresenceBuckets,
  PresenceReader,
  UserRegistrar,
} from '@switchboard/presence-registry';
import { encodeUserKey } from '@switchboard/protocol';
import { AppProcess, connectClient, freePort, mintToken, NatsServer } from '@switchboard/testkit';
import { pino } from 'pino';

const SECRET = 'bench-secret-bench-secret-bench-secret-00';
const CONNECTS = Number(process.env.BENCH_CONNECTS ?? 3_000);
const CONCURRENCY = 200;
const LOOKUPS = Number(process.env.BENCH_LOOKUPS ?? 20_000);
const log = pino({ level: 'silent' });

async function connectAll(url, auths) {
  const sockets = [];
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < auths.length)
        sockets.push(await connectClient(url, { token: auths[next++], timeoutMs: 60_000 }));
    }),
  );
  const ms = performance.now() - t0;
  for (const s of sockets) s.close();
  return (auths.length / ms) * 1000;
}

async function connects(nats) {
  const port = await freePort();
  const edge = await AppProcess.spawn('edge', {
    env: {
      NATS_URL: nats.url,
      NODE_ID: 'bench-storm',
      PORT: String(port),
      HOST: '127.0.0.1',
      AUTH_JWT_SECRET: SECRET,
      LOG_LEVEL: 'warn',
    },
    readyUrl: `http://127.0.0.1:${port}/readyz`,
  });
  const bare = fork(
    fileURLToPath(new URL('./baseline/bare-socketio-server.mjs', import.meta.url)),
    { stdio: 'ignore' },
  );
  const barePort = await new Promise((resolve) => bare.once('message', (m) => resolve(m.port)));
  try {
    const tokens = await Promise.all(
      Array.from({ length: CONNECTS }, (_, i) => mintToken({ sub: `c-${i}`, secret: SECRET })),
    );
    const base = await connectAll(`http://127.0.0.1:${barePort}`, tokens);
    const ours = await connectAll(`http://127.0.0.1:${port}`, tokens);
    return [
      {
        what: `connects/s, ${CONNECTS} clients, ${CONCURRENCY} in flight`,
        baseline: base,
        switchboard: ours,
        ratio: ours / base,
        baselineIs: 'bare Socket.IO server',
      },
    ];
  } finally {
    bare.kill();
    await edge.stop();
  }
}

async function lookups(nats) {
  const nc = await connect({ servers: nats.url });
  const buckets = await openPresenceBuckets(nc, { replicas: 1 });
  const lease = new NodeLease({
    kv: buckets.nodes,
    nodeId: 'bench-n',
    epoch: 'e',
    url: 'x',
    leaseTtlMs: 10_000,
    connections: () => 1000,
    log,
  });
  await lease.start();
  const reg = new UserRegistrar({ kv: buckets.users, nodeId: 'bench-n', epoch: 'e', log });
  const ids = Array.from({ length: 1000 }, (_, i) => `lookup-user-${i}`);
  for (const id of ids) reg.set(id, 1);
  await reg.flush();
  const leases = await LeaseTable.create({ kv: buckets.nodes, leaseTtlMs: 10_000, log });
  const reader = new PresenceReader({ kv: buckets.users, leases });
  const run = async (fn, concurrency) => {
    let next = 0;
    const t0 = performance.now();
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (next < LOOKUPS) await fn(ids[next++ % ids.length]);
      }),
    );
    return (LOOKUPS / (performance.now() - t0)) * 1000;
  };
  const rows = [];
  for (const c of [1, 64]) {
    const raw = await run((id) => buckets.users.get(encodeUserKey(id)), c);
    const ours = await run((id) => reader.lookup(id), c);
    rows.push({
      what: `lookups/s, ${c} in flight`,
      baseline: raw,
      switchboard: ours,
      ratio: ours / raw,
      baselineIs: 'raw KV get',
    });
  }
  leases.stop();
  lease.abandon();
  await nc.close();
  return rows;
}

async function heartbeat(nats) {
  const nc = await connect({ servers: nats.url });
  const buckets = await openPresenceBuckets(nc, { replicas: 1 });
  const measure = async (users) => {
    const lease = new NodeLease({
      kv: buckets.nodes,
      nodeId: `hb-${users}`,
      epoch: 'e',
      url: 'http://edge:3100',
      leaseTtlMs: 10_000,
      connections: () => users,
      log,
    });
    const bytes = JSON.stringify(lease.value()).length;
    const beats = 2_000;
    const t0 = performance.now();
    for (let i = 0; i < beats; i++)
      await buckets.nodes.put(`hb-${users}`, JSON.stringify(lease.value()));
    return { bytes, usPerBeat: ((performance.now() - t0) / beats) * 1000, writesPerBeat: 1 };
  };
  const one = await measure(1);
  const many = await measure(10_000);
  await nc.close();
  return [
    {
      what: 'heartbeat µs/beat (1 user vs 10,000 users)',
      baseline: one.usPerBeat,
      switchboard: many.usPerBeat,
      ratio: many.usPerBeat / one.usPerBeat,
      baselineIs: '1 user',
    },
    {
      what: 'heartbeat bytes/beat (1 user vs 10,000 users)',
      baseline: one.bytes,
      switchboard: many.bytes,
      ratio: many.bytes / one.bytes,
      baselineIs: '1 user',
    },
    {
      what: 'KV writes per heartbeat (1 user vs 10,000 users)',
      baseline: 1,
      switchboard: 1,
      ratio: 1,
      baselineIs: '1 user',
    },
  ];
}

export async function run() {
  const nats = await NatsServer.start();
  try {
    const rows = [...(await connects(nats)), ...(await lookups(nats)), ...(await heartbeat(nats))];
    return {
      name: 'presence',
      title: 'Presence: connects absorbed, lookups, heartbeat cost',
      rows,
      ratios: Object.fromEntries(rows.map((r) => [r.what, r.ratio])),
    };
  } finally {
    await nats.stop();
  }
}
