/** Webhooks read as an attacker would: real HTTP servers on 127.0.0.1, the real provider. */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Device, FallbackMessage } from '@switchboard/protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebhookProvider } from '../src/providers/webhook-provider.js';

const message: FallbackMessage = {
  id: 'm-1',
  userId: 'u',
  event: 'dm.new',
  data: null,
  sentAt: Date.now(),
  reason: 'offline',
  notification: { title: 't' },
};
const device = (token: string): Device => ({
  deviceId: 'hook',
  platform: 'webhook',
  token,
  updatedAt: Date.now(),
});

async function listen(handler: Parameters<typeof createServer>[1]): Promise<[Server, number]> {
  const s = createServer(handler);
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  return [s, (s.address() as AddressInfo).port];
}

describe('webhook provider security', () => {
  let ok: Server;
  let okPort: number;
  let endless: Server;
  let endlessPort: number;
  let hits = 0;
  beforeAll(async () => {
    [ok, okPort] = await listen((_req, res) => {
      hits++;
      res.writeHead(204).end();
    });
    [endless, endlessPort] = await listen((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      const chunk = Buffer.alloc(64 * 1024, 120);
      const pump = () => {
        while (res.write(chunk)) {}
      };
      res.on('drain', pump);
      pump();
    });
  });
  afterAll(() => {
    ok?.close();
    endless?.closeAllConnections();
    endless?.close();
  });
  const provider = (o: Partial<ConstructorParameters<typeof WebhookProvider>[0]> = {}) =>
    new WebhookProvider({
      allowedHosts: [`localhost:${okPort}`, `localhost:${endlessPort}`],
      secret: 'webhook-secret-0123456789',
      allowPrivate: true,
      timeoutMs: 2_000,
      ...o,
    });

  it('allow-list - host and port must both match', async () => {
    const p = provider({ allowedHosts: ['localhost:1'] });
    expect(await p.send(device(`http://localhost:${okPort}/h`), message)).toMatchObject({
      outcome: 'rejected',
      detail: expect.stringMatching(/not in WEBHOOK_ALLOWED_HOSTS/),
    });
    expect(hits).toBe(0);
    expect(await provider().send(device(`http://localhost:${okPort}/h`), message)).toMatchObject({
      outcome: 'accepted',
    });
    expect(hits).toBe(1);
  });

  it('private addresses - a host resolving to loopback is refused unless allowed', async () => {
    const p = provider({ allowPrivate: false });
    expect(await p.send(device(`http://localhost:${okPort}/h`), message)).toMatchObject({
      outcome: 'rejected',
      detail: expect.stringMatching(/loopback|private/),
    });
    expect(hits).toBe(1);
  });

  it('https only - outside development an http: URL is refused', async () => {
    const p = provider({ requireHttps: true });
    expect(await p.send(device(`http://localhost:${okPort}/h`), message)).toMatchObject({
      outcome: 'rejected',
      detail: expect.stringMatching(/https/),
    });
    expect(hits).toBe(1);
  });

  it('response body - an endless 200 body is not read past the cap: accepted at once', async () => {
    const started = Date.now();
    expect(
      await provider().send(device(`http://localhost:${endlessPort}/h`), message),
    ).toMatchObject({ outcome: 'accepted' });
    // The timeout is 2 s: reading the whole body would end in a retry after it.
    expect(Date.now() - started).toBeLessThan(1_500);
  });
});
