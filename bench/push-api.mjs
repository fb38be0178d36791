// Push API throughput and latency, side by side with a Fastify hello-world POST in the
// same run (the ratio is the figure; this machine is shared and noisy):
// - single-message POSTs/s to one online user;
// - multicast deliveries/s: POSTs of 100 recipients spread over 2 edges;
// - POST-to-receipt latency p50/p99/p99.9 at a fixed rate.
// nats-server, 2 edges, the push API, the baseline and the receiving clients each run as
// their own process; autocannon generates the load.
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { AppProcess, freePort, mintToken, NatsServer } from '@switchboard/testkit';
import autocannon from 'autocannon';
import hdr from 'hdr-histogram-js';
import { io } from 'socket.io-client';

const SECRET = 'bench-secret-bench-secret-bench-secret-00';
const API_KEY = 'bench-api-key-0123456789';
const DURATION_S = Number(process.env.BENCH_DURATION_S ?? 8);
const CONNECTIONS = 32;
const RATE = Number(process.env.BENCH_RATE ?? 200);
const MULTICAST = 100;

const headers = { 'content-type': 'application/json', authorization: `Bearer ${API_KEY}` };

function child(path, args = []) {
  const proc = fork(fileURLToPath(new URL(path, import.meta.url)), args, {
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
  });
  return proc;
}
const message = (proc, pred) =>
  new Promise((resolve) => proc.on('message', (m) => pred(m) && resolve(m)));

async function rate(url, body) {
  const r = await autocannon({
    url,
    method: 'POST',
    headers,
    body: JSON.stringify(body),
    connections: CONNECTIONS,
    duration: DURATION_S,
  });
  if (r.non2xx > 0 || r.errors > 0)
    throw new Error(`${url}: ${r.non2xx} non-2xx, ${r.errors} errors`);
  return { rps: r.requests.average, p50: r.latency.p50, p99: r.latency.p99 };
}

async function fixedRateLatency(apiPort, edgePort) {
  const token = await mintToken({ sub: 'lat-user', secret: SECRET });
  const socket = io(`http://127.0.0.1:${edgePort}`, { auth: { token }, transports: ['websocket'] });
  await new Promise((r) => socket.once('connect', r));
  await new Promise((r) => setTimeout(r, 300));
  const h = hdr.build({
    lowestDiscernibleValue: 1,
    highestTrackableValue: 60_000_000,
    numberOfSignificantValueDigits: 3,
  });
  const sentAt = new Map();
  let got = 0;
  socket.on('lat', (data) => {
    const t0 = sentAt.get(data.seq);
    if (t0 !== undefined) {
      h.recordValue(Math.max(1, Math.round((performance.now() - t0) * 1000)));
      got++;
    }
  });
  const total = RATE * DURATION_S;
  const start = performance.now();
  const pending = [];
  for (let seq = 0; seq < total; seq++) {
    const due = start + (seq * 1000) / RATE;
    const wait = due - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    // Latency is measured from when the message was due, so a stalled sender counts too.
    sentAt.set(seq, due);
    pending.push(
      fetch(`http://127.0.0.1:${apiPort}/v1/messages`, {
        method: 'POST',
        headers,
        body: JSON.stringify({ to: 'lat-user', event: 'lat', data: { seq } }),
      }).then((r) => r.arrayBuffer()),
    );
  }
  await Promise.all(pending);
  const deadline = Date.now() + 5_000;
  while (got < total && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  socket.close();
  const ms = (p) => h.getValueAtPercentile(p) / 1000;
  return {
    sent: total,
    received: got,
    p50: ms(50),
    p99: ms(99),
    p999: ms(99.9),
    max: h.maxValue / 1000,
  };
}

export async function run() {
  const nats = await NatsServer.start();
  const [apiPort, e1, e2] = await Promise.all([freePort(), freePort(), freePort()]);
  const common = { NATS_URL: nats.url, LOG_LEVEL: 'warn', HOST: '127.0.0.1' };
  const edges = await Promise.all(
    [e1, e2].map((port, i) =>
      AppProcess.spawn('edge', {
        env: { ...common, PORT: String(port), NODE_ID: `bench-${i + 1}`, AUTH_JWT_SECRET: SECRET },
        readyUrl: `http://127.0.0.1:${port}/readyz`,
      }),
    ),
  );
  const api = await AppProcess.spawn('push-api', {
    env: {
      ...common,
      PORT: String(apiPort),
      API_KEYS: API_KEY,
      RATE_LIMIT_PER_MINUTE: '100000000',
    },
    readyUrl: `http://127.0.0.1:${apiPort}/readyz`,
  });
  const hello = child('./baseline/hello-world-server.mjs');
  const { port: helloPort } = await message(hello, (m) => m.port);
  const users = Array.from({ length: MULTICAST }, (_, i) => `mc-${i}`);
  const group = async (port, ids) => ({
    url: `http://127.0.0.1:${port}`,
    tokens: await Promise.all(ids.map((sub) => mintToken({ sub, secret: SECRET }))),
  });
  const receivers = child('./support/receivers.mjs', [
    JSON.stringify([
      await group(e1, ['single', ...users.slice(0, 50)]),
      await group(e2, users.slice(50)),
    ]),
  ]);
  await message(receivers, (m) => m.ready);
  await new Promise((r) => setTimeout(r, 500));

  try {
    const helloUrl = `http://127.0.0.1:${helloPort}/hello`;
    const sendUrl = `http://127.0.0.1:${apiPort}/v1/messages`;
    const single = { to: 'single', event: 'bench', data: { text: 'hello' } };
    const multi = { to: users, event: 'bench', data: { text: 'hello' } };
    const helloSingle = await rate(helloUrl, single);
    const oursSingle = await rate(sendUrl, single);
    const helloMulti = await rate(helloUrl, multi);
    const oursMulti = await rate(sendUrl, multi);
    receivers.send('count');
    const { received } = await message(receivers, (m) => m.received !== undefined);
    const latency = await fixedRateLatency(apiPort, e1);
    const rows = [
      {
        what: 'POST/s, 1 recipient',
        baseline: helloSingle.rps,
        switchboard: oursSingle.rps,
        ratio: oursSingle.rps / helloSingle.rps,
      },
      {
        what: `POST/s, ${MULTICAST} recipients on 2 nodes`,
        baseline: helloMulti.rps,
        switchboard: oursMulti.rps,
        ratio: oursMulti.rps / helloMulti.rps,
      },
      {
        what: 'multicast deliveries/s',
        baseline: helloMulti.rps * MULTICAST,
        switchboard: oursMulti.rps * MULTICAST,
        ratio: oursMulti.rps / helloMulti.rps,
      },
      {
        what: 'HTTP p99 ms, 1 recipient',
        baseline: helloSingle.p99,
        switchboard: oursSingle.p99,
        ratio: oursSingle.p99 / helloSingle.p99,
      },
    ];
    return {
      name: 'push-api',
      title: `Push API vs Fastify hello-world POST (${CONNECTIONS} connections, ${DURATION_S} s each); latency at ${RATE} msg/s`,
      rows,
      extra: { socketMessagesReceived: received, latencyAtFixedRate: latency },
      ratios: Object.fromEntries(rows.map((r) => [r.what, r.ratio])),
    };
  } finally {
    receivers.kill();
    hello.kill();
    await api.stop();
    await Promise.all(edges.map((e) => e.stop()));
    await nats.stop();
  }
}
