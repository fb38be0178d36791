// The soak's Switchboard stack as real processes on loopback: nats-server with JetStream on
// free ports (testkit's NatsServer), N edges, presence, the push API and the OS push worker
// (`node apps/<app>/dist/main.js`). Unlike the bench, each app's whole output goes to a log
// file and its warn/error lines are counted as they come, so that the soak can say what the
// product complained about. Every process is registered with procs.mjs (and testkit kills
// nats-server) so that all of them die with the soak, also on an error or Ctrl-C.
import { spawn } from 'node:child_process';
import { createWriteStream, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { freePort, NatsServer, repoRoot } from '@switchboard/testkit';
import { sleep, stopProcess, track } from './procs.mjs';

/** pino's numeric levels. */
const LEVELS = { 40: 'warn', 50: 'error', 60: 'fatal' };
const KEEP_LINES = 30;

/** Counts warn/error/fatal lines of one app's JSON log and keeps the first few. */
class LogWatch {
  constructor(label, file) {
    this.label = label;
    this.file = file;
    this.out = createWriteStream(file);
    this.counts = { warn: 0, error: 0, fatal: 0, other: 0 };
    this.byMessage = new Map();
    this.first = [];
    this.tail = '';
    this.partial = '';
  }

  feed(chunk) {
    this.out.write(chunk);
    const text = this.partial + chunk.toString();
    this.tail = (this.tail + chunk.toString()).slice(-8192);
    const lines = text.split('\n');
    this.partial = lines.pop() ?? '';
    if (this.partial.length > 65_536) this.partial = '';
    for (const line of lines) {
      if (!line.trim()) continue;
      let entry = null;
      try {
        entry = JSON.parse(line);
      } catch {
        // not JSON: a stack trace or a native warning
      }
      const level = entry ? LEVELS[entry.level] : 'other';
      if (!level) continue;
      this.counts[level]++;
      const msg = entry ? String(entry.msg ?? '') : line.slice(0, 200);
      const key = `${level}: ${msg}`;
      this.byMessage.set(key, (this.byMessage.get(key) ?? 0) + 1);
      if (this.first.length < KEEP_LINES) this.first.push(line.slice(0, 1_000));
    }
  }

  summary() {
    return {
      file: this.file,
      counts: this.counts,
      byMessage: Object.fromEntries(this.byMessage),
      first: this.first,
    };
  }

  close() {
    return new Promise((resolve) => this.out.end(resolve));
  }
}

async function waitReady(url, proc, log, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (proc.exitCode !== null || proc.signalCode !== null)
      throw new Error(`${log.label} exited with ${proc.exitCode ?? proc.signalCode}: ${log.tail}`);
    const res = await fetch(url, { signal: AbortSignal.timeout(2_000) }).catch(() => null);
    if (res?.ok) return;
    await sleep(100);
  }
  throw new Error(`${log.label} not ready after ${timeoutMs} ms: ${log.tail}`);
}

/**
 * Starts the stack. Resolves with `{ nats, apps: [{ app, role, label, pid, port }],
 * edgeUrls, apiUrl, processes: [{ role, label, pid, port? }], logs(), stop() }`.
 */
export async function startStack({ edges, secret, apiKey, logDir, env = {}, nodeArgs = [] }) {
  // prof_port: Go's pprof, whose heap profile with ?gc=1 runs a GC first and reports the
  // runtime's memory figures: the soak's memory probe for nats-server.
  const profPort = await freePort();
  const nats = await NatsServer.start({ config: `prof_port: ${profPort}` });
  const common = {
    PATH: process.env.PATH ?? '',
    NATS_URL: nats.url,
    HOST: '127.0.0.1',
    LOG_LEVEL: 'warn',
    ...env,
  };
  const apps = [];
  const watches = [];
  const startApp = async (app, role, label, appEnv) => {
    const port = appEnv.PORT ? Number(appEnv.PORT) : await freePort();
    const log = new LogWatch(label, join(logDir, `${label}.log`));
    watches.push(log);
    const proc = track(
      spawn(process.execPath, [...nodeArgs, `${repoRoot}apps/${app}/dist/main.js`], {
        cwd: repoRoot,
        env: { ...common, ...appEnv, PORT: String(port) },
        stdio: ['ignore', 'pipe', 'pipe'],
      }),
    );
    proc.stdout.on('data', (d) => log.feed(d));
    proc.stderr.on('data', (d) => log.feed(d));
    const entry = { app, role, label, pid: proc.pid, port, proc, log };
    apps.push(entry);
    await waitReady(`http://127.0.0.1:${port}/readyz`, proc, log);
    return entry;
  };
  const stopApps = async (list) => Promise.all(list.map((a) => stopProcess(a.proc, 10_000)));
  try {
    const [api] = await Promise.all([
      startApp('push-api', 'api', 'push-api', {
        API_KEYS: apiKey,
        // The soak's own rate is the load; the per-key limit is not what it measures.
        RATE_LIMIT_PER_MINUTE: '1000000000',
      }),
      startApp('presence', 'presence', 'presence', { API_KEYS: apiKey }),
      startApp('os-push', 'os-push', 'os-push', { OS_PUSH_UNCONFIGURED: 'log' }),
      ...Array.from({ length: edges }, async (_, i) => {
        const port = await freePort();
        return startApp('edge', 'edge', `edge-${i + 1}`, {
          PORT: String(port),
          NODE_ID: `soak-edge-${i + 1}`,
          PUBLIC_URL: `http://127.0.0.1:${port}`,
          AUTH_JWT_SECRET: secret,
          EDGE_MAX_CONNECTS_PER_SECOND: '0',
          EDGE_MAX_CONNECTS_PER_IP_PER_SECOND: '0',
          // One client per user, briefly two while a churned client's old socket closes.
          MAX_CONNECTIONS_PER_USER: '4',
        });
      }),
    ]);
    const edgeApps = apps.filter((a) => a.role === 'edge');
    return {
      nats,
      natsProfPort: profPort,
      apps,
      edgeUrls: edgeApps.map((e) => `http://127.0.0.1:${e.port}`),
      apiUrl: `http://127.0.0.1:${api.port}`,
      processes: [
        { role: 'broker', label: 'nats-server', pid: nats.pid },
        ...apps.map(({ role, label, pid, port }) => ({ role, label, pid, port })),
      ],
      logs: () => Object.fromEntries(watches.map((w) => [w.label, w.summary()])),
      async stop() {
        // Edges first (they drain their clients), then the readers, then the broker.
        await stopApps(apps.filter((a) => a.role === 'edge'));
        await stopApps(apps.filter((a) => a.role !== 'edge'));
        await nats.stop();
        await Promise.all(watches.map((w) => w.close()));
      },
    };
  } catch (err) {
    for (const a of apps) a.proc.kill('SIGKILL');
    await nats.stop().catch(() => {});
    await Promise.all(watches.map((w) => w.close()));
    throw err;
  }
}

