/**
 * End to end in a real browser: headless Chromium (Debian's, driven by playwright-core)
 * loads a page from another origin, connects to an edge with the Socket.IO browser client
 * (cross-origin long-polling handshake, then WebSocket), and receives — and acks — a message a service sent through the API.
 */
import { existsSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { mintToken, waitFor } from '@switchboard/testkit';
import { type Browser, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SECRET, Stack } from './support/stack.js';

const CHROMIUM = [process.env.CHROMIUM_PATH, '/usr/bin/chromium', '/usr/bin/chromium-browser'].find(
  (p) => p && existsSync(p),
);

// The browser build of the Socket.IO client, from the installed package.
const clientMain = createRequire(import.meta.url).resolve('socket.io-client');
const clientBundle = readFileSync(
  join(
    clientMain.slice(0, clientMain.lastIndexOf('socket.io-client') + 'socket.io-client'.length),
    'dist',
    'socket.io.min.js',
  ),
  'utf8',
);

const PAGE = `<!doctype html><html><body>
<script src="/socket.io.min.js"></script>
<script>
  window.received = [];
  window.connect = (url, token) => new Promise((resolve, reject) => {
    // Default transports: the long-polling handshake is a cross-origin request (CORS), then WebSocket.
    const socket = io(url, { auth: { token } });
    socket.on('connect', () => resolve(socket.id));
    socket.on('connect_error', (err) => reject(new Error(err.message)));
    socket.onAny((event, data, meta, ack) => {
      window.received.push({ event, data, meta });
      if (typeof ack === 'function') ack();
    });
  });
</script></body></html>`;

describe('browser end to end', () => {
  let stack: Stack;
  let site: Server;
  let browser: Browser;
  let page: Page;

  beforeAll(async () => {
    if (!CHROMIUM)
      throw new Error(
        'Chromium not found: run `node scripts/ensure.mjs --browser` or set CHROMIUM_PATH',
      );
    stack = await Stack.start({ edges: 1 });
    site = createServer((req, res) => {
      if (req.url === '/socket.io.min.js')
        return res.writeHead(200, { 'content-type': 'text/javascript' }).end(clientBundle);
      res.writeHead(200, { 'content-type': 'text/html' }).end(PAGE);
    });
    await new Promise<void>((r) => site.listen(0, '127.0.0.1', r));
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
    page = await browser.newPage();
    // The page's origin (this server) differs from the edge's: a real cross-origin client.
    await page.goto(`http://127.0.0.1:${(site.address() as AddressInfo).port}/`);
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    site?.close();
    await stack?.close();
  });

  it('browser - a page connects with a token, receives a message and acks it', async () => {
    const token = await mintToken({ sub: 'browser-user', secret: SECRET });
    const socketId = await page.evaluate(
      ([url, t]) =>
        (globalThis as unknown as { connect(u: string, t: string): Promise<string> }).connect(
          url!,
          t!,
        ),
      [stack.edgeUrl(0), token],
    );
    expect(socketId).toBeTruthy();
    await stack.waitForPresence('browser-user', 0);

    const res = await stack.post('/v1/messages', {
      to: 'browser-user',
      event: 'dm.new',
      data: { text: 'hello browser' },
      ack: true,
      ackTimeoutMs: 3_000,
    });
    const body = await res.json();
    expect(body.results).toEqual([{ userId: 'browser-user', status: 'delivered', connections: 1 }]);
    const received = await waitFor(async () => {
      const got = await page.evaluate(
        () => (globalThis as unknown as { received: unknown[] }).received,
      );
      return got.length > 0 ? got : null;
    });
    expect(received).toEqual([
      {
        event: 'dm.new',
        data: { text: 'hello browser' },
        meta: { id: body.id, sentAt: expect.any(Number) },
      },
    ]);
  });

  it('browser - a bad token gets connect_error "unauthorized" in the page', async () => {
    const message = await page.evaluate(
      ([url]) =>
        (globalThis as unknown as { connect(u: string, t: string): Promise<string> })
          .connect(url!, 'not-a-token')
          .then(
            () => 'connected',
            (e: Error) => e.message,
          ),
      [stack.edgeUrl(0)],
    );
    expect(message).toBe('unauthorized');
  });
});
