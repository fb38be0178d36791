// One measurement, the same for every system: clients in child processes, an open-loop
// sender on a fixed schedule, CPU of every server process from /proc before and after,
// each process's idle CPU rate measured just before, receipts and latency from the clients.
import http from 'node:http';
import hdr from 'hdr-histogram-js';
import { ask, forkScript, sampleCpu, sleep, stopProcess } from './procs.mjs';
import { API_KEY, SECRET, startSystem } from './systems.mjs';

export const nowUs = () => Number(process.hrtime.bigint() / 1000n);

const agent = new http.Agent({ keepAlive: true, maxSockets: 512 });
const headers = {
  'content-type': 'application/json',
  authorization: `Bearer ${API_KEY}`,
};

/** POSTs `body` and resolves with the status, the body text and when it ended (µs). */
export function post(url, body) {
  return new Promise((resolve) => {
    const req = http.request(url, { method: 'POST', agent, headers }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => {
        text += d;
      });
      res.on('end', () => resolve({ status: res.statusCode, text, endUs: nowUs() }));
      res.on('error', () => resolve({ status: 0, text: '', endUs: nowUs() }));
    });
    req.on('error', () => resolve({ status: 0, text: '', endUs: nowUs() }));
    req.end(body);
  });
}

/**
 * Calls `send(seq, dueUs)` `count` times at `rate`/s on a fixed schedule (open loop: a slow
 * answer does not delay the next send), then awaits every answer.
 */
export async function openLoop({ rate, count, send }) {
  const startUs = nowUs() + 2_000;
  const pending = [];
  let seq = 0;
  while (seq < count) {
    const now = nowUs();
    for (; seq < count && startUs + (seq * 1e6) / rate <= now; seq++)
      pending.push(send(seq, Math.round(startUs + (seq * 1e6) / rate)));
    if (seq < count) await sleep(Math.max(0, (startUs + (seq * 1e6) / rate - nowUs()) / 1000));
  }
  const lastSendUs = nowUs();
  return { startUs, lastSendUs, results: await Promise.all(pending) };
}

export function histogram(valuesUs) {
  const h = hdr.build({
    lowestDiscernibleValue: 1,
    highestTrackableValue: 600_000_000,
    numberOfSignificantValueDigits: 3,
  });
  for (const v of valuesUs) h.recordValue(Math.max(1, Math.round(v)));
  const ms = (p) => (valuesUs.length === 0 ? null : h.getValueAtPercentile(p) / 1000);
  return { p50Ms: ms(50), p99Ms: ms(99), maxMs: valuesUs.length === 0 ? null : h.maxValue / 1000 };
}

/**
 * Socket.IO clients for `userIds` spread over the system's nodes (user i on node i mod N),
 * held by `procs` child processes.
 */
export async function openClients(system, userIds, { procs = 2, concurrency = 50 } = {}) {
  const children = await Promise.all(
    Array.from({ length: procs }, () =>
      forkScript('support/clients.mjs', { ready: (m) => m.ready }),
    ),
  );
  const parts = children.map(() => []);
  userIds.forEach((userId, i) => {
    parts[i % procs].push({ url: system.nodeUrls[i % system.nodeUrls.length], userId });
  });
  const all = (message, cmd, timeoutMs) =>
    Promise.all(children.map((c, i) => ask(c.proc, message(i), (m) => m.cmd === cmd, timeoutMs)));
  await all((i) => ({ cmd: 'prepare', targets: parts[i], secret: SECRET }), 'prepared');
  const group = {
    children,
    /** Connects every client; resolves with the storm's figures. */
    async connect() {
      const r = await all(() => ({ cmd: 'connect', concurrency }), 'connected', 600_000);
      const connected = r.reduce((s, x) => s + x.connected, 0);
      const startUs = Math.min(...r.map((x) => x.startUs));
      const endUs = Math.max(...r.map((x) => x.endUs));
      return { connected, failed: userIds.length - connected, startUs, endUs };
    },
    reset: (runId, perSeq = false) => all(() => ({ cmd: 'reset', runId, perSeq }), 'reset'),
    count: async () =>
      (await all(() => ({ cmd: 'count' }), 'count')).reduce((s, x) => s + x.received, 0),
    async report() {
      const r = await all(() => ({ cmd: 'report' }), 'report');
      const perSeq = new Map();
      for (const x of r) {
        for (const [seq, [n, last]] of x.perSeq ?? []) {
          const e = perSeq.get(seq);
          if (e) {
            e[0] += n;
            e[1] = Math.max(e[1], last);
          } else perSeq.set(seq, [n, last]);
        }
      }
      return {
        received: r.reduce((s, x) => s + x.received, 0),
        lat: r.flatMap((x) => x.lat),
        perSeq,
      };
    },
    async close() {
      await all(() => ({ cmd: 'close' }), 'closed').catch(() => {});
      await Promise.all(children.map((c) => stopProcess(c.proc, 2_000)));
    },
  };
  return group;
}

