/**
 * The contract "once the client sees `connect`, the user is routable", on the edge's side:
 * the handshake completes only once the user's presence entry is stored, however slow
 * JetStream is. (Clients sending to themselves through the push API from their `connect`
 * handler: apps/push-api/test/send-on-connect.test.ts.)
 */
import type { KV } from '@nats-io/kv';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { openPresenceBuckets } from '@switchboard/presence-registry';
import { encodeUserKey, type UserEntry } from '@switchboard/protocol';
import { type ClientSocket, connectClient, mintToken, NatsServer } from '@switchboard/testkit';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EdgeNode } from '../src/edge-node.js';
import { TokenVerifier } from '../src/token-verifier.js';
import { edgeTestConfig } from './support.js';

const SECRET = 'handshake-test-secret-handshake-test-0123';

describe('edge handshake', () => {
  let nats: NatsServer;
  let nc: NatsConnection;
  const sockets: ClientSocket[] = [];
  beforeAll(async () => {
    nats = await NatsServer.start();
    nc = await connect({ servers: nats.url });
  });
  afterAll(async () => {
    for (const s of sockets) s.close();
    await nc?.close();
    await nats?.stop();
  });

  it('connect - the handshake completes only once the presence write is stored (writes slowed by 200 ms)', async () => {
    const buckets = await openPresenceBuckets(nc, { replicas: 1, leaseTtlMs: 3_000 });
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
    const config = edgeTestConfig(nats.url, SECRET, { nodeId: 'slow-presence' });
    const node = new EdgeNode({
      config,
      nc,
      buckets: { nodes: buckets.nodes, users: slowUsers },
      verifier: await TokenVerifier.create(config.auth),
      log: pino({ level: 'silent' }),
      registry: new Registry(),
    });
    await node.start();
    try {
      const socket = await connectClient(`http://127.0.0.1:${node.port}`, {
        token: await mintToken({ sub: 'slow-writer', secret: SECRET }),
      });
      sockets.push(socket);
      // Read at the moment the client sees `connect`: the entry is already there.
      const entry = await buckets.users.get(encodeUserKey('slow-writer'));
      expect(entry?.json<UserEntry>().nodes['slow-presence']?.connections).toBe(1);
    } finally {
      await node.stop();
    }
  });
});
