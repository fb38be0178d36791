/**
 * One API call: JSON over `fetch`, a timeout per attempt, the error body turned into
 * {@link SwitchboardError}, and retries of what is safe to retry.
 */
import { SwitchboardError, SwitchboardNetworkError } from './errors.js';
import { backoffMs, parseRetryAfter, type RetryOptions, retryAfterDelayMs } from './retry.js';

/**
 * What may be retried for a request:
 * - `idempotent`: reads, PUT/DELETE of a device, and sends carrying an `Idempotency-Key`
 *   (the API answers a repeat with the first response and sends nothing): retried on
 *   network errors, timeouts, 503 and 429.
 * - `unsafe` (a call the API cannot dedupe; none today): retried only when the request
 *   cannot have been processed: 429 (refused before the handler) and a refused connection
 *   or failed DNS lookup (nothing reached the server).
 */
export type RetryPolicy = 'idempotent' | 'unsafe';

export type TransportOptions = {
  apiKey: string;
  timeoutMs: number;
  retries: RetryOptions;
  fetch: typeof fetch;
  /** Waits between retries (tests may replace it; the default is an abortable timer). */
  sleep?: (ms: number, signal: AbortSignal | undefined) => Promise<void>;
};

export type CallRequest = {
  method: 'GET' | 'POST' | 'PUT' | 'DELETE';
  url: string;
  body?: unknown;
  idempotencyKey?: string;
  policy: RetryPolicy;
  /** This call's timeout per attempt (default: the client's `timeoutMs`). */
  timeoutMs?: number;
  signal?: AbortSignal | undefined;
};

/** Connection errors that prove the request never reached the server. */
const NOT_SENT_CODES = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN']);

/** `fetch` failures wrap the socket error as `cause` (undici: sometimes two levels deep). */
function errorCode(err: unknown): string | undefined {
  for (let e = err, depth = 0; e instanceof Error && depth < 4; e = e.cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && code !== '') return code;
  }
  return undefined;
}

const abortableSleep = (ms: number, signal: AbortSignal | undefined): Promise<void> =>
  new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });

type Attempt =
  | { ok: true; status: number; body: unknown }
  | { ok: false; error: SwitchboardError; retryable: boolean }
  | { ok: false; error: SwitchboardNetworkError; retryable: boolean };

export class Transport {
  readonly #o: TransportOptions;
  readonly #sleep: (ms: number, signal: AbortSignal | undefined) => Promise<void>;

  constructor(options: TransportOptions) {
    this.#o = options;
    this.#sleep = options.sleep ?? abortableSleep;
  }

  /** Makes the call, retrying as its policy allows; resolves the parsed JSON body (or null). */
  async call<T>(req: CallRequest): Promise<T> {
    const { retries } = this.#o;
    for (let attempt = 1; ; attempt++) {
      const result = await this.#attempt(req, attempt);
      if (result.ok) return result.body as T;
      const { error } = result;
      if (!result.retryable || attempt > retries.max) throw error;
      const retryAfterMs = error instanceof SwitchboardError ? error.retryAfterMs : undefined;
      // A wait longer than the bound is not waited for: the caller gets the error (with
      // its retryAfterMs) and decides.
      if (retryAfterMs !== undefined && retryAfterMs > retries.maxDelayMs) throw error;
      const backoff = backoffMs(attempt, retries);
      const delay =
        retryAfterMs === undefined
          ? backoff
          : Math.max(backoff, retryAfterDelayMs(retryAfterMs, retries));
      await this.#sleep(delay, req.signal);
    }
  }

  async #attempt(req: CallRequest, attempt: number): Promise<Attempt> {
    req.signal?.throwIfAborted();
    const timeoutMs = req.timeoutMs ?? this.#o.timeoutMs;
    const timeout = AbortSignal.timeout(timeoutMs);
    const signal = req.signal ? AbortSignal.any([req.signal, timeout]) : timeout;
    const headers: Record<string, string> = {
      authorization: `Bearer ${this.#o.apiKey}`,
      accept: 'application/json',
    };
    if (req.body !== undefined) headers['content-type'] = 'application/json';
    if (req.idempotencyKey !== undefined) headers['idempotency-key'] = req.idempotencyKey;
    let status: number;
    let text: string;
    let retryAfter: string | null;
    try {
      const res = await this.#o.fetch(req.url, {
        method: req.method,
        headers,
        ...(req.body === undefined ? {} : { body: JSON.stringify(req.body) }),
        signal,
      });
      status = res.status;
      retryAfter = res.headers.get('retry-after');
      text = await res.text();
    } catch (err) {
      // The caller's own abort is not ours to retry or wrap.
      if (req.signal?.aborted) throw req.signal.reason;
      const timedOut = timeout.aborted;
      const code = errorCode(err);
      const notSent = !timedOut && code !== undefined && NOT_SENT_CODES.has(code);
      return {
        ok: false,
        retryable: req.policy === 'idempotent' || notSent,
        error: new SwitchboardNetworkError({
          kind: timedOut ? 'timeout' : 'network',
          message: timedOut
            ? `${req.method} ${req.url}: no answer within ${timeoutMs} ms`
            : `${req.method} ${req.url}: ${code ?? (err instanceof Error ? err.message : String(err))}`,
          cause: err,
          attempts: attempt,
          idempotencyKey: req.idempotencyKey,
        }),
      };
    }
    if (status >= 200 && status < 300) {
      if (text === '') return { ok: true, status, body: null };
      try {
        return { ok: true, status, body: JSON.parse(text) };
      } catch (err) {
        // A 2xx that is not JSON is not the API's answer (a proxy's page, say): report it
        // as such; never retried, since the request may well have been processed.
        return {
          ok: false,
          retryable: false,
          error: new SwitchboardError({
            status,
            code: 'unknown',
            message: `${req.method} ${req.url}: HTTP ${status} with a body that is not JSON`,
            details: { body: text.slice(0, 500), parseError: String(err) },
            attempts: attempt,
            idempotencyKey: req.idempotencyKey,
          }),
        };
      }
    }
    return {
      ok: false,
      retryable: status === 429 || (status === 503 && req.policy === 'idempotent'),
      error: toApiError(status, text, retryAfter, attempt, req),
    };
  }
}

function toApiError(
  status: number,
  text: string,
  retryAfter: string | null,
  attempts: number,
  req: CallRequest,
): SwitchboardError {
  let code = 'unknown';
  let message = `HTTP ${status}${text ? `: ${text.slice(0, 200)}` : ''}`;
  let details: unknown;
  try {
    const body = JSON.parse(text) as { error?: { code?: unknown; message?: unknown } & object };
    const e = body?.error;
    if (e && typeof e.code === 'string' && typeof e.message === 'string') {
      code = e.code;
      message = e.message;
      details = (e as { details?: unknown }).details;
    }
  } catch {
    // Not the error body: keep the status and the start of the text.
  }
  return new SwitchboardError({
    status,
    code,
    message,
    details,
    retryAfterMs: parseRetryAfter(retryAfter),
    attempts,
    idempotencyKey: req.idempotencyKey,
  });
}
