#!/usr/bin/env node
// `npm run soak [-- options]`: a bounded soak of the whole Switchboard stack, outside
// `npm test`. A few thousand Socket.IO clients over the edges, a steady open-loop rate of
// single-recipient sends with `fallback`, churn (clients disconnect and reconnect, possibly
// to another edge), for a fixed time; then every message is accounted for, and memory,
// event-loop lag and latency are reported per window with a trend verdict per process.
//
//   node bench/soak.mjs                      5 min, 3,000 clients, 200 messages/s, churn 20/s, 2 edges
//   node bench/soak.mjs --quick              1 min, 1,000 clients (smoke run)
//   node bench/soak.mjs --minutes 10 --clients 5000 --rate 400 --churn 50 --edges 3
//
// Writes bench/results/soak.json and soak.md, the apps' logs under bench/results/soak-logs/,
// prints a summary, and exits 1 when a message is unaccounted for or a memory trend is
// flagged (2 when the soak itself could not run). Method: docs/soak.md.
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { findNatsServer } from '@switchboard/testkit';
import { ask, cpuMs, forkScript, rssBytes, sleep, stopProcess } from './support/procs.mjs';
import { percentiles, round, toMarkdown, trend, verdictLines } from './support/soak-report.mjs';
import {
  GC_PROBE,
  metricSum,
  natsMonitor,
  probeMemory,
  probeNats,
  removeStoreOnExit,
  scrape,
  startStack,
} from './support/soak-stack.mjs';

const SECRET = 'soak-secret-soak-secret-soak-secret-0000';
const API_KEY = 'soak-api-key-0123456789';
const EVENT = 'soak';
const MB = 2 ** 20;
/** prom-client samples event-loop delay every 100 ms; each recorded delay includes that period. */
const ELD_RESOLUTION_S = 0.1;
/** A POST not answered in this long counts as an HTTP error (status 0, "timeout"). */
const POST_TIMEOUT_MS = 30_000;
/** Sends in flight past which the sender records a message as not sent rather than queue it. */
const MAX_IN_FLIGHT = 2_000;
/** A missing delivery is explained by a close of the recipient's socket in [due − before, answer + after]. */
const CLOSE_BEFORE_MS = 2_000;
const CLOSE_AFTER_MS = 1_000;
/** A fallback is an anomaly when the user was connected this long before the due time and after the answer. */
const STABLE_MS = 1_000;
const RSS_EVERY_MS = 2_000;
/** Runs shorter than this report memory slopes without judging them (warm-up dominates). */
const MIN_JUDGED_SECONDS = 180;
/** Messages due from this long before a memory probe to this long after it are left out of latency. */
const PROBE_BEFORE_MS = 50;
const PROBE_AFTER_MS = 150;

const nowUs = () => Number(process.hrtime.bigint() / 1000n);

function parseArgs(argv) {
  const given = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const num = () => {
      const v = Number(argv[++i]);
      if (!Number.isFinite(v)) throw new Error(`${a} needs a number`);
      return v;
    };
    if (a === '--quick') given.quick = true;
    else if (a === '--minutes') given.minutes = num();
    else if (a === '--clients') given.clients = num();
    else if (a === '--rate') given.rate = num();
    else if (a === '--edges') given.edges = num();
    else if (a === '--churn') given.churn = num();
    else if (a === '--client-procs') given.clientProcs = num();
    else if (a === '--window') given.windowSeconds = num();
    else if (a === '--reconnect-pause') given.maxPauseMs = num();
    else if (a === '--no-gc-probe') given.gcProbe = false;
    else if (a === '--help' || a === '-h') {
      console.log(
        'node bench/soak.mjs [--quick] [--minutes 5] [--clients 3000] [--rate 200] [--edges 2] [--churn 20]\n' +
          '                    [--client-procs N] [--window 10] [--reconnect-pause 1000] [--no-gc-probe]',
      );
      process.exit(0);
    } else throw new Error(`unknown argument ${a} (see --help)`);
  }
  const o = {
    quick: given.quick ?? false,
    minutes: given.minutes ?? (given.quick ? 1 : 5),
    clients: given.clients ?? (given.quick ? 1_000 : 3_000),
    rate: given.rate ?? 200,
    edges: given.edges ?? 2,
    churn: given.churn ?? 20,
    windowSeconds: given.windowSeconds ?? 10,
    maxPauseMs: given.maxPauseMs ?? 1_000,
    gcProbe: given.gcProbe ?? true,
  };
  o.clientProcs = given.clientProcs ?? Math.max(2, Math.ceil(o.clients / 2_000));
  const check = (ok, message) => {
    if (!ok) throw new Error(message);
  };
  check(o.minutes > 0 && o.minutes <= 120, '--minutes must be in (0, 120]');
  check(
    Number.isInteger(o.clients) && o.clients >= 1 && o.clients <= 50_000,
    '--clients: 1..50000',
  );
  check(o.rate > 0 && o.rate <= 5_000, '--rate: (0, 5000]');
  check(Number.isInteger(o.edges) && o.edges >= 1 && o.edges <= 8, '--edges: 1..8');
  check(o.churn >= 0 && o.churn <= o.clients, '--churn: 0..clients');
  check(
    Number.isInteger(o.clientProcs) && o.clientProcs >= 1 && o.clientProcs <= 16,
    '--client-procs: 1..16',
  );
  check(o.windowSeconds >= 1 && o.windowSeconds <= 600, '--window: 1..600 s');
  check(o.maxPauseMs >= 0 && o.maxPauseMs <= 60_000, '--reconnect-pause: 0..60000 ms');
  return o;
}