/** The NATS limit's subscriber behaves like a group of clients. */
export function natsReceiver(system) {
  const sub = system.subscriber;
  return {
    reset: (runId) => ask(sub, { cmd: 'reset', runId }, (m) => m.cmd === 'reset'),
    count: async () => (await ask(sub, { cmd: 'count' }, (m) => m.cmd === 'count')).received,
    async report() {
      const r = await ask(sub, { cmd: 'report' }, (m) => m.cmd === 'report');
      return { received: r.received, lat: r.lat, perSeq: new Map() };
    },
    close: async () => {},
  };
}

/** Sends one run's messages through the system; resolves with what the sender saw. */
async function load(system, { rate, count, runId, users, fanout }) {
  if (system.kind === 'emit' || system.kind === 'nats') {
    const cmd = system.kind === 'emit' ? 'emit' : 'publish';
    const r = await ask(
      system.control,
      { cmd, rate, count, runId, users, event: 'bench' },
      (m) => m.cmd === `${cmd === 'emit' ? 'emitted' : 'published'}`,
      count * 10 + 120_000,
    );
    return { ...r, errors: 0, notDelivered: 0, httpLat: null };
  }
  const all = fanout === 'all' ? JSON.stringify(users) : null;
  const body = (seq, t) =>
    `{"to":${all ?? JSON.stringify(users[seq % users.length])},"event":"bench","data":{"r":${JSON.stringify(runId)},"seq":${seq},"t":${t},"text":"hello"}}`;
  const r = await openLoop({
    rate,
    count,
    send: (seq, due) => post(system.sendUrl, body(seq, due)).then((res) => ({ ...res, due })),
  });
  let errors = 0;
  let notDelivered = 0;
  const httpLat = [];
  for (const res of r.results) {
    if (res.status !== 200) {
      errors++;
      continue;
    }
    httpLat.push(res.endUs - res.due);
    if (system.checkDelivered) {
      for (const x of JSON.parse(res.text).results) if (x.status !== 'delivered') notDelivered++;
    }
  }
  return {
    startUs: r.startUs,
    lastSendUs: r.lastSendUs,
    sent: count,
    errors,
    notDelivered,
    httpLat,
  };
}

/**
 * One measurement: idle CPU for `idleMs`, then `count` messages at `rate`/s (single
 * recipient round-robin over `users`, or `fanout: 'all'`), until every receipt is in or
 * `tailMs` after the last send. CPU is counted from the first send to the last receipt.
 */
