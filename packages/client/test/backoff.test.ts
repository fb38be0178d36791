/**
 * Reconnect policy against plain Socket.IO servers started here: one that refuses every
 * handshake (`connect_error` `overloaded`), one that closes every connection as a slow
 * consumer (`$closing` then a server disconnect). Attempt times are taken where the server
 * sees them.
 */
import { createServer, type Server as HttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import { waitFor } from '@switchboard/testkit';
import { Server } from 'socket.io';
import { afterEach, describe, expect, it } from 'vitest';
import { type Recorded, recordedClient } from './support.js';

type Stub = { url: string; arrivals: number[]; tokens: unknown[]; close(): Promise<void> };

async function stubServer(setup: (io: Server, stub: Stub) => void): Promise<Stub> {
  const http: HttpServer = createServer();
  const io = new Server(http, { serveClient: false });
  await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
  const stub: Stub = {
    url: `http://127.0.0.1:${(http.address() as AddressInfo).port}`,
    arrivals: [],
    tokens: [],
    close: () => new Promise<void>((r) => io.close(() => r())),
  };
  io.use((socket, next) => {
    stub.arrivals.push(performance.now());
    stub.tokens.push(socket.handshake.auth.token);
    next();
  });
  setup(io, stub);
  return stub;
}

const B = { minDelayMs: 100, maxDelayMs: 1_000, factor: 2, jitter: 0.5 };
/** The floor of retry n's wait: min × factor^(n−1), capped at max / (1 + jitter). */
const floor = (n: number) => Math.min(B.minDelayMs * B.factor ** (n - 1), B.maxDelayMs / 1.5);
/** Time between a refusal and the next attempt's arrival, beyond the wait (a loaded machine). */
const SLACK_MS = 250;

describe('client reconnect backoff', () => {
  const open: Recorded[] = [];
  const stubs: Stub[] = [];
  afterEach(async () => {
    for (const r of open.splice(0)) r.client.close();
    await Promise.all(stubs.splice(0).map((s) => s.close()));
  });

  it('backoff - against a server that refuses, waits stay within [min, max] and grow; each attempt has a fresh token', async () => {
    const stub = await stubServer((io) => {
      io.use((_socket, next) => next(new Error('overloaded')));
    });
    stubs.push(stub);
    let minted = 0;
    const r = recordedClient({
      url: stub.url,
      getToken: () => `token-${++minted}`,
      transports: ['websocket'],
      reconnect: B,
    });
    open.push(r);
    await waitFor(() => stub.arrivals.length >= 8, { timeoutMs: 15_000 });
    r.client.close();

    const gaps = stub.arrivals.slice(1, 8).map((t, i) => t - stub.arrivals[i]!);
    for (const [i, gap] of gaps.entries()) {
      const n = i + 1;
      expect(gap, `gap before retry ${n}`).toBeGreaterThanOrEqual(floor(n) - 2);
      expect(gap, `gap before retry ${n}`).toBeLessThanOrEqual(B.maxDelayMs + SLACK_MS);
    }
    // It grows: the later waits are at least 4 × the first's floor (100 → 200 → 400 → 667).
    expect(Math.min(...gaps.slice(3))).toBeGreaterThanOrEqual(4 * B.minDelayMs);

    // What the client reported: one scheduled retry per refusal, with the reason.
    const retries = r.states.filter((s) => s.delayMs !== undefined).slice(0, 7);
    expect(retries.map((s) => s.attempt)).toEqual([1, 2, 3, 4, 5, 6, 7]);
    for (const s of retries) {
      expect(s.state).toBe('connecting');
      expect(s.reason).toBe('overloaded');
      expect(s.delayMs!).toBeGreaterThanOrEqual(floor(s.attempt!));
      expect(s.delayMs!).toBeLessThanOrEqual(Math.min(B.maxDelayMs, floor(s.attempt!) * 1.5));
    }
    // A new token before every attempt.
    expect(stub.tokens.slice(0, 8)).toEqual([1, 2, 3, 4, 5, 6, 7, 8].map((i) => `token-${i}`));
    expect(r.client.state).toBe('disconnected');
  });

  it('backoff - a slow consumer closed right after each connect reconnects with growing waits, not at once', async () => {
    const stub = await stubServer((io) => {
      io.on('connection', (socket) => {
        socket.emit('$closing', { reason: 'slow_consumer' });
        socket.disconnect(true);
      });
    });
    stubs.push(stub);
    const r = recordedClient({
      url: stub.url,
      getToken: () => 'token',
      transports: ['websocket'],
      reconnect: B,
    });
    open.push(r);
    await waitFor(() => stub.arrivals.length >= 6, { timeoutMs: 15_000 });
    r.client.close();

    const gaps = stub.arrivals.slice(1, 6).map((t, i) => t - stub.arrivals[i]!);
    for (const [i, gap] of gaps.entries()) {
      expect(gap, `gap before reconnect ${i + 1}`).toBeGreaterThanOrEqual(floor(i + 1) - 2);
      expect(gap).toBeLessThanOrEqual(B.maxDelayMs + SLACK_MS);
    }
    const lost = r.states.filter((s) => s.state === 'reconnecting').slice(0, 5);
    expect(lost.map((s) => [s.reason, s.attempt])).toEqual([
      ['slow_consumer', 1],
      ['slow_consumer', 2],
      ['slow_consumer', 3],
      ['slow_consumer', 4],
      ['slow_consumer', 5],
    ]);
  });

  it('backoff - a connection that stays up resets the count: the next loss waits from min again', async () => {
    let kick: (() => void) | undefined;
    let refuse = 2;
    const stub = await stubServer((io) => {
      io.use((_socket, next) => (refuse-- > 0 ? next(new Error('unavailable')) : next()));
      io.on('connection', (socket) => {
        kick = () => {
          socket.emit('$closing', { reason: 'slow_consumer' });
          socket.disconnect(true);
        };
      });
    });
    stubs.push(stub);
    const r = recordedClient({
      url: stub.url,
      getToken: () => 'token',
      transports: ['websocket'],
      reconnect: { ...B, stableAfterMs: 300 },
    });
    open.push(r);
    await waitFor(() => r.client.state === 'connected' && kick, { timeoutMs: 10_000 });
    const connectedAt = performance.now();
    // Two refusals before: attempts 1 and 2. Connected for longer than stableAfterMs …
    await waitFor(() => performance.now() - connectedAt > 400);
    kick!();
    await waitFor(() => r.states.at(-1)?.state === 'reconnecting');
    // … so the loss is retry 1 again.
    expect(r.states.filter((s) => s.delayMs !== undefined).map((s) => s.attempt)).toEqual([
      1, 2, 1,
    ]);
  });
});
