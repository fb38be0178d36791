// POST-to-receipt latency: a service POSTs a message, a connected client receives it.
// Sequential (one message in flight), N messages, against the real stack as separate
// processes (nats-server, edge, push-api) and, in the same run, against the baseline
// (one process: Fastify POST → socket.emit). Reports p50/p99/p99.9 and the ratios.
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { AppProcess, freePort, mintToken, NatsServer } from '@switchboard/testkit';
import hdr from 'hdr-histogram-js';
import { io } from 'socket.io-client';

const N = Number(process.env.BENCH_MESSAGES ?? 300);
const WARMUP = 50;
const SECRET = 'bench-secret-bench-secret-bench-secret-00';
const API_KEY = 'bench-api-key-0123456789';

function connectSocket(url, auth) {
  const socket = io(url, { auth, transports: ['websocket'], reconnection: false });
  return new Promise((resolve, reject) => {
    socket.once('connect', () => resolve(socket));
    socket.once('connect_error', reject);
  });
}

async function measure(label, socket, post) {
  const h = hdr.build({
    lowestDiscernibleValue: 1,
    highestTrackableValue: 10_000_000,
    numberOfSignificantValueDigits: 3,
  });
  let waiting = null;
  socket.on('bench', (data) => {
    if (waiting && data.seq === waiting.seq) waiting.resolve(process.hrtime.bigint());
  });
  for (let seq = 0; seq < N + WARMUP; seq++) {
    const received = new Promise((resolve) => {
      waiting = { seq, resolve };
    });
    const t0 = process.hrtime.bigint();
    const res = await post(seq);
    if (!res.ok) throw new Error(`${label}: POST answered ${res.status} ${await res.text()}`);
    await res.arrayBuffer();
    const t1 = await received;
    if (seq >= WARMUP) h.recordValue(Number((t1 - t0) / 1000n)); // µs
  }
  const q = (p) => h.getValueAtPercentile(p) / 1000;
  return { label, n: N, p50: q(50), p99: q(99), p999: q(99.9), max: h.maxValue / 1000 };
}

export async function run() {
  const nats = await NatsServer.start();
  const [edgePort, apiPort] = await Promise.all([freePort(), freePort()]);
  const common = { NATS_URL: nats.url, LOG_LEVEL: 'warn', HOST: '127.0.0.1' };
  const edge = await AppProcess.spawn('edge', {
    env: { ...common, PORT: String(edgePort), NODE_ID: 'bench-edge', AUTH_JWT_SECRET: SECRET },
    readyUrl: `http://127.0.0.1:${edgePort}/readyz`,
  });
  const api = await AppProcess.spawn('push-api', {
    env: { ...common, PORT: String(apiPort), API_KEYS: API_KEY },
    readyUrl: `http://127.0.0.1:${apiPort}/readyz`,
  });
  const baseline = fork(
    fileURLToPath(new URL('./baseline/direct-emit-server.mjs', import.meta.url)),
    { stdio: 'ignore' },
  );
  const baselinePort = await new Promise((resolve) =>
    baseline.once('message', (m) => resolve(m.port)),
  );

  try {
    const ours = await connectSocket(`http://127.0.0.1:${edgePort}`, {
      token: await mintToken({ sub: 'bench-user', secret: SECRET }),
    });
    await new Promise((r) => setTimeout(r, 300)); // presence write
    const theirs = await connectSocket(`http://127.0.0.1:${baselinePort}`, {
      userId: 'bench-user',
    });
    const headers = { 'content-type': 'application/json', authorization: `Bearer ${API_KEY}` };
    const base = await measure('baseline: Fastify POST → socket.emit, one process', theirs, (seq) =>
      fetch(`http://127.0.0.1:${baselinePort}/send`, {
        method: 'POST',
        headers,
        body: JSON.stringify({ to: 'bench-user', event: 'bench', data: { seq } }),
      }),
    );
    const sb = await measure('switchboard: push-api → presence KV → NATS → edge', ours, (seq) =>
      fetch(`http://127.0.0.1:${apiPort}/v1/messages`, {
        method: 'POST',
        headers,
        body: JSON.stringify({ to: 'bench-user', event: 'bench', data: { seq } }),
      }),
    );
    ours.close();
    theirs.close();
    return {
      name: 'latency',
      title: `POST-to-receipt latency, ${N} sequential messages (ms)`,
      rows: [base, sb],
      ratios: { p50: sb.p50 / base.p50, p99: sb.p99 / base.p99 },
    };
  } finally {
    baseline.kill();
    await api.stop();
    await edge.stop();
    await nats.stop();
  }
}