export async function measureRun(system, receivers, opts) {
  const { rate, count, runId, users, fanout = 'single', idleMs = 0, tailMs = 3_000 } = opts;
  const procs = system.processes;
  const idleRate = new Map(procs.map((p) => [p.pid, 0]));
  if (idleMs > 0) {
    const a = sampleCpu(procs);
    const t0 = nowUs();
    await sleep(idleMs);
    const b = sampleCpu(procs);
    const ms = (nowUs() - t0) / 1000;
    for (const p of procs) idleRate.set(p.pid, (b.get(p.pid) - a.get(p.pid)) / ms);
  }
  if (receivers) await receivers.reset(runId, fanout === 'all');
  const cpu0 = sampleCpu(procs);
  const w0 = nowUs();
  const sent = await load(system, { rate, count, runId, users, fanout });
  const expected = (sent.sent - sent.errors) * (fanout === 'all' ? users.length : 1);
  if (receivers) {
    const deadline = Date.now() + tailMs;
    while ((await receivers.count()) < expected && Date.now() < deadline) await sleep(20);
  }
  const cpu1 = sampleCpu(procs);
  const w1 = nowUs();
  const got = receivers
    ? await receivers.report()
    : { received: sent.sent - sent.errors, lat: sent.httpLat, perSeq: new Map() };
  const windowMs = (w1 - w0) / 1000;
  const byRole = {};
  const adjByRole = {};
  for (const p of procs) {
    const used = cpu1.get(p.pid) - cpu0.get(p.pid);
    byRole[p.role] = (byRole[p.role] ?? 0) + used;
    adjByRole[p.role] = (adjByRole[p.role] ?? 0) + used - idleRate.get(p.pid) * windowMs;
  }
  const sum = (o) => Object.values(o).reduce((s, v) => s + v, 0);
  const per1k = (ms) => (got.received > 0 ? (ms / got.received) * 1000 : null);
  const mapValues = (o, f) => Object.fromEntries(Object.entries(o).map(([k, v]) => [k, f(v)]));
  const sendSeconds = (sent.lastSendUs - sent.startUs) / 1e6;
  return {
    offeredRate: rate,
    achievedRate: count > 1 && sendSeconds > 0 ? (count - 1) / sendSeconds : rate,
    sent: sent.sent,
    expected,
    received: got.received,
    httpErrors: sent.errors,
    notDelivered: sent.notDelivered,
    valid: got.received === expected && sent.errors === 0 && sent.notDelivered === 0,
    ...histogram(got.lat),
    httpP99Ms: sent.httpLat ? histogram(sent.httpLat).p99Ms : null,
    windowMs,
    cpuMs: { total: sum(byRole), byRole },
    cpuMsPer1k: {
      total: per1k(sum(byRole)),
      idleAdjusted: per1k(Math.max(0, sum(adjByRole))),
      byRole: mapValues(byRole, per1k),
      idleAdjustedByRole: mapValues(adjByRole, (v) => per1k(Math.max(0, v))),
    },
    window: { startUs: w0, endUs: w1, firstDueUs: sent.startUs },
    perSeq: got.perSeq,
  };
}

/**
 * Sends to every user once (or `count` messages) until a round arrives complete: the
 * system is warm and every user routable. Returns false when three rounds lost messages.
 */
export async function warmUp(system, receivers, { rate, users, count, tag }) {
  for (let attempt = 1; attempt <= 3; attempt++) {
    const r = await measureRun(system, receivers, {
      rate,
      count: count ?? users.length,
      runId: `warm-${tag}-${attempt}`,
      users,
      tailMs: 5_000,
    });
    if (r.valid) return true;
    await sleep(500);
  }
  return false;
}

export const median = (xs) => {
  const v = xs.filter((x) => typeof x === 'number' && Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return null;
  const mid = Math.floor(v.length / 2);
  return v.length % 2 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
};

export const round = (v, digits = 2) =>
  typeof v === 'number' && Number.isFinite(v) ? Number(v.toFixed(digits)) : v;

export const userIds = (n, prefix) => Array.from({ length: n }, (_, i) => `${prefix}-${i}`);

/** Starts a system and its clients (`clientProcs` child processes); tearDown closes both. */
export async function bringUp(name, nodes, users, options = {}) {
  const { clientProcs, ...startOptions } = options;
  const system = await startSystem(name, { nodes, ...startOptions });
  let receivers = null;
  try {
    if (system.kind === 'nats') receivers = natsReceiver(system);
    else if (system.kind !== 'hello') {
      receivers = await openClients(system, users, {
        procs: clientProcs ?? (users.length >= 1_000 || nodes >= 4 ? 2 : 1),
      });
      const c = await receivers.connect();
      if (c.failed > 0) throw new Error(`${name}: ${c.failed} clients could not connect`);
    }
    return { system, receivers };
  } catch (err) {
    await receivers?.close();
    await system.stop();
    throw err;
  }
}

export async function tearDown({ system, receivers }) {
  await receivers?.close();
  await system.stop();
}

/** Starts several systems at once; on a failure, stops those that did start and throws. */
export async function bringUpAll(names, nodes, users, optionsFor = () => ({})) {
  const settled = await Promise.allSettled(
    names.map((name) => bringUp(name, nodes, users, optionsFor(name))),
  );
  const failed = settled.find((s) => s.status === 'rejected');
  if (failed) {
    for (const s of settled) if (s.status === 'fulfilled') await tearDown(s.value);
    throw failed.reason;
  }
  return Object.fromEntries(names.map((name, i) => [name, settled[i].value]));
}
