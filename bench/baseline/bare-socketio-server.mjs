// Baseline for connects/s: a bare Socket.IO server (no auth, no presence, no NATS).
import { createServer } from 'node:http';
import { Server } from 'socket.io';

const http = createServer();
const io = new Server(http, { serveClient: false });
let connections = 0;
io.on('connection', (socket) => {
  connections++;
  socket.on('disconnect', () => connections--);
});
http.listen(0, '127.0.0.1', () => process.send?.({ port: http.address().port }));
