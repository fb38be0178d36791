/** The one error type routes throw; the error handler turns it into the JSON error body. */
import { type ErrorCode, ErrorCodes } from '@switchboard/protocol';

export class ApiError extends Error {
  readonly statusCode: number;
  readonly code: ErrorCode;
  readonly details: unknown;
  /** Seconds for a `Retry-After` header (429, 503). */
  readonly retryAfterSeconds: number | undefined;

  constructor(
    statusCode: number,
    code: ErrorCode,
    message: string,
    options: { details?: unknown; retryAfterSeconds?: number; cause?: unknown } = {},
  ) {
    super(message, { cause: options.cause });
    this.name = 'ApiError';
    this.statusCode = statusCode;
    this.code = code;
    this.details = options.details;
    this.retryAfterSeconds = options.retryAfterSeconds;
  }

  static notFound(message: string): ApiError {
    return new ApiError(404, ErrorCodes.notFound, message);
  }

  static unauthorized(message = 'missing or invalid API key'): ApiError {
    return new ApiError(401, ErrorCodes.unauthorized, message);
  }

  static unavailable(message: string, cause?: unknown): ApiError {
    return new ApiError(503, ErrorCodes.unavailable, message, { retryAfterSeconds: 1, cause });
  }
}