const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });

/** One HTTP request; resolves with { status (0: no answer), text, endUs, error? }. */
function request(method, url, body, timeoutMs = POST_TIMEOUT_MS) {
  return new Promise((resolve) => {
    let settled = false;
    const done = (r) => {
      if (settled) return;
      settled = true;
      resolve({ ...r, endUs: nowUs() });
    };
    const req = http.request(url, {
      method,
      agent,
      headers: { 'content-type': 'application/json', authorization: `Bearer ${API_KEY}` },
    });
    req.setTimeout(timeoutMs, () => {
      req.destroy(new Error('timeout'));
    });
    req.on('response', (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => {
        text += d;
      });
      res.on('end', () => done({ status: res.statusCode, text }));
      res.on('error', (err) => done({ status: 0, text, error: err.message }));
    });
    req.on('error', (err) => done({ status: 0, text: '', error: err.message }));
    req.end(body);
  });
}

function environment() {
  let nats = 'unknown';
  try {
    nats = execFileSync(findNatsServer(), ['--version'])
      .toString()
      .trim()
      .replace(/^nats-server:\s*v?/, '');
  } catch {
    // reported as unknown
  }
  return {
    machine: {
      cores: cpus().length,
      cpuModel: cpus()[0]?.model ?? 'unknown',
      memoryGiB: Math.round(totalmem() / 2 ** 30),
    },
    versions: { node: process.versions.node, 'nats-server': nats },
  };
}

/** Registers one OS push device per user (FCM, sent by OS push's log provider). */
async function registerDevices(apiUrl, userIds, log) {
  let next = 0;
  const failed = [];
  await Promise.all(
    Array.from({ length: 16 }, async () => {
      while (next < userIds.length) {
        const userId = userIds[next++];
        const body = JSON.stringify({
          platform: 'fcm',
          token: `soak-fcm-token-${userId}-0123456789abcdef`,
        });
        let ok = false;
        for (let attempt = 1; attempt <= 3 && !ok; attempt++) {
          const r = await request(
            'PUT',
            `${apiUrl}/v1/users/${userId}/devices/phone`,
            body,
            10_000,
          );
          ok = r.status === 200;
          if (!ok) await sleep(200 * attempt);
        }
        if (!ok) failed.push(userId);
      }
    }),
  );
  if (failed.length > 0)
    throw new Error(`could not register devices for ${failed.length} users, e.g. ${failed[0]}`);
  log(`  registered ${userIds.length} devices`);
}

/** The client processes: users split round-robin, user i on edge i mod N at first. */
async function startClients(opts, stack, userIds) {
  const children = await Promise.all(
    Array.from({ length: opts.clientProcs }, () =>
      forkScript('support/soak-clients.mjs', { ready: (m) => m.ready }),
    ),
  );
  const parts = children.map(() => []);
  userIds.forEach((userId, index) => {
    parts[index % children.length].push({ index, userId });
  });
  await Promise.all(
    children.map((c, i) =>
      ask(
        c.proc,
        { cmd: 'prepare', users: parts[i], urls: stack.edgeUrls, secret: SECRET },
        (m) => m.cmd === 'prepare',
      ),
    ),
  );
  return { children, sizes: parts.map((p) => p.length) };
}

