/** Retry timing: `Retry-After` parsing and jittered exponential backoff. */

/** How the SDK retries; see {@link SwitchboardOptions.retries}. */
export type RetryOptions = {
  /** Retries after the first attempt (0: never retry). Default 3. */
  max: number;
  /** The first backoff step in ms; it doubles per retry. Default 200. */
  minDelayMs: number;
  /**
   * The longest wait before a retry, in ms. A `Retry-After` longer than this is not waited
   * for: the error is thrown at once with its `retryAfterMs`. Default 10,000.
   */
  maxDelayMs: number;
};

export const DEFAULT_RETRIES: RetryOptions = { max: 3, minDelayMs: 200, maxDelayMs: 10_000 };

/**
 * A `Retry-After` header in ms: delay-seconds (`"1"`, `"0.5"` accepted too) or an HTTP
 * date (time until then, at least 0). `undefined` when absent or unreadable.
 */
export function parseRetryAfter(value: string | null, now = Date.now()): number | undefined {
  if (value === null) return undefined;
  const v = value.trim();
  if (v === '') return undefined;
  if (/^\d+(\.\d+)?$/.test(v)) return Math.round(Number(v) * 1000);
  // An HTTP date always names a weekday or month: a bare number was handled above, so
  // anything digits-only or negative is not one.
  if (!/[A-Za-z]/.test(v)) return undefined;
  const at = Date.parse(v);
  if (Number.isNaN(at)) return undefined;
  return Math.max(0, at - now);
}

/**
 * The wait before retry number `retry` (1 for the first retry): "equal jitter" exponential
 * backoff, between half and all of `min(maxDelayMs, minDelayMs * 2^(retry-1))`.
 */
export function backoffMs(retry: number, o: RetryOptions, random = Math.random): number {
  const ceiling = Math.min(o.maxDelayMs, o.minDelayMs * 2 ** Math.max(0, retry - 1));
  return ceiling / 2 + random() * (ceiling / 2);
}

/**
 * The wait before a retry the API asked for with `Retry-After`: at least what it asked,
 * plus up to `minDelayMs` (at most 10 % of the ask) so many callers told the same do not
 * all come back at once.
 */
export function retryAfterDelayMs(retryAfterMs: number, o: RetryOptions, random = Math.random) {
  return retryAfterMs + random() * Math.min(o.minDelayMs, retryAfterMs * 0.1);
}
