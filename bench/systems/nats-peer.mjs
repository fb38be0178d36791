// The NATS core pub/sub limit: BENCH_NATS_ROLE=pub publishes on a fixed schedule when asked
// (`{ cmd: 'publish' }`), BENCH_NATS_ROLE=sub subscribes and measures publish-to-receipt
// latency like a Socket.IO client does (`reset`, `count`, `report` over IPC).
import { connect } from '@nats-io/transport-node';

const nc = await connect({ servers: process.env.NATS_URL });
const subject = 'bench.limit';
const nowUs = () => Number(process.hrtime.bigint() / 1000n);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
let runId = null;
let received = 0;
let lat = [];

if (process.env.BENCH_NATS_ROLE === 'sub') {
  nc.subscribe(subject, {
    callback: (_err, msg) => {
      const data = msg.json();
      if (data.r !== runId) return;
      received++;
      lat.push(nowUs() - data.t);
    },
  });
  await nc.flush();
}

async function publishLoop({ rate, count, runId: r }) {
  const start = nowUs() + 2_000;
  let seq = 0;
  while (seq < count) {
    const now = nowUs();
    for (; seq < count && start + (seq * 1e6) / rate <= now; seq++) {
      const t = Math.round(start + (seq * 1e6) / rate);
      nc.publish(subject, JSON.stringify({ r, seq, t, text: 'hello' }));
    }
    if (seq < count) await sleep(Math.max(0, (start + (seq * 1e6) / rate - nowUs()) / 1000));
  }
  await nc.flush();
  return { sent: count, startUs: start, lastSendUs: nowUs() };
}

process.on('message', async (m) => {
  if (m.cmd === 'publish') process.send({ cmd: 'published', ...(await publishLoop(m)) });
  if (m.cmd === 'reset') {
    runId = m.runId;
    received = 0;
    lat = [];
    process.send({ cmd: 'reset' });
  }
  if (m.cmd === 'count') process.send({ cmd: 'count', received });
  if (m.cmd === 'report') process.send({ cmd: 'report', received, lat });
});
process.once('SIGTERM', () => {
  nc.close().finally(() => process.exit(0));
});
process.send({ ready: true });
