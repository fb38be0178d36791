#!/usr/bin/env node
// `npm start`: the whole Switchboard on this machine, one process per app with prefixed logs.
// Uses NATS_URL when set; otherwise starts its own nats-server with JetStream, data in .data/.
import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, connect as tcpConnect } from 'node:net';
import { join } from 'node:path';
import { startDemoServer } from './demo-server.mjs';
import { DEV_SECRETS } from './dev-secrets.mjs';
import { build, ensureAll, findNatsServer, root } from './ensure.mjs';

const DEV = DEV_SECRETS;

const env = process.env;
const production = env.NODE_ENV === 'production';
if (production && (!env.API_KEYS || !env.AUTH_JWT_SECRET)) {
  console.error(
    '✗ NODE_ENV=production: set API_KEYS and AUTH_JWT_SECRET; the development secrets are refused.',
  );
  process.exit(1);
}

/** A whole number from `min` to `max` from the environment, or a clear exit. */
function intFromEnv(name, fallback, min, max) {
  const text = env[name];
  if (text === undefined || text === '') return fallback;
  const n = Number(text);
  if (!/^\d+$/.test(text.trim()) || n < min || n > max) {
    console.error(
      `✗ ${name} must be a whole number from ${min} to ${max}, not ${JSON.stringify(text)}.`,
    );
    process.exit(2);
  }
  return n;
}

const apiKey = env.API_KEYS?.split(',')[0]?.trim() || DEV.apiKey;
const jwtSecret = env.AUTH_JWT_SECRET || DEV.jwtSecret;
const edges = intFromEnv('EDGES', 2, 1, 16);
const ports = {
  pushApi: intFromEnv('PUSH_API_PORT', 3000, 1, 65535),
  presence: intFromEnv('PRESENCE_PORT', 3001, 1, 65534),
  edge: intFromEnv('EDGE_PORT', 3100, 1, 65535 - 16),
  nats: intFromEnv('START_NATS_PORT', 4223, 1, 65535),
  demo: intFromEnv('DEMO_PORT', 3200, 1, 65535),
};

// One stack per checkout: a second `npm start` says where the first one is and stops.
const pidFile = join(root, '.data', 'start.pid');
try {
  const running = JSON.parse(readFileSync(pidFile, 'utf8'));
  process.kill(running.pid, 0);
  console.error(
    `✗ Switchboard is already running from this checkout (pid ${running.pid}, started ${running.startedAt}):\n` +
      `  push API ${running.pushApi}, edges ${running.edges.join(' ')}.\n` +
      `  Stop it first (Ctrl-C in its terminal, or kill ${running.pid}).`,
  );
  process.exit(1);
} catch (err) {
  // No file, unreadable, or its process is gone: a stale file from a crash.
  if (err?.code === 'EPERM') {
    console.error(`✗ ${pidFile} names a running process of another user; stop it first.`);
    process.exit(1);
  }
}

ensureAll({ nats: !env.NATS_URL });
build();

const colors = [36, 35, 33, 32, 34, 31, 96, 95];
const children = [];
let stopping = false;
/** The demo page's server (development only), once started. */
let demo;

function prefixed(name, color, stream, out) {
  let buf = '';
  stream.on('data', (d) => {
    buf += d.toString();
    let i = buf.indexOf('\n');
    while (i !== -1) {
      out.write(`\x1b[${color}m${name.padEnd(9)}│\x1b[0m ${buf.slice(0, i)}\n`);
      buf = buf.slice(i + 1);
      i = buf.indexOf('\n');
    }
  });
}

/**
 * Starts one app as a child with prefixed logs. An edge that exits (drained with
 * `kill <pid>`, or crashed) is started again after 2 s, so failover can be tried locally; it
 * gives up after 5 exits in a minute. Any other app exiting stops the whole stack.
 */
