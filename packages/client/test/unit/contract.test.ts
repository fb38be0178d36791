/**
 * The client's copy of the socket contract equals `@switchboard/protocol/socket`; the pure
 * parts (backoff bounds, token expiry reading, the recent-ids memory) on their own.
 */
import {
  backoffDelay,
  CloseReasons,
  ConnectErrors,
  ControlEvents,
  resolveBackoff,
  tokenExpiresAt,
} from '@switchboard/client';
import * as protocol from '@switchboard/protocol';
import { mintToken } from '@switchboard/testkit';
import { describe, expect, it } from 'vitest';
import { RecentIds } from '../../src/recent-ids.js';

describe('client contract and parts', () => {
  it('contract - control events, close reasons and connect errors equal the protocol', () => {
    expect(ControlEvents).toEqual(protocol.ControlEvents);
    expect(CloseReasons).toEqual(protocol.CloseReasons);
    expect(ConnectErrors).toEqual(protocol.ConnectErrors);
  });

  it('backoff - every wait is within [min, max], its floor grows by factor until the cap', () => {
    const b = resolveBackoff({ minDelayMs: 100, maxDelayMs: 1_000, factor: 2, jitter: 0.5 });
    const low = (n: number) => backoffDelay(n, b, () => 0);
    const high = (n: number) => backoffDelay(n, b, () => 0.999999);
    expect([1, 2, 3, 4, 5, 6].map(low)).toEqual([100, 200, 400, 667, 667, 667]);
    expect([1, 2, 3, 4, 5, 6].map(high)).toEqual([150, 300, 600, 1000, 1000, 1000]);
    for (let n = 1; n < 40; n++) {
      const d = backoffDelay(n, b);
      expect(d).toBeGreaterThanOrEqual(100);
      expect(d).toBeLessThanOrEqual(1_000);
    }
    // No jitter: exactly min × factor^(n−1), capped.
    const flat = resolveBackoff({ minDelayMs: 50, maxDelayMs: 300, jitter: 0 });
    expect([1, 2, 3, 4, 5].map((n) => backoffDelay(n, flat))).toEqual([50, 100, 200, 300, 300]);
    expect(() => resolveBackoff({ minDelayMs: 500, maxDelayMs: 100 })).toThrow(/maxDelayMs/);
    expect(() => resolveBackoff({ jitter: 2 })).toThrow(/jitter/);
    expect(() => resolveBackoff({ factor: 0.5 })).toThrow(/factor/);
  });

  it('token - exp is read without verifying; anything else has no expiry', async () => {
    const t = await mintToken({ sub: 'ünïcødé', secret: 'x'.repeat(32), expiresInSeconds: 90 });
    const exp = tokenExpiresAt(t)!;
    expect(Math.abs(exp - (Date.now() + 90_000))).toBeLessThan(2_000);
    expect(exp % 1000).toBe(0);
    expect(tokenExpiresAt('opaque-token')).toBeUndefined();
    expect(tokenExpiresAt('a.!!!.c')).toBeUndefined();
    expect(tokenExpiresAt(`x.${btoa('{"sub":"1"}')}.y`)).toBeUndefined();
  });

  it('dedupe - the last N ids are remembered; a duplicate acks once the first copy is done', () => {
    const r = new RecentIds(2);
    expect(r.check('a')).toBeUndefined();
    expect(r.check('b')).toBeUndefined();
    const acks: string[] = [];
    r.check('a')!(() => acks.push('a-dup'));
    expect(acks).toEqual([]); // the first copy is not handled yet
    r.done('a');
    expect(acks).toEqual(['a-dup']);
    r.check('a')!(() => acks.push('a-dup2')); // handled already: at once
    expect(acks).toEqual(['a-dup', 'a-dup2']);
    expect(r.check('c')).toBeUndefined(); // forgets 'a', the oldest
    expect(r.size).toBe(2);
    expect(r.check('a')).toBeUndefined();
    expect(new RecentIds(0).check('a')).toBeUndefined();
    expect(new RecentIds(0).check('a')).toBeUndefined();
  });
});
