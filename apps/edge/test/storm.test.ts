import { Kvm } from '@nats-io/kv';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import type { UserEntry } from '@switchboard/protocol';
import { Buckets } from '@switchboard/protocol';
import {
  AppProcess,
  type ClientSocket,
  connectClient,
  freePort,
  http,
  mintToken,
  NatsServer,
  waitFor,
} from '@switchboard/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const SECRET = 'storm-test-secret-storm-test-secret-0000';
const USERS = 5_000;
/** Connects in flight at once: many clients arriving together, as after a hot-news push. */
const CONCURRENCY = 250;

describe('edge connection storm', () => {
  let nats: NatsServer;
  let edge: AppProcess;
  let url: string;
  let nc: NatsConnection;
  const clients: ClientSocket[] = [];

  beforeAll(async () => {
    nats = await NatsServer.start();
    const port = await freePort();
    url = `http://127.0.0.1:${port}`;
    edge = await AppProcess.spawn('edge', {
      env: {
        NATS_URL: nats.url,
        NODE_ID: 'storm',
        PORT: String(port),
        HOST: '127.0.0.1',
        AUTH_JWT_SECRET: SECRET,
      },
      readyUrl: `${url}/readyz`,
    });
    nc = await connect({ servers: nats.url });
  });
  afterAll(async () => {
    for (const c of clients) c.close();
    await edge?.kill();
    await nc?.close();
    await nats?.stop();
  });

  it(`storm - ${USERS} connects in a burst all end registered, one KV write per user`, async () => {
    const tokens = await Promise.all(
      Array.from({ length: USERS }, (_, i) => mintToken({ sub: `storm-${i}`, secret: SECRET })),
    );
    const kv = await new Kvm(nc).open(Buckets.users);
    const lastSeq = async () => (await kv.status()).streamInfo.state.last_seq;
    const seqBefore = await lastSeq();
    const t0 = Date.now();
    let next = 0;
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        while (next < USERS) {
          const token = tokens[next++]!;
          clients.push(await connectClient(url, { token, timeoutMs: 60_000 }));
        }
      }),
    );
    const connectedMs = Date.now() - t0;

    // Distinct users whose entry shows one connection on this node (a key listing taken
    // while writes land may name a key twice).
    const registered = async () => {
      const keys = new Set<string>();
      for await (const key of await kv.keys()) keys.add(key);
      let n = 0;
      for (const key of keys) {
        const entry = (await kv.get(key))?.json() as UserEntry | undefined;
        if (entry?.nodes.storm?.connections === 1) n++;
      }
      return n;
    };
    await waitFor(async () => (await registered()) === USERS, {
      timeoutMs: 30_000,
      intervalMs: 500,
    });
    const writes = (await lastSeq()) - seqBefore;
    console.log(
      `storm: ${USERS} connects in ${connectedMs} ms (${Math.round((USERS * 1000) / connectedMs)}/s), all registered after ${Date.now() - t0} ms, ${writes} KV writes`,
    );
    expect(await registered()).toBe(USERS);
    // Each user connected once: one write each, none more (the handshake waits for it).
    expect(writes).toBe(USERS);
    const metrics = await (await http(`${url}/metrics`)).text();
    expect(metrics).toMatch(/switchboard_edge_connections\{app="edge"\} 5000/);
  }, 120_000);
});
