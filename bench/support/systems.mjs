// The systems the comparison runs, each as real processes with their roles named so that
// CPU can be summed per role:
// - `socketio-redis`: redis-server (broker), N Socket.IO nodes with the classic Redis
//   adapter (socket), a Fastify sender with @socket.io/redis-emitter (api);
// - `socketio-redis-sharded`: the same with the sharded adapter on both sides;
// - `switchboard`: nats-server with JetStream (broker), N edges (socket), presence
//   (presence), the push API (api), all from apps/<app>/dist/main.js;
// - limits: a raw Socket.IO emit loop in one process, NATS core pub/sub, a Fastify
//   hello-world POST.
import { AppProcess, freePort, NatsServer } from '@switchboard/testkit';
import { forkScript, pidByTag, stopProcess } from './procs.mjs';
import { RedisServer } from './redis-server.mjs';

export const SECRET = 'bench-secret-bench-secret-bench-secret-00';
export const API_KEY = 'bench-api-key-0123456789';

export const SYSTEMS = ['socketio-redis', 'socketio-redis-sharded', 'switchboard'];
export const LIMITS = ['limit-socketio-emit', 'limit-nats-pubsub', 'limit-fastify-hello'];

let started = 0;

/**
 * Starts one system with `nodes` socket servers. `nodeArgs(label)` gives extra node flags
 * for each Node server process (profiling, GC); `env` is added to each one's environment.
 * Resolves with `{ name, kind, nodes, nodeUrls, sendUrl, processes: [{ role, label, pid }],
 * stop() }`.
 */
export async function startSystem(name, options = {}) {
  // freePort() hands out a port that was free a moment ago; with several systems starting
  // at once (and other test runs on this machine) one may be taken meanwhile: start again.
  for (let attempt = 1; ; attempt++) {
    try {
      return await startOnce(name, options);
    } catch (err) {
      if (attempt >= 3 || !/EADDRINUSE|address already in use/i.test(String(err?.message)))
        throw err;
    }
  }
}

function startOnce(name, { nodes = 1, nodeArgs = () => [], env = {} }) {
  switch (name) {
    case 'switchboard':
      return startSwitchboard(nodes, nodeArgs, env);
    case 'socketio-redis':
      return startRedisDesign(name, 'classic', 'emitter', nodes, nodeArgs, env);
    case 'socketio-redis-sharded':
      return startRedisDesign(name, 'sharded', 'sharded', nodes, nodeArgs, env);
    case 'limit-socketio-emit':
      return startEmitLimit(nodeArgs, env);
    case 'limit-nats-pubsub':
      return startNatsLimit(nodeArgs, env);
    case 'limit-fastify-hello':
      return startHelloLimit(nodeArgs, env);
    default:
      throw new Error(`unknown system ${name}`);
  }
}

async function startSwitchboard(nodes, nodeArgs, extraEnv) {
  const nats = await NatsServer.start();
  const run = ++started;
  const common = { NATS_URL: nats.url, LOG_LEVEL: 'silent', HOST: '127.0.0.1', ...extraEnv };
  const apps = [];
  const spawn = async (app, role, label, env) => {
    const port = await freePort();
    const tag = `sb-${process.pid}-${run}-${label}`;
    const proc = await AppProcess.spawn(app, {
      env: { ...common, ...env, PORT: String(port), BENCH_TAG: tag },
      readyUrl: `http://127.0.0.1:${port}/readyz`,
      readyTimeoutMs: 30_000,
      nodeArgs: nodeArgs(label),
    });
    const entry = { app: proc, role, label, pid: pidByTag(tag), port };
    apps.push(entry);
    return entry;
  };
  try {
    const [api, , ...edges] = await Promise.all([
      spawn('push-api', 'api', 'push-api', {
        API_KEYS: API_KEY,
        RATE_LIMIT_PER_MINUTE: '1000000000',
      }),
      spawn('presence', 'presence', 'presence', { API_KEYS: API_KEY }),
      ...Array.from({ length: nodes }, (_, i) =>
        spawn('edge', 'socket', `edge-${i + 1}`, {
          NODE_ID: `bench-edge-${i + 1}`,
          AUTH_JWT_SECRET: SECRET,
        }),
      ),
    ]);
    return {
      name: 'switchboard',
      kind: 'http',
      nodes,
      nodeUrls: edges.map((e) => `http://127.0.0.1:${e.port}`),
      sendUrl: `http://127.0.0.1:${api.port}/v1/messages`,
      checkDelivered: true,
      processes: [
        { role: 'broker', label: 'nats-server', pid: nats.pid },
        ...apps.map(({ role, label, pid }) => ({ role, label, pid })),
      ],
      async stop() {
        // Edges first (they drain), then the readers, then the broker.
        await Promise.all(apps.filter((a) => a.role === 'socket').map((a) => a.app.stop()));
        await Promise.all(apps.filter((a) => a.role !== 'socket').map((a) => a.app.stop()));
        await nats.stop();
      },
    };
  } catch (err) {
    await Promise.all(apps.map((a) => a.app.kill()));
    await nats.stop();
    throw err;
  }
}

