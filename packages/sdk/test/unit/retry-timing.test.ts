/** Retry timing without a network: Retry-After parsing, the backoff bounds, option checks. */
import { createSwitchboard } from '@switchboard/sdk';
import { describe, expect, it } from 'vitest';
import { backoffMs, parseRetryAfter, retryAfterDelayMs } from '../../src/retry.js';

const o = { max: 5, minDelayMs: 100, maxDelayMs: 1_000 };

describe('retry timing', () => {
  it('Retry-After - delay-seconds, HTTP dates (past ones are 0), and what is not one', () => {
    const now = Date.parse('Sun, 06 Nov 1994 08:49:37 GMT');
    expect(parseRetryAfter('1', now)).toBe(1_000);
    expect(parseRetryAfter(' 120 ', now)).toBe(120_000);
    expect(parseRetryAfter('0', now)).toBe(0);
    expect(parseRetryAfter('1.5', now)).toBe(1_500);
    expect(parseRetryAfter('Sun, 06 Nov 1994 08:49:40 GMT', now)).toBe(3_000);
    expect(parseRetryAfter('Sun, 06 Nov 1994 08:49:30 GMT', now)).toBe(0);
    for (const junk of [null, '', '-1', 'soon', '1e3', '12:00', '0x10'])
      expect(parseRetryAfter(junk, now)).toBeUndefined();
  });

  it('backoff - between half and all of min * 2^(n-1), capped at maxDelayMs', () => {
    const low = () => 0;
    const high = () => 0.999_999;
    expect([1, 2, 3, 4, 5].map((n) => backoffMs(n, o, low))).toEqual([50, 100, 200, 400, 500]);
    expect([1, 2, 3, 4, 5].map((n) => Math.round(backoffMs(n, o, high)))).toEqual([
      100, 200, 400, 800, 1_000,
    ]);
    expect(backoffMs(60, o, high)).toBeLessThanOrEqual(1_000);
  });

  it('Retry-After delay - never less than asked, jitter at most minDelayMs and 10 %', () => {
    expect(retryAfterDelayMs(1_000, o, () => 0)).toBe(1_000);
    expect(retryAfterDelayMs(1_000, o, () => 0.999_999)).toBeLessThanOrEqual(1_100);
    expect(retryAfterDelayMs(0, o, () => 0.999_999)).toBe(0);
    expect(retryAfterDelayMs(60_000, o, () => 0.999_999)).toBeLessThanOrEqual(60_100);
  });

  it('options - bad ones are refused at creation', () => {
    const base = { apiUrl: 'http://127.0.0.1:1', apiKey: 'k' };
    expect(() => createSwitchboard({ ...base, apiKey: '' })).toThrow(/apiKey/);
    expect(() => createSwitchboard({ ...base, apiUrl: 'not a url' })).toThrow(/apiUrl/);
    expect(() => createSwitchboard({ ...base, presenceUrl: '::' })).toThrow(/presenceUrl/);
    expect(() => createSwitchboard({ ...base, timeoutMs: 0 })).toThrow(/timeoutMs/);
    expect(() => createSwitchboard({ ...base, retries: { max: -1 } })).toThrow(/retries/);
    expect(() => createSwitchboard({ ...base, retries: { minDelayMs: Number.NaN } })).toThrow(
      /retries/,
    );
  });
});
