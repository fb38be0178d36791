/**
 * `@switchboard/client` against the real stack: nats-server, two edges, the push API on
 * real HTTP. Duplicates, acks, token refresh before expiry and the token-related refusals.
 */
import { type Ack, type MessageMeta, tokenExpiresAt } from '@switchboard/client';
import { type ClientSocket, connectClient, mintToken, waitFor } from '@switchboard/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connected, type Recorded, recordedClient, SECRET, Stack } from './support.js';

type Events = { 'dm.new': { n: number; fail?: boolean } };

describe('client against the real stack', () => {
  let stack: Stack;
  const open: Recorded[] = [];
  const sockets: ClientSocket[] = [];

  beforeAll(async () => {
    stack = await Stack.start({ edges: 2 });
  });
  afterAll(async () => {
    for (const r of open) r.client.close();
    for (const s of sockets) s.close();
    await stack?.close();
  });

  const token = (sub: string, expiresInSeconds = 3600) =>
    mintToken({ sub, secret: SECRET, expiresInSeconds });

  function client(
    userId: string,
    options: Partial<Parameters<typeof recordedClient>[0]> = {},
  ): Recorded<Events> {
    const r = recordedClient<Events>({
      url: stack.edgeUrl(0),
      getToken: () => token(userId),
      transports: ['websocket'],
      reconnect: { minDelayMs: 50, maxDelayMs: 1_000 },
      ...options,
    });
    open.push(r as Recorded);
    return r;
  }

  async function send(body: Record<string, unknown>, idempotencyKey?: string) {
    const res = await stack.post(
      '/v1/messages',
      { event: 'dm.new', ...body },
      idempotencyKey ? { 'idempotency-key': idempotencyKey } : {},
    );
    expect(res.status).toBe(200);
    return { body: await res.json(), replayed: res.headers.get('idempotent-replayed') };
  }

  it('dedupe - one message id sent twice (two Idempotency-Keys) reaches the handler once; the duplicate is acked too', async () => {
    const r = client('dup-user');
    const seen: MessageMeta[] = [];
    r.client.on('dm.new', (_data, meta) => {
      seen.push(meta);
    });
    await connected(r);

    const message = { to: 'dup-user', id: 'dup-acked-1', data: { n: 1 }, ack: true };
    const first = await send({ ...message, ackTimeoutMs: 3_000 }, 'key-1');
    expect(first.body).toEqual({
      id: 'dup-acked-1',
      results: [{ userId: 'dup-user', status: 'delivered', connections: 1 }],
    });
    // Another key: the API sends again (no replay) with the same message id, and the
    // client's ack of the duplicate answers it.
    const second = await send({ ...message, ackTimeoutMs: 3_000 }, 'key-2');
    expect(second.replayed).toBeNull();
    expect(second.body).toEqual(first.body);
    expect(seen.map((m) => m.id)).toEqual(['dup-acked-1']);

    // Without ack: two copies, then a sentinel; once it is in, the duplicate was dropped.
    await send({ to: 'dup-user', id: 'dup-plain-1', data: { n: 2 } }, 'key-3');
    await send({ to: 'dup-user', id: 'dup-plain-1', data: { n: 2 } }, 'key-4');
    await send({ to: 'dup-user', id: 'sentinel-1', data: { n: 3 } });
    await waitFor(() => seen.some((m) => m.id === 'sentinel-1'));
    expect(seen.map((m) => m.id)).toEqual(['dup-acked-1', 'dup-plain-1', 'sentinel-1']);
  });

  it('dedupe - memory is bounded: with dedupe 2, an id older than the last 2 is delivered again', async () => {
    const small = client('dedupe-small', { dedupe: 2 });
    const big = client('dedupe-big');
    const seen: Record<string, string[]> = { small: [], big: [] };
    small.client.on('dm.new', (_d, meta) => {
      seen.small!.push(meta.id);
    });
    big.client.on('dm.new', (_d, meta) => {
      seen.big!.push(meta.id);
    });
    await Promise.all([connected(small), connected(big)]);
    let key = 0;
    for (const id of ['m-a', 'm-b', 'm-c', 'm-a', 'm-end'])
      await send({ to: ['dedupe-small', 'dedupe-big'], id, data: { n: 0 } }, `k-${++key}`);
    await waitFor(() => seen.small!.includes('m-end') && seen.big!.includes('m-end'));
    expect(seen.small).toEqual(['m-a', 'm-b', 'm-c', 'm-a', 'm-end']);
    expect(seen.big).toEqual(['m-a', 'm-b', 'm-c', 'm-end']);
  });

  it('ack - auto-ack: the sender sees delivered once the async handler resolved; a handler that throws does not ack', async () => {
    const r = client('auto-ack');
    const resolvedAt: number[] = [];
    r.client.on('dm.new', async (data) => {
      await new Promise((res) => setTimeout(res, 150));
      if (data.fail) throw new Error('handler failed');
      resolvedAt.push(Date.now());
    });
    await connected(r);

    const ok = await send({ to: 'auto-ack', data: { n: 1 }, ack: true, ackTimeoutMs: 3_000 });
    const answeredAt = Date.now();
    expect(ok.body.results).toEqual([{ userId: 'auto-ack', status: 'delivered', connections: 1 }]);
    expect(resolvedAt).toHaveLength(1);
    expect(resolvedAt[0]!).toBeLessThanOrEqual(answeredAt);

    const failed = await send({
      to: 'auto-ack',
      data: { n: 2, fail: true },
      ack: true,
      ackTimeoutMs: 1_000,
    });
    expect(failed.body.results).toEqual([
      { userId: 'auto-ack', status: 'dropped', reason: 'ack-timeout' },
    ]);
    expect(r.errors.map((e) => (e as Error).message)).toEqual(['handler failed']);
  });

  it('ack - autoAck false: only an explicit ack() acks', async () => {
    const r = client('manual-ack', { autoAck: false });
    const pending: { n: number; ack: Ack }[] = [];
    r.client.on('dm.new', (data, _meta, ack) => {
      pending.push({ n: data.n, ack });
    });
    await connected(r);

    let settled = false;
    const acked = send({ to: 'manual-ack', data: { n: 1 }, ack: true, ackTimeoutMs: 5_000 }).then(
      (v) => {
        settled = true;
        return v;
      },
    );
    await waitFor(() => pending.length === 1);
    // The handler has returned; the API is still waiting for the ack.
    expect(settled).toBe(false);
    pending[0]!.ack();
    expect((await acked).body.results).toEqual([
      { userId: 'manual-ack', status: 'delivered', connections: 1 },
    ]);

    const unacked = await send({ to: 'manual-ack', data: { n: 2 }, ack: true, ackTimeoutMs: 500 });
    expect(pending.map((p) => p.n)).toEqual([1, 2]);
    expect(unacked.body.results).toEqual([
      { userId: 'manual-ack', status: 'dropped', reason: 'ack-timeout' },
    ]);
    // `ack.requested` tells whether the sender waits for one.
    await send({ to: 'manual-ack', data: { n: 3 } });
    await waitFor(() => pending.length === 3);
    expect(pending.map((p) => p.ack.requested)).toEqual([true, true, false]);
  });

  it('ack - no handler for the event: not acked (the sender falls back)', async () => {
    const r = client('no-handler');
    await connected(r);
    const res = await send({ to: 'no-handler', data: { n: 1 }, ack: true, ackTimeoutMs: 300 });
    expect(res.body.results).toEqual([
      { userId: 'no-handler', status: 'dropped', reason: 'ack-timeout' },
    ]);
  });

  it('token - a 4 s token is refreshed before it expires: the client stays connected past two expiries and keeps receiving', async () => {
    const tokens: string[] = [];
    const r = client('short-lived', {
      getToken: async () => {
        const t = await token('short-lived', 4);
        tokens.push(t);
        return t;
      },
    });
    const got: number[] = [];
    r.client.on('dm.new', (data) => {
      got.push(data.n);
    });
    await connected(r);

    for (const i of [0, 1]) {
      // A sentinel socket on the same edge with the same token, never refreshed: once the
      // edge has closed it, the sweep that would have closed the client has run.
      await waitFor(() => tokens.length > i);
      const sentinel = await connectClient(stack.edgeUrl(0), { token: tokens[i]! });
      sockets.push(sentinel);
      let closedAt = 0;
      sentinel.on('disconnect', () => {
        closedAt = Date.now();
      });
      await waitFor(() => closedAt > 0, { timeoutMs: 8_000, message: `sentinel ${i} not closed` });
      expect(closedAt).toBeGreaterThanOrEqual(tokenExpiresAt(tokens[i]!)!);
      expect(r.client.state).toBe('connected');
      const res = await send({ to: 'short-lived', data: { n: i }, ack: true, ackTimeoutMs: 3_000 });
      expect(res.body.results).toEqual([
        { userId: 'short-lived', status: 'delivered', connections: 1 },
      ]);
    }
    expect(got).toEqual([0, 1]);
    expect(r.states.map((s) => s.state)).toEqual(['connecting', 'connected']);
    expect(r.refreshes.length).toBeGreaterThanOrEqual(2);
    expect(r.refreshes.every((o) => o.ok)).toBe(true);
  });

  it('token - when the refresh cannot get a newer token, the edge closes with expired and the client reconnects with a fresh one', async () => {
    const stale = await token('stale-token', 3);
    let fresh = 0;
    let closed = false;
    const r = client('stale-token', {
      // The same short token until the client has been closed for it, then fresh ones.
      getToken: () => {
        if (!closed) return stale;
        fresh++;
        return token('stale-token', 3600);
      },
    });
    r.client.onState((s) => {
      if (s.state === 'reconnecting') closed = true;
    });
    const got: number[] = [];
    r.client.on('dm.new', (data) => {
      got.push(data.n);
    });
    await connected(r);
    await waitFor(() => r.states.length >= 4 && r.client.state === 'connected', {
      timeoutMs: 10_000,
      message: () => `states ${JSON.stringify(r.states)}`,
    });
    expect(r.states.map((s) => [s.state, s.reason])).toEqual([
      ['connecting', undefined],
      ['connected', undefined],
      ['reconnecting', 'expired'],
      ['connected', undefined],
    ]);
    expect(fresh).toBe(1);
    const res = await send({ to: 'stale-token', data: { n: 7 }, ack: true, ackTimeoutMs: 3_000 });
    expect(res.body.results).toEqual([
      { userId: 'stale-token', status: 'delivered', connections: 1 },
    ]);
    expect(got).toEqual([7]);
  });

  it('token - connect_error expired: a fresh token is fetched before the retry, which connects', async () => {
    const given: string[] = [];
    const r = client('was-expired', {
      getToken: async () => {
        const t = await token('was-expired', given.length === 0 ? -30 : 3600);
        given.push(t);
        return t;
      },
    });
    await connected(r);
    expect(given).toHaveLength(2);
    expect(r.states.map((s) => [s.state, s.reason])).toEqual([
      ['connecting', undefined],
      ['connecting', 'expired'],
      ['connected', undefined],
    ]);
  });

  it('token - unauthorized three times in a row: the state is failed; connect() with a good token works again', async () => {
    let good = false;
    let calls = 0;
    const r = client('locked-out', {
      getToken: () => {
        calls++;
        return good
          ? token('locked-out')
          : mintToken({ sub: 'locked-out', secret: 'not-the-edge-secret-not-the-edge-secret' });
      },
    });
    await waitFor(() => r.client.state === 'failed', { timeoutMs: 10_000 });
    expect(calls).toBe(3);
    expect(r.states.map((s) => [s.state, s.reason])).toEqual([
      ['connecting', undefined],
      ['connecting', 'unauthorized'],
      ['connecting', 'unauthorized'],
      ['failed', 'unauthorized'],
    ]);
    good = true;
    r.client.connect();
    await connected(r);
    expect(calls).toBe(4);
  });

  it('close - stops everything: state disconnected, the edge sees the user leave', async () => {
    const r = client('closer');
    await connected(r);
    const before = await stack.edges[0]!.connections();
    r.client.close();
    expect(r.client.state).toBe('disconnected');
    expect(r.states.at(-1)).toEqual({ state: 'disconnected', reason: 'closed' });
    await waitFor(async () => (await stack.edges[0]!.connections()) === before - 1);
  });
});
