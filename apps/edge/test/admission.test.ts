import { connectClient, mintToken, NatsServer } from '@switchboard/testkit';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Admission } from '../src/admission.js';
import { loadConfig } from '../src/config.js';
import { type RunningEdge, startEdge } from '../src/start-edge.js';

const SECRET = 'admission-secret-admission-secret-000000';

describe('edge admission', () => {
  it('admission - a token bucket: a burst, then the rate', () => {
    const a = new Admission(10, 10, 0);
    const admitted = Array.from({ length: 15 }, () => a.tryAdmit(0)).filter(Boolean).length;
    expect(admitted).toBe(10);
    expect(a.tryAdmit(50)).toBe(false); // 0.5 token refilled
    expect(a.tryAdmit(100)).toBe(true); // 1 token
    expect(new Admission(0).tryAdmit()).toBe(true);
  });

  describe('on a node', () => {
    let nats: NatsServer;
    let edge: RunningEdge;
    beforeAll(async () => {
      nats = await NatsServer.start();
      edge = await startEdge(
        loadConfig({
          PORT: '0',
          HOST: '127.0.0.1',
          NATS_URL: nats.url,
          AUTH_JWT_SECRET: SECRET,
          NODE_ID: 'admit',
          EDGE_MAX_CONNECTS_PER_SECOND: '5',
        }),
        pino({ level: 'silent' }),
      );
    });
    afterAll(async () => {
      await edge?.stop();
      await nats?.stop();
    });

    it('admission - connects past the rate get connect_error overloaded, and a retry later gets in', async () => {
      const url = `http://127.0.0.1:${edge.node.port}`;
      const token = await mintToken({ sub: 'storm-user', secret: SECRET });
      const outcomes = await Promise.all(
        Array.from({ length: 12 }, () =>
          connectClient(url, { token }).then(
            (s) => {
              s.close();
              return 'connected';
            },
            (e: Error) => e.message,
          ),
        ),
      );
      expect(outcomes.filter((o) => o === 'connected').length).toBeLessThanOrEqual(6);
      expect(outcomes.filter((o) => o === 'overloaded').length).toBeGreaterThanOrEqual(6);
      // Time passing is the point: a second later the bucket (5 connects/s) has refilled.
      await new Promise((r) => setTimeout(r, 1_100));
      const later = await connectClient(url, { token });
      expect(later.connected).toBe(true);
      later.close();
    });
  });
});
