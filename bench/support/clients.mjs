// A child process holding Socket.IO clients for the comparison, so that receiving costs no
// server CPU and does not compete with the sender. Every system gets the same client:
// socket.io-client over websocket only, a JWT (HS256, testkit's mintToken) in `auth.token`.
// It measures latency as receipt time minus the message's due time `t` (µs of
// CLOCK_MONOTONIC, which every process on one Linux machine shares).
//
// IPC: { cmd: 'prepare', targets: [{ url, userId }], secret } mints the tokens;
// { cmd: 'connect', concurrency } opens them all; { cmd: 'reset', runId, perSeq } starts
// counting messages of one run; { cmd: 'count' }; { cmd: 'report' }; { cmd: 'close' }.

import { mintToken } from '@switchboard/testkit';
import { io } from 'socket.io-client';

const nowUs = () => Number(process.hrtime.bigint() / 1000n);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const MAX_ATTEMPTS = 20;

let prepared = [];
const sockets = [];
let runId = null;
let received = 0;
let lat = [];
/** seq → [deliveries, last arrival µs], for multicast completion. */
let perSeq = null;

function onMessage(_event, data) {
  if (data === null || typeof data !== 'object' || data.r !== runId) return;
  received++;
  const now = nowUs();
  lat.push(now - data.t);
  if (perSeq) {
    const e = perSeq.get(data.seq);
    if (e) {
      e[0]++;
      e[1] = now;
    } else perSeq.set(data.seq, [1, now]);
  }
}

/** One client; retries a refused or timed-out handshake with a jittered pause. */
async function connectOne({ url, token }) {
  for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
    const socket = io(url, {
      auth: { token },
      transports: ['websocket'],
      reconnection: false,
      forceNew: true,
      timeout: 20_000,
    });
    const ok = await new Promise((resolve) => {
      socket.once('connect', () => resolve(true));
      socket.once('connect_error', () => resolve(false));
    });
    if (ok) {
      socket.onAny(onMessage);
      sockets.push(socket);
      return true;
    }
    socket.close();
    await sleep(50 + Math.random() * 250 * attempt);
  }
  return false;
}

async function connectAll(concurrency) {
  const startUs = nowUs();
  let next = 0;
  let failed = 0;
  await Promise.all(
    Array.from({ length: Math.min(concurrency, prepared.length) }, async () => {
      while (next < prepared.length) if (!(await connectOne(prepared[next++]))) failed++;
    }),
  );
  return { connected: prepared.length - failed, failed, startUs, endUs: nowUs() };
}

process.on('message', async (m) => {
  switch (m.cmd) {
    case 'prepare':
      prepared = await Promise.all(
        m.targets.map(async ({ url, userId }) => ({
          url,
          token: await mintToken({ sub: userId, secret: m.secret, expiresInSeconds: 86_400 }),
        })),
      );
      process.send({ cmd: 'prepared', count: prepared.length });
      break;
    case 'connect':
      process.send({ cmd: 'connected', ...(await connectAll(m.concurrency ?? 50)) });
      break;
    case 'reset':
      runId = m.runId;
      received = 0;
      lat = [];
      perSeq = m.perSeq ? new Map() : null;
      process.send({ cmd: 'reset' });
      break;
    case 'count':
      process.send({ cmd: 'count', received });
      break;
    case 'report':
      process.send({ cmd: 'report', received, lat, perSeq: perSeq ? [...perSeq] : null });
      break;
    case 'close':
      for (const s of sockets.splice(0)) s.close();
      process.send({ cmd: 'closed' });
      break;
  }
});
process.send({ ready: true });
