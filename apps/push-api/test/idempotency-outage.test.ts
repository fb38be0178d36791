/**
 * The idempotency store when NATS goes away under a request: a claim fails after two
 * requests of IDEMPOTENCY_TIMEOUT_MS each (nats.js' `kv.create` reads the key after a
 * timed-out write), not of JetStream's default 5 s, so a send with a key in flight at that
 * moment still answers within a few seconds.
 */
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { NatsServer } from '@switchboard/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  IDEMPOTENCY_TIMEOUT_MS,
  IdempotencyStore,
  IdempotencyUnavailableError,
  openIdempotencyBucket,
} from '../src/idempotency-store.js';

describe('push-api idempotency store while NATS is away', () => {
  let nats: NatsServer;
  let nc: NatsConnection;
  let store: IdempotencyStore<unknown>;
  beforeAll(async () => {
    nats = await NatsServer.start();
    nc = await connect({ servers: nats.url, maxReconnectAttempts: -1, reconnectTimeWait: 100 });
    const kv = await openIdempotencyBucket(nc, { replicas: 1 });
    store = new IdempotencyStore({ kv, pendingTimeoutMs: 90_000 });
  });
  afterAll(async () => {
    await nc?.close();
    await nats?.stop();
  });

  it('outage - a claim fails after two requests of IDEMPOTENCY_TIMEOUT_MS (2 s), not of JetStream’s 5 s', async () => {
    // Sentinel: with NATS up, a claim answers at once.
    expect((await store.claim('up', 'f', 0)).kind).toBe('claimed');
    await nats.stop({ keepStore: true });
    const started = Date.now();
    const error = await store.claim('down', 'f', 0).catch((err: unknown) => err);
    const took = Date.now() - started;
    expect(error).toBeInstanceOf(IdempotencyUnavailableError);
    // It waited for its own timeouts (the requests were not refused at once)...
    expect(took).toBeGreaterThanOrEqual(2 * IDEMPOTENCY_TIMEOUT_MS - 100);
    // ...and no longer, with 1 s of room for a loaded machine (with 5 s per request: 10 s).
    expect(took).toBeLessThan(2 * IDEMPOTENCY_TIMEOUT_MS + 1_000);
  });
});
