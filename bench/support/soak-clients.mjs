// A child process of the soak holding one Socket.IO client per user, with churn: on request
// it closes random connected clients and reconnects each after a short random pause,
// possibly to another edge. It records every receipt of the soak's event and every connect
// and close with the time (µs of CLOCK_MONOTONIC, shared by every process on one Linux
// machine), and hands them over when the parent drains them, so that the parent can match
// each delivered message to its receipt and explain a miss by a close.
//
// IPC (parent → child), each answered with a message of the same `cmd`:
//   { cmd: 'prepare', users: [{ index, userId }], urls, secret }  mints the tokens
//   { cmd: 'connect', concurrency }   opens every client (user i on urls[index mod N])
//   { cmd: 'churn', count, maxPauseMs }  closes up to `count` random connected clients and
//                                        reconnects each after 0..maxPauseMs to a random edge
//   { cmd: 'drain' }   receipts [seq, messageId, recvUs], events [kind, index, us, detail]
//                      and counters since the last drain
//   { cmd: 'settle', timeoutMs }  waits until no reconnect is pending (bounded)
//   { cmd: 'close' }   closes every client
// Every loop is bounded: handshakes retry at most MAX_ATTEMPTS times, a churn round touches
// at most `count` clients, a settle waits at most `timeoutMs`.

import { mintToken } from '@switchboard/testkit';
import { io } from 'socket.io-client';

const SOAK_EVENT = 'soak';
const nowUs = () => Number(process.hrtime.bigint() / 1000n);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const MAX_ATTEMPTS = 20;
const HANDSHAKE_TIMEOUT_MS = 20_000;

let urls = [];
/** index → { index, userId, token, socket, state: 'idle'|'connecting'|'open'|'paused' } */
const clients = new Map();
/** Indexes of open clients, for O(1) random picks. */
const open = [];
const openAt = new Map();

let receipts = [];
let events = [];
const counters = {
  connects: 0,
  connectFailures: 0,
  handshakeRetries: 0,
  churnCloses: 0,
  unexpectedCloses: 0,
  otherEvents: {},
  closeReasons: {},
  connectErrors: {},
};
let pendingReconnects = 0;
let closing = false;

function markOpen(c) {
  openAt.set(c.index, open.length);
  open.push(c.index);
}

function markClosed(c) {
  const at = openAt.get(c.index);
  if (at === undefined) return;
  const last = open.pop();
  if (last !== c.index) {
    open[at] = last;
    openAt.set(last, at);
  }
  openAt.delete(c.index);
}

/**
 * One handshake; resolves with the socket or the connect_error message. The listeners go on
 * before the handshake: the edge makes a user routable before it completes the handshake, so
 * a message can arrive in the same read as the CONNECT packet, before any code awaiting
 * `connect` runs.
 */
function handshake(url, token) {
  const socket = io(url, {
    auth: { token },
    transports: ['websocket'],
    reconnection: false,
    forceNew: true,
    timeout: HANDSHAKE_TIMEOUT_MS,
  });
  socket.on(SOAK_EVENT, (data, meta) => {
    receipts.push([data?.s ?? -1, meta?.id ?? null, nowUs()]);
  });
  socket.onAny((event) => {
    if (event !== SOAK_EVENT) counters.otherEvents[event] = (counters.otherEvents[event] ?? 0) + 1;
  });
  return new Promise((resolve) => {
    socket.once('connect', () => resolve({ socket }));
    socket.once('connect_error', (err) => {
      socket.close();
      resolve({ error: String(err?.message ?? err) });
    });
  });
}