/** The preload that answers SIGUSR2 with a full GC and the memory after it. */
export const GC_PROBE = fileURLToPath(new URL('./soak-gc-probe.mjs', import.meta.url));

/**
 * Forces a full GC in each Node app in turn (SIGUSR2 to soak-gc-probe.mjs; one at a time, so
 * that only one process pauses at once) and resolves with `{ after: label → the figures
 * after it ({ rss, heapUsed, gcMs, ... }) or null when it did not answer within
 * `timeoutMs`, startUs, endUs }`. `last` keeps each pid's last probe number.
 */
export async function probeMemory(apps, dir, last, nowUs, timeoutMs = 5_000) {
  const after = {};
  const startUs = nowUs();
  for (const a of apps) {
    after[a.label] = null;
    try {
      process.kill(a.pid, 'SIGUSR2');
    } catch {
      continue; // gone: no answer
    }
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      let m = null;
      try {
        m = JSON.parse(readFileSync(join(dir, `${a.pid}.json`), 'utf8'));
      } catch {
        // not written yet
      }
      if (m && m.probe > (last.get(a.pid) ?? 0)) {
        last.set(a.pid, m.probe);
        after[a.label] = m;
        break;
      }
      await sleep(5);
    }
  }
  return { after, startUs, endUs: nowUs() };
}

/**
 * nats-server's memory after a GC (Go's pprof heap profile with ?gc=1): { rss, heapAlloc,
 * heapInuse, heapSys, heapReleased, sys, gcMs, profile (the text) } in bytes, or null when
 * it does not answer.
 * `rss` is read from /proc right after.
 */
export async function probeNats(pid, profPort, timeoutMs = 5_000) {
  const start = performance.now();
  try {
    const res = await fetch(`http://127.0.0.1:${profPort}/debug/pprof/heap?gc=1&debug=1`, {
      signal: AbortSignal.timeout(timeoutMs),
    });
    if (!res.ok) return null;
    const text = await res.text();
    const field = (name) => {
      const m = new RegExp(`^# ${name} = (\\d+)$`, 'm').exec(text);
      return m ? Number(m[1]) : null;
    };
    return {
      rss:
        Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]) * 1024,
      heapAlloc: field('HeapAlloc'),
      heapInuse: field('HeapInuse'),
      heapSys: field('HeapSys'),
      heapReleased: field('HeapReleased'),
      sys: field('Sys'),
      gcMs: performance.now() - start,
      profile: text,
    };
  } catch {
    return null;
  }
}

/** Removes nats-server's temporary store when the soak dies before `stop()` did it. */
export function removeStoreOnExit(nats) {
  process.once('exit', () => {
    try {
      rmSync(nats.storeDir, { recursive: true, force: true });
    } catch {
      // best effort: the server may still be writing as it dies
    }
  });
}

/** Prometheus text → Map of `name{labels}` (labels as written) → value. */
export function parseMetrics(text) {
  const out = new Map();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const sp = line.lastIndexOf(' ');
    if (sp < 0) continue;
    const value = Number(line.slice(sp + 1));
    if (Number.isFinite(value)) out.set(line.slice(0, sp), value);
  }
  return out;
}

/** Sum of every series of `name` whose labels contain all of `match` (e.g. 'outcome="accepted"'). */
export function metricSum(metrics, name, ...match) {
  let sum = 0;
  let found = false;
  for (const [key, value] of metrics) {
    const brace = key.indexOf('{');
    const base = brace < 0 ? key : key.slice(0, brace);
    if (base !== name) continue;
    if (match.some((m) => !key.includes(m))) continue;
    sum += value;
    found = true;
  }
  return found ? sum : null;
}

/** One app's /metrics, parsed; null when it does not answer in 5 s. */
export async function scrape(port) {
  try {
    const res = await fetch(`http://127.0.0.1:${port}/metrics`, {
      signal: AbortSignal.timeout(5_000),
    });
    if (!res.ok) return null;
    return parseMetrics(await res.text());
  } catch {
    return null;
  }
}

/** nats-server's monitoring JSON (`varz`, `jsz`); null when it does not answer in 5 s. */
export async function natsMonitor(nats, path) {
  try {
    const res = await fetch(`http://127.0.0.1:${nats.monitorPort}/${path}`, {
      signal: AbortSignal.timeout(5_000),
    });
    return res.ok ? await res.json() : null;
  } catch {
    return null;
  }
}