const all = (children, message, timeoutMs = 60_000) =>
  Promise.all(children.map((c) => ask(c.proc, message, (m) => m.cmd === message.cmd, timeoutMs)));

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const log = (line) => console.log(line);
  const resultsDir = fileURLToPath(new URL('./results/', import.meta.url));
  const logDir = fileURLToPath(new URL('./results/soak-logs/', import.meta.url));
  mkdirSync(logDir, { recursive: true });
  const runSeconds = opts.minutes * 60;
  const count = Math.round(opts.rate * runSeconds);
  const userIds = Array.from({ length: opts.clients }, (_, i) => `soak-${i}`);
  const at = new Date().toISOString();
  log(
    `soak: ${opts.minutes} min, ${opts.clients} clients in ${opts.clientProcs} processes over ${opts.edges} edges, ${opts.rate} messages/s (${count}), churn ${opts.churn}/s`,
  );

  // Per message, indexed by seq (user = seq mod clients).
  const dueUs = new Float64Array(count);
  const endUs = new Float64Array(count);
  const httpStatus = new Int16Array(count).fill(-1);
  /** 0 pending, 1 delivered, 2 fallback, 3 dropped, 4 HTTP error, 5 not sent (backlog) */
  const outcome = new Uint8Array(count);
  const reason = new Array(count);
  const messageId = new Array(count);
  const recvCount = new Uint16Array(count);
  const connections = new Uint8Array(count);
  const recvUs = new Float64Array(count);
  const recvId = new Array(count);
  let unknownReceipts = 0;
  /** user index → [[kind 'c'|'x'|'f', us, detail]] */
  const events = new Map();
  const clientCounters = [];
  const clientOpen = [];
  const churnedPerWindow = [];

  let stack;
  let clients;
  let canary;
  const startedAt = Date.now();
  const probeDir = mkdtempSync(join(tmpdir(), 'sb-soak-probe-'));
  process.once('exit', () => rmSync(probeDir, { recursive: true, force: true }));
  try {
    for (let attempt = 1; ; attempt++) {
      try {
        stack = await startStack({
          edges: opts.edges,
          secret: SECRET,
          apiKey: API_KEY,
          logDir,
          env: { SOAK_PROBE_DIR: probeDir },
          nodeArgs: opts.gcProbe ? ['--expose-gc', '--import', pathToFileURL(GC_PROBE).href] : [],
        });
        break;
      } catch (err) {
        // freePort() gives a port that was free a moment ago; on a shared machine, try again.
        if (attempt >= 3 || !/EADDRINUSE|address already in use/i.test(String(err?.message)))
          throw err;
      }
    }
    removeStoreOnExit(stack.nats);
    log(`  stack up: ${stack.processes.map((p) => `${p.label} (${p.pid})`).join(', ')}`);
    await registerDevices(stack.apiUrl, userIds, log);

    clients = await startClients(opts, stack, userIds);
    const connected = await all(clients.children, { cmd: 'connect', concurrency: 50 }, 600_000);
    const failed = connected.reduce((s, r) => s + r.failed, 0);
    log(
      `  ${opts.clients - failed} clients connected in ${Math.max(...connected.map((r) => r.seconds)).toFixed(1)} s${failed ? ` (${failed} failed)` : ''}`,
    );
    if (failed > 0) throw new Error(`${failed} clients could not connect`);

    const absorb = (replies) => {
      replies.forEach((r, i) => {
        for (const [seq, id, us] of r.receipts) {
          if (!Number.isInteger(seq) || seq < 0 || seq >= count) {
            unknownReceipts++;
            continue;
          }
          if (recvCount[seq] < 65_535) recvCount[seq]++;
          if (recvCount[seq] === 1) {
            recvUs[seq] = us;
            recvId[seq] = id;
          }
        }
        for (const [kind, index, us, detail] of r.events) {
          const list = events.get(index);
          if (list) list.push([kind, us, detail]);
          else events.set(index, [[kind, us, detail]]);
        }
        clientCounters[i] = r.counters;
        clientOpen[i] = r.open;
      });
    };
    const drain = async () => absorb(await all(clients.children, { cmd: 'drain' }));
    await drain();
    canary = await forkScript('support/soak-canary.mjs', { ready: (m) => m.ready });
    const readCanary = () =>
      ask(canary.proc, { cmd: 'read' }, (m) => m.cmd === 'read', 5_000).catch(() => null);
    const natsStreams = async () =>
      (await natsMonitor(stack.nats, 'jsz?streams=true'))?.account_details?.flatMap((acc) =>
        (acc.stream_detail ?? []).map((st) => ({
          name: st.name,
          messages: st.state?.messages,
          bytes: st.state?.bytes,
          firstSeq: st.state?.first_seq,
          lastSeq: st.state?.last_seq,
          deleted: st.state?.num_deleted ?? null,
          subjects: st.state?.num_subjects ?? null,
        })),
      ) ?? null;
    const natsStreamsAtStart = await natsStreams();
    // Each scrape resets the apps' event-loop delay histograms: start the first window clean.
    await Promise.all([...stack.apps.map((x) => scrape(x.port)), readCanary()]);

    // ---- the soak: sender, churn, samplers, all on one clock and bounded in count ----
    const t0 = nowUs() + 200_000;
    const tEnd = t0 + runSeconds * 1e6;
    const sleepUntil = (us) => sleep(Math.max(0, (us - nowUs()) / 1000));
    const body = (seq) =>
      `{"to":${JSON.stringify(userIds[seq % opts.clients])},"event":"${EVENT}","data":{"s":${seq},"text":"soak message"},"fallback":{"title":"Soak","body":"message ${seq}"}}`;

    let inFlight = 0;
    const sender = async () => {
      const pending = new Set();
      let seq = 0;
      while (seq < count) {
        const now = nowUs();
        for (; seq < count && t0 + (seq * 1e6) / opts.rate <= now; seq++) {
          const due = Math.round(t0 + (seq * 1e6) / opts.rate);
          dueUs[seq] = due;
          if (inFlight >= MAX_IN_FLIGHT) {
            outcome[seq] = 5;
            continue;
          }
          inFlight++;
          const s = seq;
          const p = request('POST', `${stack.apiUrl}/v1/messages`, body(s)).then((r) => {
            inFlight--;
            endUs[s] = r.endUs;
            httpStatus[s] = r.status;
            if (r.status !== 200) {
              outcome[s] = 4;
              reason[s] = r.status === 0 ? (r.error ?? 'no answer') : `${r.status}`;
              return;
            }
            try {
              const json = JSON.parse(r.text);
              const x = json.results[0];
              messageId[s] = json.id;
              outcome[s] = x.status === 'delivered' ? 1 : x.status === 'fallback' ? 2 : 3;
              if (x.reason) reason[s] = x.reason;
              connections[s] = Math.min(255, x.connections ?? 0);
            } catch {
              outcome[s] = 4;
              reason[s] = 'unparsable answer';
            }
          });
          pending.add(p);
          p.finally(() => pending.delete(p));
        }
        if (seq < count) await sleepUntil(t0 + (seq * 1e6) / opts.rate);
      }
      await Promise.all(pending);
    };

    const churner = async () => {
      const ticks = Math.floor(runSeconds);
      const total = clients.sizes.reduce((a, b) => a + b, 0);
      for (let k = 1; k <= ticks; k++) {
        await sleepUntil(t0 + k * 1e6);
        if (opts.churn <= 0) continue;
        // Spread this second's closes over the processes by their share of clients.
        const share = clients.sizes.map((n) => Math.floor((opts.churn * n) / total));
        for (let left = opts.churn - share.reduce((a, b) => a + b, 0); left > 0; left--)
          share[Math.floor(Math.random() * share.length)]++;
        const replies = await Promise.all(
          clients.children.map((c, i) =>
            share[i] > 0
              ? ask(
                  c.proc,
                  { cmd: 'churn', count: share[i], maxPauseMs: opts.maxPauseMs },
                  (m) => m.cmd === 'churn',
                  10_000,
                ).catch(() => ({ closed: 0 }))
              : { closed: 0 },
          ),
        );
        const w = Math.floor((k - 0.5) / opts.windowSeconds);
        churnedPerWindow[w] =
          (churnedPerWindow[w] ?? 0) + replies.reduce((s, r) => s + r.closed, 0);
      }
    };

    const rssSeries = Object.fromEntries(stack.processes.map((p) => [p.label, []]));
    const rssSampler = async () => {
      const ticks = Math.floor((runSeconds * 1000) / RSS_EVERY_MS);
      for (let k = 0; k <= ticks; k++) {
        await sleepUntil(t0 + k * RSS_EVERY_MS * 1000);
        const t = (nowUs() - t0) / 1e6;
        for (const p of stack.processes) {
          try {
            rssSeries[p.label].push([t, rssBytes(p.pid)]);
          } catch {
            // the process is gone: the window sample says so
          }
        }
      }
    };

    const windows = [];
    const heapSeries = Object.fromEntries(stack.processes.map((p) => [p.label, []]));
    const gcRssSeries = Object.fromEntries(stack.processes.map((p) => [p.label, []]));
    const gcHeapSeries = Object.fromEntries(stack.processes.map((p) => [p.label, []]));
    const gcRetainedSeries = Object.fromEntries(stack.processes.map((p) => [p.label, []]));
    const probeSeen = new Map();
    let natsProfiles = 0;
    /** [startUs, endUs] of each memory probe: messages due then are left out of latency. */
    const probes = [];
    let lastCpu = new Map(stack.processes.map((p) => [p.pid, cpuMs(p.pid)]));
    let lastCpuUs = nowUs();
    const sampleWindow = async (k) => {
      await drain();
      const [metrics, varz, jsz, canaryLag] = await Promise.all([
        Promise.all(stack.apps.map((a) => scrape(a.port))),
        natsMonitor(stack.nats, 'varz'),
        natsMonitor(stack.nats, 'jsz'),
        readCanary(),
      ]);
      const cpuNow = new Map(stack.processes.map((p) => [p.pid, cpuMs(p.pid)]));
      const us = nowUs();
      const wallMs = (us - lastCpuUs) / 1000;
      const t = (us - t0) / 1e6;
      const processes = {};
      for (const p of stack.processes) {
        let rss = Number.NaN;
        try {
          rss = rssBytes(p.pid);
        } catch {
          // gone
        }
        const i = stack.apps.findIndex((a) => a.pid === p.pid);
        const m = i >= 0 ? metrics[i] : null;
        const lag = (name) => {
          const v = m ? metricSum(m, name) : null;
          return v === null ? null : round(Math.max(0, v - ELD_RESOLUTION_S) * 1000, 1);
        };
        const heap = m ? metricSum(m, 'nodejs_heap_size_used_bytes') : null;
        if (heap !== null) heapSeries[p.label].push([t, heap]);
        processes[p.label] = {
          rssMB: round(rss / MB, 1),
          heapUsedMB: heap === null ? null : round(heap / MB, 1),
          lagP99Ms: lag('nodejs_eventloop_lag_p99_seconds'),
          lagMaxMs: lag('nodejs_eventloop_lag_max_seconds'),
          lagMeanMs: lag('nodejs_eventloop_lag_mean_seconds'),
          cpuPct: round(((cpuNow.get(p.pid) - lastCpu.get(p.pid)) / wallMs) * 100, 1),
          scraped: i < 0 ? undefined : m !== null,
        };
      }
      lastCpu = cpuNow;
      lastCpuUs = us;
      const edgeConnections = stack.apps
        .map((a, i) =>
          a.role === 'edge' && metrics[i]
            ? metricSum(metrics[i], 'switchboard_edge_connections')
            : null,
        )
        .filter((v) => v !== null);
      const osPushIndex = stack.apps.findIndex((a) => a.role === 'os-push');
      const os = metrics[osPushIndex];
      const sample = {
        k,
        t: round(t, 1),
        processes,
        connected: edgeConnections.reduce((a, b) => a + b, 0),
        connectedPerEdge: edgeConnections,
        clientsOpen: clientOpen.reduce((a, b) => a + b, 0),
        canary: canaryLag
          ? { lagP99Ms: round(canaryLag.p99Ms, 1), lagMaxMs: round(canaryLag.maxMs, 1) }
          : null,
        nats: varz
          ? {
              memMB: round(varz.mem / MB, 1),
              connections: varz.connections,
              slowConsumers: varz.slow_consumers,
              inMsgs: varz.in_msgs,
              outMsgs: varz.out_msgs,
            }
          : null,
        jetstream: jsz
          ? {
              streams: jsz.streams,
              messages: jsz.messages,
              bytes: jsz.bytes,
              memory: jsz.memory,
              storage: jsz.storage,
            }
          : null,
        osPush: os
          ? {
              accepted: metricSum(os, 'switchboard_os_push_sends_total', 'outcome="accepted"'),
              pending: metricSum(os, 'switchboard_os_push_queue_messages', 'state="pending"'),
            }
          : null,
      };
      if (opts.gcProbe && k * opts.windowSeconds >= runSeconds / 2) {
        // Second half only: a full GC in each Node app in turn and the figures after it;
        // then a scrape that throws away the event-loop delay the forced GCs caused.
        const probe = await probeMemory(stack.apps, probeDir, probeSeen, nowUs);
        probes.push([probe.startUs, probe.endUs]);
        for (const a of stack.apps) {
          const m = probe.after[a.label];
          if (!m) continue;
          sample.processes[a.label].afterGc = {
            rssMB: round(m.rss / MB, 1),
            retainedMB: round((m.rss - (m.heapTotal - m.heapUsed)) / MB, 1),
            heapUsedMB: round(m.heapUsed / MB, 1),
            heapTotalMB: round(m.heapTotal / MB, 1),
            externalMB: round(m.external / MB, 1),
            gcMs: round(m.gcMs, 1),
          };
          gcRssSeries[a.label].push([t, m.rss]);
          // RSS less the V8 heap's committed but free space: V8 grows and shrinks its young
          // generation in steps of tens of MB that move RSS without any change in what the
          // process retains.
          gcRetainedSeries[a.label].push([t, m.rss - (m.heapTotal - m.heapUsed)]);
          gcHeapSeries[a.label].push([t, m.heapUsed]);
        }
        // nats-server: Go's GC, then its runtime figures (HeapAlloc: live heap after it).
        const n = await probeNats(stack.nats.pid, stack.natsProfPort);
        if (n?.profile) {
          // The first and the last of the run, for a diff of where Go's live heap went.
          const which = natsProfiles === 0 ? 'first' : 'last';
          writeFileSync(
            join(logDir, `nats-heap-${which}.txt`),
            `# t=${round(t, 1)} s\n${n.profile}`,
          );
          natsProfiles++;
        }
        if (n?.heapAlloc != null && Number.isFinite(n.rss)) {
          const freeHeap = Math.max(0, n.heapSys - n.heapReleased - n.heapAlloc);
          sample.processes['nats-server'].afterGc = {
            rssMB: round(n.rss / MB, 1),
            retainedMB: round((n.rss - freeHeap) / MB, 1),
            heapUsedMB: round(n.heapAlloc / MB, 1),
            heapTotalMB: round((n.heapSys - n.heapReleased) / MB, 1),
            gcMs: round(n.gcMs, 1),
          };
          gcRssSeries['nats-server'].push([t, n.rss]);
          gcRetainedSeries['nats-server'].push([t, n.rss - freeHeap]);
          gcHeapSeries['nats-server'].push([t, n.heapAlloc]);
        }
        sample.probeMs = round((probe.endUs - probe.startUs) / 1000, 1);
        await sleep(250);
        await Promise.all(stack.apps.map((a) => scrape(a.port)));
      }
      windows.push(sample);
      return sample;
    };

    const windowCount = Math.ceil(runSeconds / opts.windowSeconds);
    const windowSampler = async () => {
      for (let k = 1; k <= windowCount; k++) {
        await sleepUntil(Math.min(tEnd, t0 + k * opts.windowSeconds * 1e6));
        const s = await sampleWindow(k);
        const lo = Math.floor((k - 1) * opts.windowSeconds * opts.rate);
        const hi = Math.min(count, Math.floor(k * opts.windowSeconds * opts.rate));
        let d = 0;
        let fb = 0;
        let other = 0;
        let got = 0;
        for (let i = lo; i < hi; i++) {
          if (outcome[i] === 1) d++;
          else if (outcome[i] === 2) fb++;
          else if (outcome[i] > 2) other++;
          if (recvCount[i] > 0) got++;
        }
        const rss = stack.processes
          .map((p) => `${p.label} ${s.processes[p.label].rssMB}`)
          .join(', ');
        const lagMax = Math.max(...Object.values(s.processes).map((p) => p.lagMaxMs ?? 0));
        log(
          `  [${s.t.toFixed(0)} s] sent ${hi - lo}: delivered ${d}, fallback ${fb}, other ${other}, received ${got}; connected ${s.connected}; lag max ${lagMax} ms; RSS MB ${rss}`,
        );
      }
    };

    await Promise.all([sender(), churner(), rssSampler(), windowSampler()]);
    const sendEndedUs = nowUs();

    // ---- drain: reconnects settle, receipts come in, OS push empties its queue ----
    await all(clients.children, { cmd: 'settle', timeoutMs: 30_000 }, 40_000);
    const deliveredSeqs = [];
    for (let i = 0; i < count; i++) if (outcome[i] === 1) deliveredSeqs.push(i);
    {
      const deadline = Date.now() + 30_000;
      let last = -1;
      let stillSince = Date.now();
      for (;;) {
        await drain();
        const missing = deliveredSeqs.reduce((n, i) => n + (recvCount[i] === 0 ? 1 : 0), 0);
        if (missing === 0 || Date.now() > deadline) break;
        if (missing !== last) {
          last = missing;
          stillSince = Date.now();
        } else if (Date.now() - stillSince > 3_000) break;
        await sleep(500);
      }
    }
    const fallbackCount = outcome.reduce((n, o) => n + (o === 2 ? 1 : 0), 0);
    let osPushFinal = { accepted: null, pending: null, deadLetters: null };
    {
      const osApp = stack.apps.find((a) => a.role === 'os-push');
      const deadline = Date.now() + 60_000;
      for (;;) {
        const m = await scrape(osApp.port);
        if (m) {
          osPushFinal = {
            accepted: metricSum(m, 'switchboard_os_push_sends_total', 'outcome="accepted"') ?? 0,
            otherSends:
              metricSum(m, 'switchboard_os_push_sends_total') -
              (metricSum(m, 'switchboard_os_push_sends_total', 'outcome="accepted"') ?? 0),
            pending: metricSum(m, 'switchboard_os_push_queue_messages', 'state="pending"'),
            ackPending: metricSum(m, 'switchboard_os_push_queue_messages', 'state="ack_pending"'),
            deadLetters: metricSum(m, 'switchboard_os_push_dlq_messages'),
            messages: {
              acked: metricSum(m, 'switchboard_os_push_messages_total', 'outcome="acked"'),
              retried: metricSum(m, 'switchboard_os_push_messages_total', 'outcome="retried"'),
              deadLettered: metricSum(
                m,
                'switchboard_os_push_messages_total',
                'outcome="deadLettered"',
              ),
            },
            failures: metricSum(m, 'switchboard_os_push_failures_total'),
          };
          if (
            osPushFinal.accepted >= fallbackCount &&
            osPushFinal.pending === 0 &&
            osPushFinal.ackPending === 0
          )
            break;
        }
        if (Date.now() > deadline) break;
        await sleep(1_000);
      }
    }
    const natsStreamsAtEnd = await natsStreams();
    const apiMetrics = await scrape(stack.apps.find((a) => a.role === 'api').port);
    const pushApiCount = {};
    if (apiMetrics) {
      for (const [key, value] of apiMetrics) {
        if (!key.startsWith('switchboard_push_recipients_total{')) continue;
        const st = /status="([^"]*)"/.exec(key)?.[1];
        const rs = /reason="([^"]*)"/.exec(key)?.[1];
        const label = rs ? `${st}/${rs}` : st;
        pushApiCount[label] = (pushApiCount[label] ?? 0) + value;
      }
    }
    log(`  drained ${((nowUs() - sendEndedUs) / 1e6).toFixed(1)} s after the last send`);

    // ---- accounting ----
    for (const list of events.values()) list.sort((a, b) => a[1] - b[1]);
    /** The recipient's close nearest to `due` within [from, to], or null. */
    const closeNear = (index, due, from, to) => {
      let best = null;
      for (const e of events.get(index) ?? []) {
        if (e[0] !== 'x' || e[1] < from || e[1] > to) continue;
        if (best === null || Math.abs(e[1] - due) < Math.abs(best[1] - due)) best = e;
      }
      return best;
    };
    /** Connected at `from` (last event before it a connect) and no close or failure up to `to`. */
    const stablyConnected = (index, from, to) => {
      let connected = false;
      for (const [kind, us] of events.get(index) ?? []) {
        if (us <= from) connected = kind === 'c';
        else if (us > to) break;
        else if (kind !== 'c') return false;
      }
      return connected;
    };
    const a = {
      sent: count,
      deliveredReceived: 0,
      deliveredThenClosed: 0,
      fallback: 0,
      dropped: 0,
      httpErrors: 0,
      skipped: 0,
      lost: 0,
      unanswered: 0,
      duplicateMessages: 0,
      duplicateReceipts: 0,
      idMismatches: 0,
      unknownReceipts,
      fallbackButReceived: 0,
      droppedButReceived: 0,
      fallbackWhileConnected: 0,
      byOutcome: {},
      httpErrorsByStatus: {},
      closedBy: {},
      closeOffsetMs: null,
      lostExamples: [],
      closedExamples: [],
      fallbackWhileConnectedExamples: [],
    };
    const closeOffsets = [];
    /** A message and its recipient's connects (c, with the edge) and closes (x) within ±5 s, in ms from the due time. */
    const example = (i) => ({
      seq: i,
      user: userIds[i % opts.clients],
      id: messageId[i],
      dueS: round((dueUs[i] - t0) / 1e6, 3),
      answeredAfterMs: round((endUs[i] - dueUs[i]) / 1000, 1),
      connections: connections[i],
      events: (events.get(i % opts.clients) ?? [])
        .filter(([, us]) => Math.abs(us - dueUs[i]) <= 5e6)
        .map(([kind, us, detail]) => [kind, round((us - dueUs[i]) / 1000, 1), detail]),
    });
    const missingSeqs = new Set();
    const closedSeqs = new Set();
    const bump = (o, k) => {
      o[k] = (o[k] ?? 0) + 1;
    };
    for (let i = 0; i < count; i++) {
      const index = i % opts.clients;
      const r = recvCount[i];
      switch (outcome[i]) {
        case 1:
          bump(a.byOutcome, 'delivered');
          if (r > 0) {
            a.deliveredReceived++;
            if (r > 1) {
              a.duplicateMessages++;
              a.duplicateReceipts += r - 1;
            }
            if (recvId[i] !== messageId[i]) a.idMismatches++;
          } else {
            missingSeqs.add(i);
            const e = closeNear(
              index,
              dueUs[i],
              dueUs[i] - CLOSE_BEFORE_MS * 1000,
              endUs[i] + CLOSE_AFTER_MS * 1000,
            );
            if (e) {
              a.deliveredThenClosed++;
              closedSeqs.add(i);
              bump(a.closedBy, e[2] === 'churn' ? 'client (churn)' : String(e[2]));
              closeOffsets.push((e[1] - dueUs[i]) / 1000);
              if (a.closedExamples.length < 10) a.closedExamples.push(example(i));
            } else {
              a.lost++;
              if (a.lostExamples.length < 10) a.lostExamples.push(example(i));
            }
          }
          break;
        case 2:
          a.fallback++;
          bump(a.byOutcome, `fallback/${reason[i]}`);
          if (r > 0) a.fallbackButReceived++;
          if (stablyConnected(index, dueUs[i] - STABLE_MS * 1000, endUs[i] + STABLE_MS * 1000)) {
            a.fallbackWhileConnected++;
            if (a.fallbackWhileConnectedExamples.length < 10)
              a.fallbackWhileConnectedExamples.push({ ...example(i), reason: reason[i] });
          }
          break;
        case 3:
          a.dropped++;
          bump(a.byOutcome, `dropped/${reason[i]}`);
          if (r > 0) a.droppedButReceived++;
          break;
        case 4:
          a.httpErrors++;
          bump(a.httpErrorsByStatus, reason[i]);
          break;
        case 5:
          a.skipped++;
          break;
        default:
          a.unanswered++;
      }
    }
    closeOffsets.sort((x, y) => x - y);
    const q = (p) =>
      round(
        closeOffsets[Math.min(closeOffsets.length - 1, Math.floor(p * closeOffsets.length))],
        1,
      );
    a.closeOffsetMs =
      closeOffsets.length === 0
        ? null
        : { min: q(0), p50: q(0.5), p99: q(0.99), max: q(1), n: closeOffsets.length };
    a.osPush = osPushFinal;
    a.pushApiCount = pushApiCount;
    a.fallbacksNotSent = Math.max(0, a.fallback - (osPushFinal.accepted ?? 0));
    a.allAccounted =
      a.lost === 0 &&
      a.unanswered === 0 &&
      a.idMismatches === 0 &&
      a.unknownReceipts === 0 &&
      a.fallbacksNotSent === 0 &&
      a.deliveredReceived +
        a.deliveredThenClosed +
        a.fallback +
        a.dropped +
        a.httpErrors +
        a.skipped +
        a.lost +
        a.unanswered ===
        a.sent;

    // ---- per window ----
    /** Due while a memory probe's forced GCs ran (or just before, or just after). */
    const duringProbe = (due) =>
      probes.some(
        ([from, to]) => due >= from - PROBE_BEFORE_MS * 1000 && due <= to + PROBE_AFTER_MS * 1000,
      );
    const windowRows = [];
    for (let k = 0; k < windowCount; k++) {
      const lo = Math.floor(k * opts.windowSeconds * opts.rate);
      const hi = Math.min(count, Math.floor((k + 1) * opts.windowSeconds * opts.rate));
      const row = {
        fromS: k * opts.windowSeconds,
        toS: Math.min(runSeconds, (k + 1) * opts.windowSeconds),
        sent: hi - lo,
        delivered: 0,
        fallback: 0,
        dropped: 0,
        httpErrors: 0,
        received: 0,
        missing: 0,
        closed: 0,
      };
      const lat = [];
      const latAll = [];
      for (let i = lo; i < hi; i++) {
        if (outcome[i] === 1) row.delivered++;
        else if (outcome[i] === 2) row.fallback++;
        else if (outcome[i] === 3) row.dropped++;
        else if (outcome[i] === 4) row.httpErrors++;
        if (recvCount[i] > 0) {
          row.received++;
          latAll.push(recvUs[i] - dueUs[i]);
          if (!duringProbe(dueUs[i])) lat.push(recvUs[i] - dueUs[i]);
        }
        if (missingSeqs.has(i)) row.missing++;
        if (closedSeqs.has(i)) row.closed++;
      }
      row.latency = percentiles(lat);
      row.latencyWithProbes = percentiles(latAll);
      const s = windows[k];
      row.connected = s?.connected ?? null;
      row.connectedPerEdge = s?.connectedPerEdge ?? null;
      row.canary = s?.canary ?? null;
      row.clientsOpen = s?.clientsOpen ?? null;
      row.churned = churnedPerWindow[k] ?? 0;
      row.processes = s?.processes ?? null;
      row.nats = s?.nats ?? null;
      row.jetstream = s?.jetstream ?? null;
      windowRows.push(row);
    }

    // ---- trends, lag, verdict ----
    // A trend needs warm-up behind it: a shorter run (--quick) reports its slopes, unjudged.
    const judged = runSeconds >= MIN_JUDGED_SECONDS;
    const trends = {};
    for (const p of stack.processes) {
      const probed = opts.gcProbe && gcRssSeries[p.label]?.length > 0;
      let t;
      if (probed) {
        const rss = trend(gcRetainedSeries[p.label], runSeconds);
        t = {
          basis: 'RSS − free heap, after GC',
          rss,
          heap: trend(gcHeapSeries[p.label], runSeconds, {
            relativeTo: rss.meanMB === undefined ? null : rss.meanMB * MB,
          }),
          rssAfterGc: trend(gcRssSeries[p.label], runSeconds),
        };
      } else {
        t = {
          basis: 'RSS floor',
          rss: trend(rssSeries[p.label], runSeconds, { bucketSeconds: opts.windowSeconds }),
          heap: null,
          rssAfterGc: null,
        };
      }
      t.everySample = trend(rssSeries[p.label], runSeconds);
      t.flagged = judged && (t.rss.flagged || (t.heap?.flagged ?? false));
      trends[p.label] = t;
    }
    const lagMaxMs = {};
    const lagWorstP99Ms = {};
    for (const p of stack.apps) {
      lagMaxMs[p.label] = Math.max(0, ...windows.map((w) => w.processes[p.label]?.lagMaxMs ?? 0));
      lagWorstP99Ms[p.label] = Math.max(
        0,
        ...windows.map((w) => w.processes[p.label]?.lagP99Ms ?? 0),
      );
    }
    const failures = [];
    if (!a.allAccounted) failures.push('messages unaccounted for');
    const exited = stack.apps
      .filter((x) => x.proc.exitCode !== null || x.proc.signalCode !== null)
      .map((x) => `${x.label} (${x.proc.exitCode ?? x.proc.signalCode})`);
    if (!stack.nats.running) exited.push('nats-server');
    if (exited.length) failures.push(`exited during the run: ${exited.join(', ')}`);
    const flagged = Object.entries(trends)
      .filter(([, t]) => t.flagged)
      .map(([l]) => l);
    if (flagged.length) failures.push(`memory trend: ${flagged.join(', ')}`);
    const receivedSeqs = deliveredSeqs.filter((i) => recvCount[i] > 0);
    const overall = percentiles(
      receivedSeqs.filter((i) => !duringProbe(dueUs[i])).map((i) => recvUs[i] - dueUs[i]),
    );
    const overallWithProbes = percentiles(receivedSeqs.map((i) => recvUs[i] - dueUs[i]));
    const sendSeconds = (sendEndedUs - t0) / 1e6;

    const out = {
      at,
      ...environment(),
      settings: {
        ...opts,
        messages: count,
        postTimeoutMs: POST_TIMEOUT_MS,
        maxInFlight: MAX_IN_FLIGHT,
        closeWindowMs: [CLOSE_BEFORE_MS, CLOSE_AFTER_MS],
        trendRule:
          "second half of the run, one point per window right after a forced full GC (Node: gc() via the preload; nats-server: pprof heap ?gc=1): (a) RSS less the heap's resident free space, (b) heap used. Flagged when the least-squares slope × run length > 10% of the mean of (a) and the slope is ≥ 2 standard errors above 0, for (a) or (b). With --no-gc-probe: the RSS floor (lowest 2 s sample per window) against 10% of its mean",
        probeExclusionMs: [PROBE_BEFORE_MS, PROBE_AFTER_MS],
      },
      processes: stack.processes,
      durationSeconds: Math.round((Date.now() - startedAt) / 1000),
      sendSeconds: round(sendSeconds, 1),
      latency: overall,
      latencyWithProbes: overallWithProbes,
      probes: {
        count: probes.length,
        messagesLeftOutOfLatency: overallWithProbes.n - overall.n,
        msEach: windows.filter((w) => w.probeMs !== undefined).map((w) => w.probeMs),
        gcMsMax: Object.fromEntries(
          stack.apps.map((a) => [
            a.label,
            Math.max(0, ...windows.map((w) => w.processes[a.label]?.afterGc?.gcMs ?? 0)),
          ]),
        ),
      },
      accounting: a,
      trends,
      trendsJudged: judged,
      lagMaxMs,
      lagWorstP99Ms,
      windows: windowRows,
      samples: windows,
      rssSeries,
      clients: {
        processes: opts.clientProcs,
        connects: clientCounters.reduce((s, c) => s + (c?.connects ?? 0), 0),
        churnCloses: clientCounters.reduce((s, c) => s + (c?.churnCloses ?? 0), 0),
        unexpectedCloses: clientCounters.reduce((s, c) => s + (c?.unexpectedCloses ?? 0), 0),
        connectFailures: clientCounters.reduce((s, c) => s + (c?.connectFailures ?? 0), 0),
        handshakeRetries: clientCounters.reduce((s, c) => s + (c?.handshakeRetries ?? 0), 0),
        connectErrors: mergeCounts(clientCounters.map((c) => c?.connectErrors)),
        closeReasons: mergeCounts(clientCounters.map((c) => c?.closeReasons)),
        otherEvents: mergeCounts(clientCounters.map((c) => c?.otherEvents)),
        openAtEnd: clientOpen.reduce((x, y) => x + y, 0),
      },
      natsStreams: { atStart: natsStreamsAtStart, atEnd: natsStreamsAtEnd },
      canaryLagMaxMs: Math.max(0, ...windows.map((w) => w.canary?.lagMaxMs ?? 0)),
      logs: stack.logs(),
      failures,
      pass: failures.length === 0,
    };
    writeFileSync(`${resultsDir}soak.json`, `${JSON.stringify(out, null, 2)}\n`);
    writeFileSync(`${resultsDir}soak.md`, toMarkdown(out));
    log('');
    log(`soak summary (${out.durationSeconds} s in all; bench/results/soak.md, soak.json):`);
    log(
      `  ${count} messages at ${opts.rate}/s to ${opts.clients} clients, churn ${out.clients.churnCloses} closes; POST→receipt p50 ${overall.p50Ms} ms, p99 ${overall.p99Ms} ms, max ${overall.maxMs} ms`,
    );
    if (probes.length > 0)
      log(
        `  (${out.probes.messagesLeftOutOfLatency} messages due during the ${probes.length} memory probes left out of latency; with them p99 ${overallWithProbes.p99Ms} ms, max ${overallWithProbes.maxMs} ms)`,
      );
    for (const line of verdictLines(out)) log(`  ${line.replaceAll('**', '')}`);
    return out.pass ? 0 : 1;
  } finally {
    if (clients) {
      await all(clients.children, { cmd: 'close' }, 10_000).catch(() => {});
      await Promise.all(clients.children.map((c) => stopProcess(c.proc, 5_000)));
    }
    if (canary) await stopProcess(canary.proc, 2_000);
    await stack?.stop();
    agent.destroy();
  }
}

function mergeCounts(list) {
  const out = {};
  for (const o of list) for (const [k, v] of Object.entries(o ?? {})) out[k] = (out[k] ?? 0) + v;
  return out;
}

try {
  process.exitCode = await main();
} catch (err) {
  console.error(err);
  process.exitCode = 2;
}
process.exit(process.exitCode);