/** Connects client `c` to `url`, retrying a refused handshake with a jittered pause. */
async function connect(c, url) {
  c.state = 'connecting';
  for (let attempt = 1; attempt <= MAX_ATTEMPTS && !closing; attempt++) {
    const r = await handshake(url, c.token);
    if (r.socket) {
      const socket = r.socket;
      if (closing) {
        socket.close();
        break;
      }
      c.socket = socket;
      c.state = 'open';
      c.url = url;
      counters.connects++;
      events.push(['c', c.index, nowUs(), urls.indexOf(url)]);
      markOpen(c);
      socket.once('disconnect', (reason) => {
        if (c.socket !== socket) return; // a close we asked for, already recorded
        // Not asked for: the server closed it or the transport broke.
        const us = nowUs();
        counters.unexpectedCloses++;
        counters.closeReasons[reason] = (counters.closeReasons[reason] ?? 0) + 1;
        events.push(['x', c.index, us, `server:${reason}`]);
        c.socket = null;
        markClosed(c);
        if (closing) return;
        c.state = 'paused';
        pendingReconnects++;
        setTimeout(
          () => {
            connect(c, url).finally(() => pendingReconnects--);
          },
          100 + Math.random() * 400,
        );
      });
      return true;
    }
    counters.connectErrors[r.error] = (counters.connectErrors[r.error] ?? 0) + 1;
    if (attempt < MAX_ATTEMPTS) {
      counters.handshakeRetries++;
      await sleep(50 + Math.random() * 250 * attempt);
    }
  }
  c.state = 'idle';
  counters.connectFailures++;
  events.push(['f', c.index, nowUs(), url]);
  return false;
}

/** Closes up to `count` random open clients; each reconnects after 0..maxPauseMs. */
function churn(count, maxPauseMs) {
  let done = 0;
  for (let i = 0; i < count && open.length > 0; i++) {
    const index = open[Math.floor(Math.random() * open.length)];
    const c = clients.get(index);
    const socket = c.socket;
    c.socket = null;
    markClosed(c);
    c.state = 'paused';
    events.push(['x', c.index, nowUs(), 'churn']);
    socket.close();
    counters.churnCloses++;
    done++;
    const url = urls[Math.floor(Math.random() * urls.length)];
    pendingReconnects++;
    setTimeout(() => {
      connect(c, url).finally(() => pendingReconnects--);
    }, Math.random() * maxPauseMs);
  }
  return done;
}

async function connectAll(concurrency) {
  const list = [...clients.values()];
  let next = 0;
  let failed = 0;
  const startUs = nowUs();
  await Promise.all(
    Array.from({ length: Math.min(concurrency, list.length) }, async () => {
      while (next < list.length) {
        const c = list[next++];
        if (!(await connect(c, urls[c.index % urls.length]))) failed++;
      }
    }),
  );
  return { connected: list.length - failed, failed, seconds: (nowUs() - startUs) / 1e6 };
}

process.on('message', async (m) => {
  switch (m.cmd) {
    case 'prepare': {
      urls = m.urls;
      const minted = await Promise.all(
        m.users.map(async ({ index, userId }) => ({
          index,
          userId,
          token: await mintToken({ sub: userId, secret: m.secret, expiresInSeconds: 86_400 }),
          socket: null,
          state: 'idle',
        })),
      );
      for (const c of minted) clients.set(c.index, c);
      process.send({ cmd: 'prepare', count: clients.size });
      break;
    }
    case 'connect':
      process.send({ cmd: 'connect', ...(await connectAll(m.concurrency ?? 50)) });
      break;
    case 'churn':
      process.send({ cmd: 'churn', closed: churn(m.count, m.maxPauseMs ?? 1_000) });
      break;
    case 'drain': {
      const out = { cmd: 'drain', receipts, events, open: open.length, pendingReconnects };
      receipts = [];
      events = [];
      process.send({ ...out, counters });
      break;
    }
    case 'settle': {
      const deadline = Date.now() + (m.timeoutMs ?? 30_000);
      while (pendingReconnects > 0 && Date.now() < deadline) await sleep(50);
      process.send({ cmd: 'settle', pendingReconnects, open: open.length });
      break;
    }
    case 'close':
      closing = true;
      for (const c of clients.values()) {
        const socket = c.socket;
        c.socket = null;
        socket?.close();
      }
      process.send({ cmd: 'close' });
      break;
  }
});
process.send({ ready: true });
