// `node bench/profile-send-path.mjs`: CPU profiles of the push API and one edge at a steady
// single-recipient rate (PROF_RATE, PROF_MESSAGES), self time summed per package and per
// function, in µs per message: where the per-message CPU goes, library by library.
import { mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { AppProcess, freePort, mintToken, NatsServer } from '@switchboard/testkit';
import { io } from 'socket.io-client';
import { originalFrame } from './support/original-frame.mjs';

const SECRET = 'profile-secret-profile-secret-profile-00';
const KEY = 'profile-api-key-0123456789';
const dir = process.env.PROF_DIR ?? '/tmp/prof';
rmSync(dir, { recursive: true, force: true });
mkdirSync(dir, { recursive: true });
const nats = await NatsServer.start();
const edgePort = await freePort();
const apiPort = await freePort();
const edge = await AppProcess.spawn('edge', {
  env: {
    NATS_URL: nats.url,
    NODE_ID: 'p1',
    PORT: String(edgePort),
    HOST: '127.0.0.1',
    AUTH_JWT_SECRET: SECRET,
    LOG_LEVEL: 'warn',
  },
  readyUrl: `http://127.0.0.1:${edgePort}/readyz`,
  nodeArgs: ['--cpu-prof', `--cpu-prof-dir=${dir}/edge`],
});
const api = await AppProcess.spawn('push-api', {
  env: {
    NATS_URL: nats.url,
    PORT: String(apiPort),
    HOST: '127.0.0.1',
    API_KEYS: KEY,
    LOG_LEVEL: 'warn',
  },
  readyUrl: `http://127.0.0.1:${apiPort}/readyz`,
  nodeArgs: ['--cpu-prof', `--cpu-prof-dir=${dir}/api`],
});
const users = Array.from({ length: 200 }, (_, i) => `pu-${i}`);
let got = 0;
const sockets = await Promise.all(
  users.map(async (u) => {
    const s = io(`http://127.0.0.1:${edgePort}`, {
      auth: { token: await mintToken({ sub: u, secret: SECRET }) },
      transports: ['websocket'],
      forceNew: true,
    });
    s.onAny(() => got++);
    await new Promise((r) => s.once('connect', r));
    return s;
  }),
);
const N = Number(process.env.PROF_MESSAGES ?? 6000);
const rate = Number(process.env.PROF_RATE ?? 1000);
const t0 = Date.now();
const pending = [];
for (let i = 0; i < N; i++) {
  const due = t0 + (i * 1000) / rate;
  const wait = due - Date.now();
  if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  pending.push(
    fetch(`http://127.0.0.1:${apiPort}/v1/messages`, {
      method: 'POST',
      headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify({
        to: users[i % users.length],
        event: 'p.msg',
        data: { i, text: 'hello world' },
      }),
    }).then((r) => r.text()),
  );
}
await Promise.all(pending);
while (got < N) await new Promise((r) => setTimeout(r, 50));
for (const s of sockets) s.close();
await api.stop();
await edge.stop();
await nats.stop();
for (const role of ['api', 'edge']) {
  const file = readdirSync(join(dir, role)).find((f) => f.endsWith('.cpuprofile'));
  const prof = JSON.parse(readFileSync(join(dir, role, file), 'utf8'));
  const self = new Map();
  const byId = new Map(prof.nodes.map((n) => [n.id, n]));
  const dt = new Map();
  for (let i = 0; i < prof.samples.length; i++) {
    const id = prof.samples[i];
    dt.set(id, (dt.get(id) ?? 0) + (prof.timeDeltas[i] ?? 0));
  }
  let total = 0;
  const fn = new Map();
  for (const [id, us] of dt) {
    const n = byId.get(id);
    const { url, lineNumber } = originalFrame(n.callFrame);
    const m = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
    const pkg = m
      ? m[1]
      : url.includes('/work/main/')
        ? url
            .replace(/.*\/work\/main\//, '')
            .split('/')
            .slice(0, 2)
            .join('/')
        : url.startsWith('node:')
          ? 'node-internal'
          : n.callFrame.functionName || '(native)';
    self.set(pkg, (self.get(pkg) ?? 0) + us);
    const f = `${n.callFrame.functionName || '(anon)'} ${url.replace(/.*node_modules\//, '').replace(/.*\/work\/main\//, '')}:${lineNumber}`;
    fn.set(f, (fn.get(f) ?? 0) + us);
    total += us;
  }
  const idle = self.get('(idle)') ?? 0;
  console.log(
    `\n## ${role}: ${((total - idle) / 1000).toFixed(0)} ms busy for ${N} messages = ${((total - idle) / N).toFixed(1)} µs/message`,
  );
  for (const [k, v] of [...self].sort((a, b) => b[1] - a[1]).slice(0, 18))
    if (k !== '(idle)') console.log(`${(v / N).toFixed(1).padStart(7)} µs  ${k}`);
  console.log('  top functions:');
  for (const [k, v] of [...fn].sort((a, b) => b[1] - a[1]).slice(0, 22))
    if (!k.startsWith('(idle)')) console.log(`${(v / N).toFixed(1).padStart(7)} µs  ${k}`);
}
process.exit(0);
