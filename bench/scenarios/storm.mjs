// Scenarios 4 and 5, on one socket server per system:
// - connection storm: 10,000 clients (4 client processes, 50 handshakes in flight each)
//   connect at once; connects/s until all are connected, and the time until all are
//   routable: one request to all of them is delivered to every one (Switchboard: every
//   recipient answered `delivered` and received; Redis designs: every client received);
// - idle memory per connection: every Node server process is started with
//   `--expose-gc -r bench/support/gc-on-signal.cjs`; before the storm and with the 10,000
//   clients idle, SIGUSR2 makes each run a full GC and report its heap, then VmRSS is read
//   from /proc for every server process (brokers included). Per connection = the growth
//   divided by the clients.
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { measureRun, nowUs, openClients, round, userIds } from '../support/harness.mjs';
import { GC_ON_SIGNAL, rssBytes, sleep, until } from '../support/procs.mjs';
import { SYSTEMS, startSystem } from '../support/systems.mjs';

const BINARIES = new Set(['nats-server', 'redis-server']);

/** GC every Node server process, then VmRSS of every process and the Node heaps. */
async function snapshot(system, memDir) {
  const since = Date.now();
  const node = system.processes.filter((p) => !BINARIES.has(p.label));
  for (const p of node) process.kill(p.pid, 'SIGUSR2');
  const heaps = new Map();
  await until(
    async () => {
      for (const p of node) {
        if (heaps.has(p.pid)) continue;
        const text = await readFile(join(memDir, `${p.pid}.json`), 'utf8').catch(() => null);
        const m = text && JSON.parse(text);
        if (m && m.at >= since) heaps.set(p.pid, m.heapUsed);
      }
      return heaps.size === node.length;
    },
    { timeoutMs: 20_000, what: 'memory reports after GC' },
  );
  return system.processes.map((p) => ({
    ...p,
    rss: rssBytes(p.pid),
    heapUsed: heaps.get(p.pid) ?? null,
  }));
}

export async function run({ quick = false, log = console.log } = {}) {
  const clients = quick ? 4_000 : 10_000;
  const users = userIds(clients, 'c');
  const results = [];
  for (const name of ['limit-socketio-emit', ...SYSTEMS]) {
    const memDir = await mkdtemp(join(tmpdir(), 'sb-bench-mem-'));
    const system = await startSystem(name, {
      nodes: 1,
      nodeArgs: () => ['--expose-gc', '-r', GC_ON_SIGNAL],
      env: { BENCH_MEM_DIR: memDir },
    });
    let group = null;
    try {
      await sleep(500);
      const before = await snapshot(system, memDir);
      group = await openClients(system, users, { procs: 4, concurrency: 50 });
      const storm = await group.connect();
      const connectSeconds = (storm.endUs - storm.startUs) / 1e6;
      let routableSeconds = null;
      if (system.kind === 'http') {
        const deadline = Date.now() + 60_000;
        for (let attempt = 1; Date.now() < deadline; attempt++) {
          const probe = await measureRun(system, group, {
            rate: 1,
            count: 1,
            runId: `storm-${name}-${attempt}`,
            users,
            fanout: 'all',
            tailMs: 15_000,
          });
          if (probe.valid) {
            routableSeconds = (nowUs() - storm.startUs) / 1e6;
            break;
          }
          await sleep(250);
        }
      }
      await sleep(1_000);
      const after = await snapshot(system, memDir);
      const perConnection = {};
      const heapPerConnection = {};
      for (const [i, p] of after.entries()) {
        const key = `${p.role}:${p.label}`;
        perConnection[key] = round((p.rss - before[i].rss) / storm.connected, 0);
        if (p.heapUsed !== null)
          heapPerConnection[key] = round((p.heapUsed - before[i].heapUsed) / storm.connected, 0);
      }
      const socket = after.find((p) => p.role === 'socket');
      const socketBefore = before.find((p) => p.pid === socket.pid);
      const row = {
        system: name,
        clients,
        connected: storm.connected,
        failed: storm.failed,
        connectsPerS: round(storm.connected / connectSeconds, 0),
        connectSeconds: round(connectSeconds),
        routableSeconds: round(routableSeconds),
        memory: {
          socketServerRssPerConnection: round((socket.rss - socketBefore.rss) / storm.connected, 0),
          socketServerHeapPerConnection: round(
            (socket.heapUsed - socketBefore.heapUsed) / storm.connected,
            0,
          ),
          allServersRssPerConnection: round(
            after.reduce((s, p, i) => s + p.rss - before[i].rss, 0) / storm.connected,
            0,
          ),
          rssPerConnectionByProcess: perConnection,
          heapPerConnectionByProcess: heapPerConnection,
        },
      };
      results.push(row);
      log(
        `  ${name}: ${row.connectsPerS} connects/s, routable after ${row.routableSeconds ?? '-'} s, socket server ${row.memory.socketServerRssPerConnection} B RSS / ${row.memory.socketServerHeapPerConnection} B heap per connection`,
      );
    } finally {
      await group?.close();
      await system.stop();
      await rm(memDir, { recursive: true, force: true });
    }
  }
  return {
    clients,
    clientProcesses: 4,
    inFlight: 200,
    memoryMethod:
      'after a forced full GC (--expose-gc, SIGUSR2): VmRSS from /proc/<pid>/status for every server process, heapUsed from process.memoryUsage() for Node processes; (idle with clients − idle before) / clients',
    results,
  };
}
