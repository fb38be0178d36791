/**
 * The demo page `npm start` serves (scripts/demo-server.mjs, scripts/demo/), in headless
 * Chromium against the real stack (nats-server, two edges, push API, presence): it connects
 * as a user, receives and acks, its send form and curl line work, and it survives the drain
 * of its edge by moving to the other. With UPDATE_SCREENSHOT=1 it saves docs/images/demo.png.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { collect, connectClient, type RunningApp, waitFor } from '@switchboard/testkit';
import { type Browser, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDemoServer } from '../../../scripts/demo-server.mjs';
import { DEV_SECRETS } from '../../../scripts/dev-secrets.mjs';
import { API_KEY, SECRET, Stack } from './support.js';

const CHROMIUM = [process.env.CHROMIUM_PATH, '/usr/bin/chromium', '/usr/bin/chromium-browser'].find(
  (p) => p && existsSync(p),
);
// The README's picture is rewritten only on request (UPDATE_SCREENSHOT=1), so a test run
// leaves the working tree clean; otherwise the screenshot goes to the temp directory.
const SCREENSHOT =
  process.env.UPDATE_SCREENSHOT === '1'
    ? join(dirname(fileURLToPath(import.meta.url)), '../../../docs/images/demo.png')
    : join(tmpdir(), 'switchboard-demo.png');

/** The little of the DOM the page functions below use (the tests' tsconfig has no DOM lib). */
type El = { textContent: string | null; getAttribute(name: string): string | null };
type Doc = { querySelector(selector: string): El | null };

type Row = { id: string; event: string; ack: string; latency: string; data: string };

