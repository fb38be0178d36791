/**
 * One deadline per send: with the fallback stream gone (every hand-off fails and would be
 * retried for a minute), a multicast to 600 offline users with fallback answers by its
 * deadline, with an explicit outcome for every recipient and none counted as handed over.
 */
import { jetstreamManager } from '@nats-io/jetstream';
import { Streams } from '@switchboard/protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Stack } from './support/stack.js';

describe('send deadline', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await Stack.start({
      edges: 0,
      env: { SEND_TIMEOUT_MS: '2000', FALLBACK_RETRY_MS: '60000' },
    });
  });
  afterAll(() => stack?.close());

  it('deadline - hand-offs that cannot finish are answered per recipient by the deadline', async () => {
    const jsm = await jetstreamManager(await stack.connect('breaker'));
    await jsm.streams.delete(Streams.fallback);
    const to = Array.from({ length: 600 }, (_, i) => `gone-${i}`);
    const started = Date.now();
    const res = await stack.post('/v1/messages', {
      to,
      event: 'note',
      data: { n: 1 },
      fallback: { title: 't', body: 'b' },
    });
    const took = Date.now() - started;
    expect(res.status).toBe(200);
    const body = (await res.json()) as {
      results: Array<{ userId: string; status: string; reason?: string }>;
    };
    expect(body.results.map((r) => r.userId)).toEqual(to);
    const reasons = new Map<string, number>();
    for (const r of body.results) {
      expect(r.status).toBe('dropped');
      reasons.set(r.reason!, (reasons.get(r.reason!) ?? 0) + 1);
    }
    // 256 hand-offs run at once: the first wave failed at the deadline, the rest were never tried.
    expect(reasons.get('fallback-failed')).toBeGreaterThan(0);
    expect(reasons.get('deadline')).toBeGreaterThan(0);
    expect((reasons.get('fallback-failed') ?? 0) + (reasons.get('deadline') ?? 0)).toBe(600);
    expect(took).toBeGreaterThanOrEqual(1_900);
    expect(took).toBeLessThan(5_000);
  });
});
