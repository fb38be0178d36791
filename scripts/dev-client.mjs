#!/usr/bin/env node
// A small Socket.IO client: `npm run client -- <userId> [edgeUrl]`. Connects as the user with
// a development token, prints every message that arrives, and acks those that ask for it.
import { io } from 'socket.io-client';
import { mintDevToken } from './dev-secrets.mjs';

const [userId, url = process.env.EDGE_URL ?? 'http://127.0.0.1:3100'] = process.argv.slice(2);
if (!userId) {
  console.error('usage: npm run client -- <userId> [edgeUrl]');
  process.exit(2);
}
const token = await mintDevToken(userId);

const socket = io(url, { auth: { token }, transports: ['websocket'] });
socket.on('connect', () =>
  console.log(`connected to ${url} as ${JSON.stringify(userId)} (socket ${socket.id})`),
);
socket.on('connect_error', (err) => console.error(`connect_error: ${err.message}`));
socket.on('disconnect', (reason) => console.log(`disconnected: ${reason}`));
socket.onAny((event, data, meta, ack) => {
  console.log(JSON.stringify({ event, data, meta }));
  if (typeof ack === 'function') ack();
});
process.on('SIGINT', () => {
  socket.close();
  process.exit(0);
});
