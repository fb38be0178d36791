/** Reconnect delays: exponential, jittered, always within `[minDelayMs, maxDelayMs]`. */

export type BackoffOptions = {
  /** The shortest wait before a retry (default 500 ms). */
  minDelayMs?: number;
  /** The longest wait before a retry (default 30,000 ms). */
  maxDelayMs?: number;
  /** Growth per consecutive failure (default 2). */
  factor?: number;
  /** Random spread, 0 to 1 (default 0.5): a wait is its base times `1 + jitter × random()`. */
  jitter?: number;
};

export type Backoff = Required<BackoffOptions>;

export const defaultBackoff: Backoff = {
  minDelayMs: 500,
  maxDelayMs: 30_000,
  factor: 2,
  jitter: 0.5,
};

/** Fills defaults and checks the bounds (a `RangeError` names the bad option). */
export function resolveBackoff(options: BackoffOptions = {}): Backoff {
  const b = { ...defaultBackoff, ...stripUndefined(options) };
  if (!(b.minDelayMs >= 0)) throw new RangeError('reconnect.minDelayMs must be >= 0');
  if (!(b.maxDelayMs >= b.minDelayMs))
    throw new RangeError('reconnect.maxDelayMs must be >= reconnect.minDelayMs');
  if (!(b.factor >= 1)) throw new RangeError('reconnect.factor must be >= 1');
  if (!(b.jitter >= 0 && b.jitter <= 1)) throw new RangeError('reconnect.jitter must be in [0, 1]');
  return b;
}

/**
 * The wait before retry number `attempt` (1 for the first retry after a failure or a lost
 * connection): `base × (1 + jitter × random())` with
 * `base = min(minDelayMs × factor^(attempt − 1), maxDelayMs / (1 + jitter))`, so every wait
 * lies in `[minDelayMs, maxDelayMs]`, the first ones spread too (no herd after a drain),
 * and waits at the cap still spread over `[maxDelayMs / (1 + jitter), maxDelayMs]`.
 */
export function backoffDelay(attempt: number, b: Backoff, random: () => number = Math.random) {
  const exp = b.minDelayMs * b.factor ** Math.max(0, attempt - 1);
  const base = Math.min(exp, b.maxDelayMs / (1 + b.jitter));
  const delay = base * (1 + b.jitter * random());
  return Math.round(Math.min(b.maxDelayMs, Math.max(b.minDelayMs, delay)));
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  const out: Partial<T> = {};
  for (const [k, v] of Object.entries(o))
    if (v !== undefined) (out as Record<string, unknown>)[k] = v;
  return out;
}
