/**
 * The contract "once the client sees `connect`, the user is routable": clients that send
 * to themselves through the push API from their `connect` handler are all delivered.
 */
import type { KV } from '@nats-io/kv';
import { loadConfig as loadEdgeConfig } from '@switchboard/edge/config';
import { EdgeNode } from '@switchboard/edge/edge-node';
import { TokenVerifier } from '@switchboard/edge/token-verifier';
import { openPresenceBuckets } from '@switchboard/presence-registry';
import type { UserEntry } from '@switchboard/protocol';
import { encodeUserKey } from '@switchboard/protocol';
import { collect, mintToken, type Received, waitFor } from '@switchboard/testkit';
import { Registry } from 'prom-client';
import { io, type Socket } from 'socket.io-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { log, SECRET, Stack } from './support/stack.js';

const CLIENTS = 200;

describe('send on connect', () => {
  let stack: Stack;
  const sockets: Socket[] = [];
  beforeAll(async () => {
    stack = await Stack.start({ edges: 2 });
  });
  afterAll(async () => {
    for (const s of sockets) s.close();
    await stack?.close();
  });

  it(`connect - ${CLIENTS} clients each sending to themselves on 'connect' are all delivered, and all receive`, async () => {
    const outcomes: Array<Record<string, unknown> | undefined> = [];
    const received: Received[][] = [];
    await Promise.all(
      Array.from({ length: CLIENTS }, async (_, i) => {
        const userId = `eager-${i}`;
        const socket = io(stack.edgeUrl(i % 2), {
          auth: { token: await mintToken({ sub: userId, secret: SECRET }) },
          transports: ['websocket'],
          reconnection: false,
          forceNew: true,
        });
        sockets.push(socket);
        received[i] = collect(socket);
        await new Promise<void>((resolve, reject) => {
          socket.once('connect_error', reject);
          socket.once('connect', () => {
            // No wait of any kind: the first thing the app does after `connect`.
            void stack
              .post('/v1/messages', { to: userId, event: 'hello', data: { i } })
              .then(async (res) => {
                outcomes[i] = (await res.json()).results?.[0];
                resolve();
              }, reject);
          });
        });
      }),
    );
    const notDelivered = outcomes.filter((o) => o?.status !== 'delivered');
    expect(notDelivered).toEqual([]);
    await waitFor(() => received.every((r) => r.length === 1), {
      message: () =>
        `${received.filter((r) => r.length !== 1).length} clients without their message`,
    });
  });

  it('connect - the handshake completes only once the presence write is stored (writes slowed by 200 ms)', async () => {
    const nc = await stack.connect('slow-presence-edge');
    const buckets = await openPresenceBuckets(nc, { replicas: 1, leaseTtlMs: stack.leaseTtlMs });
    // The same bucket, every put answered 200 ms late: a slow JetStream.
    const slowUsers = new Proxy(buckets.users, {
      get(target, prop, receiver) {
        if (prop !== 'put') return Reflect.get(target, prop, receiver);
        return async (...args: Parameters<KV['put']>) => {
          await new Promise((r) => setTimeout(r, 200));
          return target.put(...args);
        };
      },
    });
    const config = loadEdgeConfig({
      PORT: '0',
      HOST: '127.0.0.1',
      NODE_ID: 'slow-presence',
      NATS_URL: stack.nats.url,
      AUTH_JWT_SECRET: SECRET,
      LEASE_TTL_MS: String(stack.leaseTtlMs),
    });
    const node = new EdgeNode({
      config,
      nc,
      buckets: { nodes: buckets.nodes, users: slowUsers },
      verifier: await TokenVerifier.create(config.auth),
      log,
      registry: new Registry(),
    });
    await node.start();
    try {
      const socket = io(`http://127.0.0.1:${node.port}`, {
        auth: { token: await mintToken({ sub: 'slow-writer', secret: SECRET }) },
        transports: ['websocket'],
        reconnection: false,
        forceNew: true,
      });
      sockets.push(socket);
      await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
      // Read at the moment the client sees `connect`: the entry is already there.
      const entry = await buckets.users.get(encodeUserKey('slow-writer'));
      expect(entry?.json<UserEntry>().nodes['slow-presence']?.connections).toBe(1);
    } finally {
      await node.stop();
    }
  });
});
