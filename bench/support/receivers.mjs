// A child process holding Socket.IO clients for the benchmarks, so that receiving does not
// compete with the load generator's process. Args: JSON { url, token, count }[]; it reports
// { ready } once connected and { received } when asked.
import { io } from 'socket.io-client';

const groups = JSON.parse(process.argv[2]);
let received = 0;
const sockets = [];
for (const { url, tokens } of groups) {
  for (const token of tokens) {
    const s = io(url, { auth: { token }, transports: ['websocket'], reconnection: false });
    s.onAny(() => {
      received++;
    });
    sockets.push(
      new Promise((resolve, reject) => {
        s.once('connect', resolve);
        s.once('connect_error', reject);
      }),
    );
  }
}
await Promise.all(sockets);
process.send({ ready: true });
process.on('message', (m) => {
  if (m === 'count') process.send({ received });
});
