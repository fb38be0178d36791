import { connect, type NatsConnection } from '@nats-io/transport-node';
import { createMetricsRegistry } from '@switchboard/http';
import { openPresenceBuckets } from '@switchboard/presence-registry';
import { connectClient, http, mintToken, NatsServer } from '@switchboard/testkit';
import { SignJWT } from 'jose';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EdgeNode } from '../src/edge-node.js';
import { TokenVerifier } from '../src/token-verifier.js';
import { edgeTestConfig } from './support.js';

const SECRET = 'edge-test-secret-edge-test-secret-0123';

describe('edge auth', () => {
  let nats: NatsServer;
  let nc: NatsConnection;
  let edge: EdgeNode;
  let url: string;

  beforeAll(async () => {
    nats = await NatsServer.start();
    nc = await connect({ servers: nats.url });
    const config = edgeTestConfig(nats.url, SECRET, { nodeId: 'auth-edge', maxConnections: 2 });
    edge = new EdgeNode({
      config,
      nc,
      buckets: await openPresenceBuckets(nc, { replicas: 1, leaseTtlMs: 3_000 }),
      verifier: await TokenVerifier.create({ jwtSecret: SECRET }),
      log: pino({ level: 'silent' }),
      registry: createMetricsRegistry('edge'),
    });
    await edge.start();
    url = `http://127.0.0.1:${edge.port}`;
  });
  afterAll(async () => {
    await edge?.stop();
    await nc?.close();
    await nats?.stop();
  });

  const rejected = async (token: string | undefined, reason = 'unauthorized') => {
    const err = await connectClient(url, { token }).then(
      (s) => {
        s.close();
        return null;
      },
      (e: Error) => e,
    );
    expect(err?.message).toBe(reason);
  };

  it('auth - a valid token connects', async () => {
    const s = await connectClient(url, { token: await mintToken({ sub: 'u1', secret: SECRET }) });
    expect(s.connected).toBe(true);
    s.close();
  });

  it('auth - a missing token gets connect_error unauthorized', () => rejected(undefined));
  it('auth - garbage gets connect_error unauthorized', () => rejected('not-a-jwt'));
  it('auth - a token signed with another secret gets connect_error unauthorized', async () =>
    rejected(await mintToken({ sub: 'u1', secret: 'another-secret-another-secret-000000' })));
  it('auth - an expired token gets connect_error expired (a fresh token will do)', async () =>
    rejected(await mintToken({ sub: 'u1', secret: SECRET, expiresInSeconds: -60 }), 'expired'));
  it('auth - an expired token signed with another secret is unauthorized, not expired', async () =>
    rejected(
      await mintToken({
        sub: 'u1',
        secret: 'another-secret-another-secret-000000',
        expiresInSeconds: -60,
      }),
    ));
  it('auth - a token without sub gets connect_error unauthorized', async () => {
    const now = Math.floor(Date.now() / 1000);
    const token = await new SignJWT({})
      .setProtectedHeader({ alg: 'HS256' })
      .setExpirationTime(now + 60)
      .sign(new TextEncoder().encode(SECRET));
    await rejected(token);
  });
  it.each([
    ['a lone surrogate', 'a\uD800'],
    ['a control character', 'a\nb'],
    ['more than 256 bytes', 'é'.repeat(129)],
  ])(
    'auth - a signed token whose sub has %s gets connect_error unauthorized, and the edge lives',
    async (_, sub) => {
      await rejected(await mintToken({ sub, secret: SECRET }));
      const ok = await connectClient(url, {
        token: await mintToken({ sub: 'after-bad-sub', secret: SECRET }),
      });
      ok.close();
    },
  );

  it('auth - a token without exp gets connect_error unauthorized', async () => {
    const token = await new SignJWT({})
      .setProtectedHeader({ alg: 'HS256' })
      .setSubject('u1')
      .sign(new TextEncoder().encode(SECRET));
    await rejected(token);
  });
  it('auth - alg none is refused', async () => {
    const b64 = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
    await rejected(
      `${b64({ alg: 'none' })}.${b64({ sub: 'u1', exp: Math.floor(Date.now() / 1000) + 60 })}.`,
    );
  });

  it('admission - connections over the limit get connect_error overloaded', async () => {
    const token = await mintToken({ sub: 'u2', secret: SECRET });
    const a = await connectClient(url, { token });
    const b = await connectClient(url, { token });
    const err = await connectClient(url, { token }).catch((e: Error) => e);
    expect((err as Error).message).toBe('overloaded');
    a.close();
    b.close();
  });

  it('http - health, readiness, metrics and a JSON 404', async () => {
    expect((await http(`${url}/healthz`)).status).toBe(200);
    expect(await (await http(`${url}/readyz`)).json()).toMatchObject({
      status: 'ready',
      nodeId: 'auth-edge',
      // Every check is true when good.
      checks: { nats: true, accepting: true },
    });
    expect(await (await http(`${url}/metrics`)).text()).toMatch(
      /switchboard_edge_connections_rejected_total\{reason="unauthorized"/,
    );
    const nf = await http(`${url}/nope`);
    expect(nf.status).toBe(404);
    expect((await nf.json()).error.code).toBe('not_found');
  });
});
