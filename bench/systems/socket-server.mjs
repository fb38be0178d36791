// A Socket.IO node for the baselines, configured like the edge (same socket.io, websocket and
// polling accepted, no per-message deflate, 20 s ping, 64 KiB buffer, no logs) and
// authenticating clients like the edge: an HS256 JWT in `auth.token`, verified with jose
// against a key imported once, one verification per handshake.
//
// BENCH_ADAPTER selects the design:
// - `classic`: @socket.io/redis-adapter createAdapter, one room per user; every node receives
//   every message published by the emitter;
// - `sharded`: createShardedAdapter (Redis 7 sharded pub/sub, dynamic subscription mode), one
//   room per user: a node subscribes to the channels of the rooms it holds;
// - `none`: no adapter; the raw limit: `{ cmd: 'emit' }` over IPC runs an emit loop in this
//   process on a fixed schedule, straight to the users' sockets.
import { webcrypto } from 'node:crypto';
import { createServer } from 'node:http';
import { createAdapter, createShardedAdapter } from '@socket.io/redis-adapter';
import { jwtVerify } from 'jose';
import { createClient } from 'redis';
import { Server } from 'socket.io';

const mode = process.env.BENCH_ADAPTER ?? 'none';
const key = await webcrypto.subtle.importKey(
  'raw',
  new TextEncoder().encode(process.env.AUTH_JWT_SECRET),
  { name: 'HMAC', hash: 'SHA-256' },
  false,
  ['verify'],
);

const http = createServer((_req, res) => {
  res.writeHead(404).end();
});
const io = new Server(http, {
  cors: { origin: '*' },
  pingInterval: 20_000,
  pingTimeout: 20_000,
  maxHttpBufferSize: 64 * 1024,
  serveClient: false,
});

if (mode === 'classic' || mode === 'sharded') {
  const pub = createClient({ url: process.env.REDIS_URL });
  const sub = pub.duplicate();
  await Promise.all([pub.connect(), sub.connect()]);
  io.adapter(mode === 'classic' ? createAdapter(pub, sub) : createShardedAdapter(pub, sub));
}

/** userId → sockets, for the raw emit loop (`none`). */
const byUser = new Map();

io.use(async (socket, next) => {
  try {
    const { payload } = await jwtVerify(socket.handshake.auth?.token, key, {
      algorithms: ['HS256'],
      requiredClaims: ['sub', 'exp'],
    });
    socket.data.userId = payload.sub;
    next();
  } catch {
    next(new Error('unauthorized'));
  }
});

io.on('connection', (socket) => {
  const userId = socket.data.userId;
  if (mode === 'none') {
    const set = byUser.get(userId) ?? new Set();
    byUser.set(userId, set);
    set.add(socket);
    socket.on('disconnect', () => {
      set.delete(socket);
      if (set.size === 0) byUser.delete(userId);
    });
  } else {
    socket.join(userId);
  }
});

const nowUs = () => Number(process.hrtime.bigint() / 1000n);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** The raw limit: emits `count` messages at `rate`/s, round-robin over `users`. */
async function emitLoop({ rate, count, runId, users, event }) {
  const start = nowUs() + 2_000;
  let seq = 0;
  while (seq < count) {
    const now = nowUs();
    for (; seq < count && start + (seq * 1e6) / rate <= now; seq++) {
      const due = Math.round(start + (seq * 1e6) / rate);
      const meta = { id: `${runId}-${seq}`, sentAt: Date.now() };
      const data = { r: runId, seq, t: due, text: 'hello' };
      for (const s of byUser.get(users[seq % users.length]) ?? []) s.emit(event, data, meta);
    }
    if (seq < count) await sleep(Math.max(0, (start + (seq * 1e6) / rate - nowUs()) / 1000));
  }
  return { sent: count, startUs: start, lastSendUs: nowUs() };
}

process.on('message', async (m) => {
  if (m?.cmd === 'emit') process.send({ cmd: 'emitted', ...(await emitLoop(m)) });
});
// A clean exit, so that --cpu-prof writes its profile.
process.once('SIGTERM', () => {
  io.close();
  process.exit(0);
});

http.listen(Number(process.env.PORT ?? 0), '127.0.0.1', () =>
  process.send?.({ port: http.address().port }),
);