async function startRedisDesign(name, adapter, sender, nodes, nodeArgs, extraEnv) {
  const redis = await RedisServer.start();
  const children = [];
  const fork = async (path, role, label, env) => {
    const child = await forkScript(path, {
      env: { ...extraEnv, ...env, REDIS_URL: redis.url },
      execArgv: nodeArgs(label),
      ready: (m) => m.port !== undefined,
    });
    const entry = { ...child, role, label, port: child.first.port };
    children.push(entry);
    return entry;
  };
  try {
    const [api, ...servers] = await Promise.all([
      fork('systems/redis-sender.mjs', 'api', 'sender', {
        BENCH_SENDER: sender,
        API_KEYS: API_KEY,
      }),
      ...Array.from({ length: nodes }, (_, i) =>
        fork('systems/socket-server.mjs', 'socket', `socket-${i + 1}`, {
          BENCH_ADAPTER: adapter,
          AUTH_JWT_SECRET: SECRET,
        }),
      ),
    ]);
    return {
      name,
      kind: 'http',
      nodes,
      nodeUrls: servers.map((s) => `http://127.0.0.1:${s.port}`),
      sendUrl: `http://127.0.0.1:${api.port}/v1/messages`,
      checkDelivered: false,
      processes: [
        { role: 'broker', label: 'redis-server', pid: redis.pid },
        ...children.map(({ role, label, pid }) => ({ role, label, pid })),
      ],
      async stop() {
        await Promise.all(children.map((c) => stopProcess(c.proc)));
        await redis.stop();
      },
    };
  } catch (err) {
    for (const c of children) c.proc.kill('SIGKILL');
    await redis.stop();
    throw err;
  }
}

async function startEmitLimit(nodeArgs, extraEnv) {
  const server = await forkScript('systems/socket-server.mjs', {
    env: { ...extraEnv, BENCH_ADAPTER: 'none', AUTH_JWT_SECRET: SECRET },
    execArgv: nodeArgs('socket-1'),
    ready: (m) => m.port !== undefined,
  });
  return {
    name: 'limit-socketio-emit',
    kind: 'emit',
    nodes: 1,
    nodeUrls: [`http://127.0.0.1:${server.first.port}`],
    control: server.proc,
    processes: [{ role: 'socket', label: 'socket-1', pid: server.pid }],
    stop: () => stopProcess(server.proc),
  };
}

async function startNatsLimit(nodeArgs, extraEnv) {
  const nats = await NatsServer.start({ jetstream: false });
  const peer = (role) =>
    forkScript('systems/nats-peer.mjs', {
      env: { ...extraEnv, NATS_URL: nats.url, BENCH_NATS_ROLE: role },
      execArgv: nodeArgs(role),
      ready: (m) => m.ready,
    });
  const sub = await peer('sub');
  const pub = await peer('pub');
  return {
    name: 'limit-nats-pubsub',
    kind: 'nats',
    nodes: 1,
    nodeUrls: [],
    control: pub.proc,
    subscriber: sub.proc,
    processes: [
      { role: 'broker', label: 'nats-server', pid: nats.pid },
      { role: 'publisher', label: 'pub', pid: pub.pid },
      { role: 'subscriber', label: 'sub', pid: sub.pid },
    ],
    async stop() {
      await Promise.all([stopProcess(pub.proc), stopProcess(sub.proc)]);
      await nats.stop();
    },
  };
}

async function startHelloLimit(nodeArgs, extraEnv) {
  const server = await forkScript('baseline/hello-world-server.mjs', {
    env: extraEnv,
    execArgv: nodeArgs('hello'),
    ready: (m) => m.port !== undefined,
  });
  return {
    name: 'limit-fastify-hello',
    kind: 'hello',
    nodes: 1,
    nodeUrls: [],
    sendUrl: `http://127.0.0.1:${server.first.port}/hello`,
    processes: [{ role: 'api', label: 'hello', pid: server.pid }],
    stop: () => stopProcess(server.proc, 2_000),
  };
}
