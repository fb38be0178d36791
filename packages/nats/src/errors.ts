/**
 * Reading NATS' and JetStream's answers by type and API code, never by message text: the
 * client's error classes and JetStream's error codes are its contract, its wording is not.
 */
import { JetStreamApiCodes, JetStreamApiError, JetStreamError } from '@nats-io/jetstream';
import { jserrors } from '@nats-io/jetstream/internal';
import {
  AuthorizationError,
  ClosedConnectionError,
  NoRespondersError,
  errors as natsErrors,
  RequestError,
  TimeoutError,
} from '@nats-io/transport-node';
import { RequestMuxClosedError } from './request-mux.js';

/** True for a JetStream API error answer, with that error code when one is given. */
export function isJetStreamError(err: unknown, code?: number): err is JetStreamApiError {
  return err instanceof JetStreamApiError && (code === undefined || err.code === code);
}

/** True when the stream asked about does not exist. */
export const isStreamNotFound = (err: unknown): boolean =>
  isJetStreamError(err, JetStreamApiCodes.StreamNotFound);

/** True when the consumer asked about does not exist. */
export const isConsumerNotFound = (err: unknown): boolean =>
  isJetStreamError(err, JetStreamApiCodes.ConsumerNotFound);

/** True when the operation failed because this side closed the connection (a stop). */
export const isConnectionClosed = (err: unknown): boolean => err instanceof ClosedConnectionError;

/** True when the server refused the credentials. */
export const isAuthorizationError = (err: unknown): boolean => err instanceof AuthorizationError;

/** True for a "wrong last sequence" answer to a compare-and-set write: someone wrote first. */
export function isCasConflict(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return (
    code === JetStreamApiCodes.StreamWrongLastSequence ||
    code === JetStreamApiCodes.StreamWrongLastSequenceUnknown
  );
}

/** True when a request found nobody serving its subject (the server's 503 status). */
export function isNoResponders(err: unknown): boolean {
  return err instanceof NoRespondersError || (err instanceof RequestError && err.isNoResponders());
}

/**
 * True for what a NATS deployment that is still coming up answers: nobody serving a
 * JetStream API subject yet (a stream whose leader is not elected answers "no responders"
 * or times out), JetStream not (yet) enabled, or a JetStream 503. An app starting meets
 * these on a fresh cluster and waits; anything else (bad config, permissions) is final.
 */
export function isTransientStartupError(err: unknown): boolean {
  if (isNoResponders(err) || err instanceof TimeoutError) return true;
  if (err instanceof RequestError) return true;
  if (err instanceof jserrors.JetStreamNotEnabled) return true;
  if (err instanceof JetStreamApiError)
    return err.status === 503 || err.code === JetStreamApiCodes.JetStreamNotEnabledForAccount;
  const cause = (err as { cause?: unknown } | null)?.cause;
  return cause !== undefined && cause !== err && isTransientStartupError(cause);
}

/**
 * A compare-and-set write that lost to other writers every time it was retried: the key is
 * changed faster than this writer can read and write it.
 */
export class CasRetriesExhaustedError extends Error {
  constructor(
    readonly key: string,
    readonly attempts: number,
  ) {
    super(`${key}: ${attempts} compare-and-set attempts all lost to concurrent writers`);
    this.name = 'CasRetriesExhaustedError';
  }
}

/**
 * True for a failure of NATS or JetStream themselves (not reachable, timed out, nobody
 * serving, refused by the server, the connection closing, a compare-and-set that kept
 * losing): what a caller answers with "unavailable, retry later". Anything else (a bad
 * argument, a bug of ours) is not, and must not be reported as an outage.
 */
export function isNatsUnavailable(err: unknown): boolean {
  if (err instanceof CasRetriesExhaustedError || err instanceof RequestMuxClosedError) return true;
  if (
    err instanceof natsErrors.InvalidArgumentError ||
    err instanceof natsErrors.InvalidSubjectError
  )
    return false;
  if (Object.values(natsErrors).some((type) => err instanceof type)) return true;
  return (
    err instanceof JetStreamError ||
    err instanceof JetStreamApiError ||
    err instanceof jserrors.JetStreamNotEnabled
  );
}
