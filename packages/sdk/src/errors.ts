/** The SDK's two errors: the API answered with an error, or no answer came. */
import type { ErrorCode } from './types.js';

/**
 * The API answered with an error status. `code`, `message` and `details` come from the
 * error body `{ error: { code, message, details? } }`; an answer without that body (a
 * proxy's HTML page, say) gets code `unknown`.
 *
 * 429 and 503 were already retried (when the retry budget allowed) before this was
 * thrown; other 4xx never are.
 */
export class SwitchboardError extends Error {
  override readonly name = 'SwitchboardError';
  /** The HTTP status: 400, 401, 404, 409, 413, 429, 503, … */
  readonly status: number;
  /** The API's error code; `unknown` when the answer had no error body. */
  readonly code: ErrorCode | 'unknown' | (string & {});
  /** For `validation_failed`: `[{ field, message }]`, one per invalid field. */
  readonly details: unknown;
  /**
   * From the `Retry-After` header (429, 503, and the 409 of an idempotency key whose first
   * request is still running): how long the API asks to wait before trying again.
   */
  readonly retryAfterMs: number | undefined;
  /** Requests made for this call, retries included. */
  readonly attempts: number;
  /**
   * The `Idempotency-Key` the SDK sent (send and multicast). Calling again with this key
   * (`{ idempotencyKey }`) within 24 h can never send twice.
   */
  readonly idempotencyKey: string | undefined;

  constructor(init: {
    status: number;
    code: string;
    message: string;
    details?: unknown;
    retryAfterMs?: number | undefined;
    attempts: number;
    idempotencyKey?: string | undefined;
  }) {
    super(init.message);
    this.status = init.status;
    this.code = init.code;
    this.details = init.details;
    this.retryAfterMs = init.retryAfterMs;
    this.attempts = init.attempts;
    this.idempotencyKey = init.idempotencyKey;
  }
}

/**
 * No answer: the connection failed or broke (`kind: 'network'`), or an attempt took longer
 * than `timeoutMs` (`kind: 'timeout'`), on the last attempt the retry budget allowed. The
 * last underlying error is the `cause`.
 *
 * A send or multicast may or may not have been delivered: call again with
 * `{ idempotencyKey: err.idempotencyKey }` to get the first answer without sending twice.
 */
export class SwitchboardNetworkError extends Error {
  override readonly name = 'SwitchboardNetworkError';
  readonly kind: 'network' | 'timeout';
  /** Requests made for this call, retries included. */
  readonly attempts: number;
  /** The `Idempotency-Key` the SDK sent (send and multicast). */
  readonly idempotencyKey: string | undefined;

  constructor(init: {
    kind: 'network' | 'timeout';
    message: string;
    cause: unknown;
    attempts: number;
    idempotencyKey?: string | undefined;
  }) {
    super(init.message, { cause: init.cause });
    this.kind = init.kind;
    this.attempts = init.attempts;
    this.idempotencyKey = init.idempotencyKey;
  }
}