describe('demo page in a browser', () => {
  let stack: Stack;
  let presence: RunningApp;
  let demo: { url: string; close(): Promise<void> };
  let browser: Browser;
  let page: Page;
  let urls: string[];
  /** The edge the page is on. */
  let current = -1;

  beforeAll(async () => {
    if (!CHROMIUM)
      throw new Error(
        'Chromium not found: run `node scripts/ensure.mjs --browser` or set CHROMIUM_PATH',
      );
    // The page uses the development key, as with `npm start` (the screenshot shows it).
    const keys = `${API_KEY},${DEV_SECRETS.apiKey}`;
    stack = await Stack.start({ edges: 2, env: { API_KEYS: keys }, presence: { API_KEYS: keys } });
    presence = stack.presence!;
    urls = [stack.edgeUrl(0), stack.edgeUrl(1)];
    demo = await startDemoServer({
      port: 0,
      edgeUrls: urls,
      pushApiUrl: stack.apiUrl,
      presenceUrl: presence.url,
      apiKey: DEV_SECRETS.apiKey,
      jwtSecret: SECRET,
    });
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
    page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    const problems: string[] = [];
    page.on('pageerror', (err) => problems.push(err.message));
    await page.goto(demo.url);
    await page.waitForSelector('#edges li');
    expect(problems).toEqual([]);
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    await demo?.close();
    await stack?.close();
  });

  const rows = (): Promise<Row[]> =>
    page.$$eval('#messages tbody tr', (trs) =>
      trs.map((tr) => {
        const td = [...tr.querySelectorAll('td')].map((c) => c.textContent ?? '');
        return {
          id: tr.getAttribute('data-id') ?? '',
          event: td[1]!,
          latency: td[3]!,
          ack: td[4]!,
          data: td[5]!,
        };
      }),
    );
  const rowFor = async (id: string) =>
    waitFor(async () => (await rows()).find((r) => r.id === id), {
      message: `no row for ${id} in the page`,
    });
  const send = async (n: number) => {
    const res = await stack.post('/v1/messages', {
      to: 'alice',
      event: 'dm.new',
      data: { text: `message ${n}` },
      ack: true,
      ackTimeoutMs: 3_000,
    });
    return res.json();
  };

  it('demo - the server refuses NODE_ENV=production; its token endpoint signs what the edge accepts', async () => {
    await expect(
      startDemoServer({
        port: 0,
        edgeUrls: urls,
        pushApiUrl: stack.apiUrl,
        presenceUrl: presence.url,
        env: { NODE_ENV: 'production' },
      }),
    ).rejects.toThrow(/development only/);
    const post = (body: unknown) =>
      fetch(`${demo.url}/token`, { method: 'POST', body: JSON.stringify(body) });
    expect((await post({})).status).toBe(400);
    const { token, expiresAt } = (await (
      await post({ userId: 'probe', ttlSeconds: 60 })
    ).json()) as {
      token: string;
      expiresAt: number;
    };
    expect(Math.abs(expiresAt - Date.now() - 60_000)).toBeLessThan(2_000);
    const socket = await connectClient(urls[0]!, { token });
    socket.close();
  });

  it('demo - the page connects as a user and shows its state and the edge that holds it', async () => {
    await page.fill('#user', 'alice');
    await page.click('#connect');
    await page.waitForSelector('#state[data-state="connected"]', { timeout: 10_000 });
    const url = await page.getAttribute('#edge', 'data-url');
    current = urls.indexOf(url!);
    expect(current).toBeGreaterThanOrEqual(0);
    expect(await page.textContent('#edge')).toContain(`edge-${current + 1}`);
    // The edge list marks it, presence shows alice online there.
    expect(await page.textContent(`#edges li[data-url="${url}"]`)).toContain('you are here');
    await page.waitForFunction(
      (node) =>
        (globalThis as unknown as { document: Doc }).document
          .querySelector('#presence li[data-user="alice"]')
          ?.textContent?.includes(node),
      `edge-${current + 1}`,
      { timeout: 10_000 },
    );
  });

  it('demo - a message sent by a service with ack arrives in the page, which acks it: the sender sees delivered', async () => {
    const body = await send(1);
    expect(body.results).toEqual([{ userId: 'alice', status: 'delivered', connections: 1 }]);
    const row = await rowFor(body.id);
    expect(row).toMatchObject({ event: 'dm.new', ack: 'acked', data: '{"text":"message 1"}' });
    expect(row.latency).toMatch(/^\d+ ms$/);
  });

  it("demo - the page's send form and its curl line both deliver (with and without ack)", async () => {
    // Someone else online, for the presence list.
    const bob = await stack.client('bob', 1 - current);
    collect(bob);
    const response = async () => {
      const text = (await page.textContent('#response')) ?? '';
      return JSON.parse(text.replace(/^.*\n/, ''));
    };
    /** Clicks Send and waits for the answer to this send (not the one before). */
    const submit = async () => {
      const before = (await page.textContent('#response')) ?? '';
      await page.click('#send');
      await page.waitForFunction((prev) => {
        const el = (globalThis as unknown as { document: Doc }).document.querySelector('#response');
        return el?.textContent !== prev && el?.getAttribute('data-status') === 'ok';
      }, before);
      return response();
    };
    await page.fill('#send-to', 'alice');

    // Without ack: delivered to the connection, nothing to ack.
    await page.uncheck('#send-ack');
    expect(await page.textContent('#curl')).not.toContain('"ack"');
    await page.fill('#send-data', '{"text":"no ack needed"}');
    const plain = await submit();
    expect(plain.results).toEqual([{ userId: 'alice', status: 'delivered', connections: 1 }]);
    expect((await rowFor(plain.id)).ack).toBe('—');

    // With ack: the page acks, the sender sees it.
    await page.check('#send-ack');
    await page.fill('#send-data', '{"text":"hello from the demo page"}');
    const shown = await submit();
    expect(shown.results).toEqual([{ userId: 'alice', status: 'delivered', connections: 1 }]);
    expect((await rowFor(shown.id)).ack).toBe('acked');

    // The curl line, run by a shell as shown.
    const curl = (await page.textContent('#curl'))!;
    expect(curl).toContain(`${stack.apiUrl}/v1/messages`);
    expect(curl).toContain(`Bearer ${DEV_SECRETS.apiKey}`);
    expect(curl).toContain('"ack":true');
    const { stdout } = await promisify(execFile)('sh', ['-c', curl]);
    const viaCurl = JSON.parse(stdout);
    expect(viaCurl.results).toEqual([{ userId: 'alice', status: 'delivered', connections: 1 }]);
    const curlRow = await rowFor(viaCurl.id);
    expect(curlRow).toMatchObject({ ack: 'acked', data: '{"text":"hello from the demo page"}' });

    // Presence shows both users online, each on its edge; carol offline.
    await page.waitForFunction(
      () => {
        const text = (u: string) =>
          (globalThis as unknown as { document: Doc }).document.querySelector(
            `#presence li[data-user="${u}"]`,
          )?.textContent ?? '';
        return text('bob').includes('online') && text('carol').includes('offline');
      },
      undefined,
      { timeout: 10_000 },
    );
    mkdirSync(dirname(SCREENSHOT), { recursive: true });
    await page.screenshot({ path: SCREENSHOT, fullPage: true });
  });

  it('demo - its edge drains: the page reconnects to the other edge and keeps receiving and acking', async () => {
    const other = urls[1 - current]!;
    await stack.edges[current]!.stop();
    await page.waitForFunction(
      (u) =>
        (globalThis as unknown as { document: Doc }).document
          .querySelector('#edge')
          ?.getAttribute('data-url') === u,
      other,
      { timeout: 15_000 },
    );
    expect(await page.getAttribute('#state', 'data-state')).toBe('connected');
    const states = await page.evaluate(
      () => (globalThis as unknown as { demo: { states: { state: string }[] } }).demo.states,
    );
    expect(states.map((s) => s.state)).toContain('reconnecting');
    const body = await send(2);
    expect(body.results).toEqual([{ userId: 'alice', status: 'delivered', connections: 1 }]);
    expect((await rowFor(body.id)).ack).toBe('acked');
  });
});