function launch(name, cmd, args, extraEnv, options = {}) {
  const color = options.color ?? colors[children.length % colors.length];
  const child = spawn(cmd, args, {
    cwd: root,
    env: { ...env, ...extraEnv },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  prefixed(name, color, child.stdout, process.stdout);
  prefixed(name, color, child.stderr, process.stderr);
  const entry = { name, child, restarts: options.restarts ?? [] };
  child.on('exit', (code, signal) => {
    if (stopping) return;
    if (options.restartable) {
      const now = Date.now();
      const recent = entry.restarts.filter((t) => now - t < 60_000);
      if (recent.length < 5) {
        console.error(
          `• ${name} exited (${signal ?? code}); its clients reconnect to the other edges. Starting it again in 2 s.`,
        );
        setTimeout(() => {
          if (stopping) return;
          children.splice(children.indexOf(entry), 1);
          launch(name, cmd, args, extraEnv, { ...options, color, restarts: [...recent, now] });
        }, 2_000);
        return;
      }
      console.error(`✗ ${name} exited 5 times in a minute; stopping the stack.`);
      void shutdown(1);
      return;
    }
    console.error(`✗ ${name} exited (${signal ?? code}); stopping the stack.`);
    void shutdown(1);
  });
  children.push(entry);
  return child;
}

function portFree(port) {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}

function waitTcp(port, timeoutMs = 15_000) {
  const deadline = Date.now() + timeoutMs;
  return new Promise((resolve, reject) => {
    const attempt = () => {
      const s = tcpConnect(port, '127.0.0.1');
      s.once('connect', () => {
        s.destroy();
        resolve();
      });
      s.once('error', () => {
        s.destroy();
        if (Date.now() > deadline) reject(new Error(`nothing listens on ${port}`));
        else setTimeout(attempt, 100);
      });
    };
    attempt();
  });
}

async function waitReady(url, name, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const ok = await fetch(url).then(
      (r) => r.ok,
      () => false,
    );
    if (ok) return;
    await new Promise((r) => setTimeout(r, 150));
  }
  throw new Error(`${name} not ready at ${url}`);
}

async function shutdown(code = 0) {
  if (stopping) return;
  stopping = true;
  await demo?.close().catch(() => {});
  // Apps first (edges drain), NATS last.
  const apps = children.filter((c) => c.name !== 'nats');
  await Promise.all(apps.map(({ child }) => stop(child)));
  await Promise.all(children.filter((c) => c.name === 'nats').map(({ child }) => stop(child)));
  process.exit(code);
}

function stop(child) {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const t = setTimeout(() => child.kill('SIGKILL'), 15_000);
    child.once('exit', () => {
      clearTimeout(t);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(signal, () => void shutdown(0));

// Every port this stack listens on, checked before anything starts.
const wanted = [
  ['PUSH_API_PORT', ports.pushApi],
  ['PRESENCE_PORT', ports.presence],
  ['the OS push worker (PRESENCE_PORT + 1)', ports.presence + 1],
  ...Array.from({ length: edges }, (_, i) => [`EDGE_PORT + ${i}`, ports.edge + i]),
  ...(production ? [] : [['DEMO_PORT', ports.demo]]),
];
for (const [what, port] of wanted) {
  if (!(await portFree(port))) {
    console.error(
      `✗ port ${port} (${what}) is taken: another program listens there. Stop it, or move this stack with ${what.split(' ')[0]}.`,
    );
    process.exit(1);
  }
}
mkdirSync(join(root, '.data'), { recursive: true });
writeFileSync(
  pidFile,
  JSON.stringify({
    pid: process.pid,
    startedAt: new Date().toISOString(),
    pushApi: `http://127.0.0.1:${ports.pushApi}`,
    edges: Array.from({ length: edges }, (_, i) => `http://127.0.0.1:${ports.edge + i}`),
  }),
);
process.on('exit', () => {
  try {
    if (JSON.parse(readFileSync(pidFile, 'utf8')).pid === process.pid) rmSync(pidFile);
  } catch {}
});

let natsUrl = env.NATS_URL;
if (!natsUrl) {
  if (!(await portFree(ports.nats))) {
    console.error(
      `✗ port ${ports.nats} is taken: set START_NATS_PORT, or NATS_URL to use a running server.`,
    );
    process.exit(1);
  }
  const store = join(root, '.data', 'nats');
  mkdirSync(store, { recursive: true });
  launch('nats', findNatsServer(), [
    '-a',
    '127.0.0.1',
    '-p',
    String(ports.nats),
    '-js',
    '-sd',
    store,
    '-n',
    'switchboard-dev',
  ]);
  await waitTcp(ports.nats);
  natsUrl = `nats://127.0.0.1:${ports.nats}`;
}

const common = {
  HOST: env.HOST ?? '127.0.0.1',
  NATS_URL: natsUrl,
  API_KEYS: env.API_KEYS || DEV.apiKey,
  AUTH_JWT_SECRET: jwtSecret,
  LOG_PRETTY: env.LOG_PRETTY ?? '1',
  LOG_LEVEL: env.LOG_LEVEL ?? 'info',
};
const node = process.execPath;
const app = (name) => join(root, 'apps', name, 'dist', 'main.js');

try {
  launch('presence', node, [app('presence')], { ...common, PORT: String(ports.presence) });
  launch('push-api', node, [app('push-api')], { ...common, PORT: String(ports.pushApi) });
  const edgeUrls = [];
  for (let i = 0; i < edges; i++) {
    const port = ports.edge + i;
    launch(
      `edge-${i + 1}`,
      node,
      [app('edge')],
      {
        ...common,
        PORT: String(port),
        NODE_ID: `edge-${i + 1}`,
        PUBLIC_URL: `http://127.0.0.1:${port}`,
      },
      { restartable: true },
    );
    edgeUrls.push(`http://127.0.0.1:${port}`);
  }
  launch('os-push', node, [app('os-push')], {
    ...common,
    PORT: String(ports.presence + 1),
    OS_PUSH_UNCONFIGURED: env.OS_PUSH_UNCONFIGURED ?? 'log',
  });
  await Promise.all([
    waitReady(`http://127.0.0.1:${ports.pushApi}/readyz`, 'push-api'),
    waitReady(`http://127.0.0.1:${ports.presence}/readyz`, 'presence'),
    ...edgeUrls.map((u, i) => waitReady(`${u}/readyz`, `edge-${i + 1}`)),
  ]);
  if (!production) {
    try {
      demo = await startDemoServer({
        port: ports.demo,
        host: common.HOST,
        edgeUrls,
        pushApiUrl: `http://127.0.0.1:${ports.pushApi}`,
        presenceUrl: `http://127.0.0.1:${ports.presence}`,
        apiKey,
        jwtSecret,
      });
    } catch (err) {
      console.error(`✗ demo page not started: ${err.message} (set DEMO_PORT)`);
    }
  }
  const devKey = apiKey === DEV.apiKey ? ' (development key)' : '';
  console.log(`
\x1b[1mSwitchboard is running.\x1b[0m
  push API   http://127.0.0.1:${ports.pushApi}    (OpenAPI docs at /docs)
  presence   http://127.0.0.1:${ports.presence}
  edges      ${edgeUrls.join('  ')}
  NATS       ${natsUrl}
  API key    ${apiKey}${devKey}${demo ? `\n  demo       ${demo.url}    (development only: open it in a browser)` : ''}

Try it in another terminal:
  npm run client -- alice            # connects as user "alice" and prints what arrives
  curl -s -X POST http://127.0.0.1:${ports.pushApi}/v1/messages \\
    -H 'authorization: Bearer ${apiKey}' -H 'content-type: application/json' \\
    -d '{"to":"alice","event":"dm.new","data":{"text":"hello"}}'
  npm run token -- alice             # prints a client token for user "alice"

Try failover: kill ${children.find((c) => c.name === 'edge-1')?.child.pid ?? '<pid of edge-1>'}   # edge-1 drains, its clients move, it starts again
Ctrl-C (or SIGTERM, SIGHUP) stops everything.
`);
} catch (err) {
  console.error(`✗ ${err.message}`);
  await shutdown(1);
}
