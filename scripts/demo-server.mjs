// The demo page `npm start` serves (development only): scripts/demo/ (HTML, JS, CSS), the
// `@switchboard/client` browser bundle (with socket.io-client, one ESM file built at start
// by esbuild), a token endpoint that signs client tokens for any user id, and same-origin
// proxies to the push API and the presence API that add the API key (those APIs send no
// CORS headers, and the key stays out of the page's requests). Refuses NODE_ENV=production.
import { readFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DEV_SECRETS } from './dev-secrets.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..');
const MAX_BODY = 1024 * 1024;
const MAX_TOKEN_TTL_S = 86_400;

const STATIC = {
  '/': ['index.html', 'text/html; charset=utf-8'],
  '/index.html': ['index.html', 'text/html; charset=utf-8'],
  '/demo.js': ['demo.js', 'text/javascript; charset=utf-8'],
  '/demo.css': ['demo.css', 'text/css; charset=utf-8'],
};

/** `@switchboard/client` and socket.io-client as one browser ESM file. */
export async function buildClientBundle() {
  const { build } = await import('esbuild');
  const result = await build({
    entryPoints: [join(root, 'packages/client/src/index.ts')],
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    write: false,
    logLevel: 'silent',
  });
  return result.outputFiles[0].text;
}

/**
 * Starts the demo server. `edgeUrls`, `pushApiUrl`, `presenceUrl`: where the stack runs;
 * `apiKey` and `jwtSecret`: what the push API and the edges accept (the development ones by
 * default). Resolves `{ url, close() }`.
 */
export async function startDemoServer(options) {
  const {
    port = 3200,
    host = '127.0.0.1',
    edgeUrls,
    pushApiUrl,
    presenceUrl,
    apiKey = DEV_SECRETS.apiKey,
    jwtSecret = DEV_SECRETS.jwtSecret,
    env = process.env,
  } = options;
  if (env.NODE_ENV === 'production')
    throw new Error('the demo server is for development only: refused with NODE_ENV=production');
  if (!edgeUrls?.length || !pushApiUrl || !presenceUrl)
    throw new Error('startDemoServer needs edgeUrls, pushApiUrl and presenceUrl');
  const bundle = await buildClientBundle();
  const { SignJWT } = await import('jose');
  const key = new TextEncoder().encode(jwtSecret);

  async function mint(userId, ttlSeconds) {
    const now = Math.floor(Date.now() / 1000);
    const token = await new SignJWT({})
      .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
      .setSubject(userId)
      .setIssuedAt(now)
      .setExpirationTime(now + ttlSeconds)
      .sign(key);
    return { token, expiresAt: (now + ttlSeconds) * 1000 };
  }

  async function edges() {
    return Promise.all(
      edgeUrls.map(async (url) => {
        try {
          const res = await fetch(`${url}/readyz`, { signal: AbortSignal.timeout(1_000) });
          const body = await res.json();
          return { url, nodeId: body.nodeId ?? null, status: res.ok ? 'ready' : 'draining' };
        } catch {
          return { url, nodeId: null, status: 'down' };
        }
      }),
    );
  }

  const auth = { authorization: `Bearer ${apiKey}` };

  async function route(req, res) {
    const url = new URL(req.url ?? '/', 'http://demo');
    const path = url.pathname;
    if (req.method === 'GET' && STATIC[path]) {
      const [file, type] = STATIC[path];
      const body = await readFile(join(here, 'demo', file));
      return send(res, 200, body, type);
    }
    if (req.method === 'GET' && path === '/switchboard-client.js')
      return send(res, 200, bundle, 'text/javascript; charset=utf-8');
    if (req.method === 'GET' && path === '/config')
      return json(res, 200, { edges: edgeUrls, pushApiUrl, presenceUrl, apiKey });
    if (req.method === 'GET' && path === '/edges') return json(res, 200, { edges: await edges() });
    if (req.method === 'POST' && path === '/token') {
      const body = await readJson(req);
      const userId = body?.userId;
      if (typeof userId !== 'string' || userId.length === 0 || userId.length > 256)
        return json(res, 400, { error: 'userId: a non-empty string of at most 256 characters' });
      const ttl = Math.min(MAX_TOKEN_TTL_S, Math.max(5, Number(body.ttlSeconds) || 3_600));
      return json(res, 200, await mint(userId, Math.round(ttl)));
    }
    if (req.method === 'POST' && path === '/send') {
      const started = performance.now();
      const upstream = await fetch(`${pushApiUrl}/v1/messages`, {
        method: 'POST',
        headers: { ...auth, 'content-type': 'application/json' },
        body: await readBody(req),
      });
      const text = await upstream.text();
      return json(res, 200, {
        status: upstream.status,
        ms: Math.round((performance.now() - started) * 10) / 10,
        body: parseOr(text),
      });
    }
    if (req.method === 'GET' && path === '/presence') {
      const users = (url.searchParams.get('users') ?? '')
        .split(',')
        .map((u) => u.trim())
        .filter(Boolean)
        .slice(0, 20);
      const views = await Promise.all(
        users.map(async (userId) => {
          const r = await fetch(`${presenceUrl}/v1/presence/${encodeURIComponent(userId)}`, {
            headers: auth,
            signal: AbortSignal.timeout(2_000),
          });
          return r.ok ? r.json() : { userId, error: `HTTP ${r.status}` };
        }),
      );
      return json(res, 200, { users: views });
    }
    json(res, 404, { error: `no route ${req.method} ${path}` });
  }

  const server = createServer((req, res) => {
    route(req, res).catch((err) => {
      if (!res.headersSent) json(res, 502, { error: String(err?.message ?? err) });
      else res.destroy();
    });
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, resolve);
  });
  const address = server.address();
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${address.port}`;
  return {
    url,
    close: () =>
      new Promise((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

function send(res, status, body, type) {
  res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' }).end(body);
}

function json(res, status, body) {
  send(res, status, JSON.stringify(body), 'application/json');
}

function parseOr(text) {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on('data', (c) => {
      size += c.length;
      if (size > MAX_BODY) {
        reject(new Error('request body too large'));
        req.destroy();
      } else chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

async function readJson(req) {
  return parseOr(await readBody(req));
}
