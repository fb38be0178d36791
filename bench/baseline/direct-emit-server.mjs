// Baseline: the raw limit of one HTTP POST turned into one Socket.IO emit, in a single
// process with no NATS, no presence and no validation. Switchboard's latency is reported
// as a ratio to this.
import Fastify from 'fastify';
import { Server } from 'socket.io';

const app = Fastify();
const io = new Server(app.server, { serveClient: false });
const byUser = new Map();
io.on('connection', (socket) => {
  const userId = socket.handshake.auth?.userId;
  byUser.set(userId, socket);
  socket.on('disconnect', () => byUser.delete(userId));
});
app.post('/send', async (req) => {
  const { to, event, data } = req.body;
  const socket = byUser.get(to);
  if (socket) socket.emit(event, data, { id: 'x', sentAt: Date.now() });
  return { delivered: socket ? 1 : 0 };
});
await app.listen({ port: Number(process.env.PORT ?? 0), host: '127.0.0.1' });
process.send?.({ port: app.server.address().port });
