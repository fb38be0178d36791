export type WaitForOptions = {
  timeoutMs?: number;
  intervalMs?: number;
  message?: string | (() => string);
};

export class WaitForTimeoutError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'WaitForTimeoutError';
  }
}

/**
 * Polls `check` until it returns a truthy value (which is returned) or the timeout runs
 * out; a check that throws counts as "not yet" and its last error becomes the cause.
 */
export async function waitFor<T>(
  check: () => T | Promise<T>,
  options: WaitForOptions = {},
): Promise<NonNullable<T>> {
  const timeoutMs = options.timeoutMs ?? 5_000;
  const intervalMs = options.intervalMs ?? 25;
  const deadline = Date.now() + timeoutMs;
  let lastErr: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v) return v as NonNullable<T>;
    } catch (err) {
      lastErr = err;
    }
    if (Date.now() >= deadline) {
      const m = typeof options.message === 'function' ? options.message() : options.message;
      throw new WaitForTimeoutError(`${m ?? 'condition not met'} within ${timeoutMs} ms`, {
        cause: lastErr,
      });
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
