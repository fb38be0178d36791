/** Reading JetStream's answers. */
import { JetStreamApiCodes, JetStreamApiError } from '@nats-io/jetstream';
import { NoRespondersError, RequestError, TimeoutError } from '@nats-io/transport-node';

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
  // Not exported by @nats-io/jetstream's public module: known by its class name.
  if ((err as Error | null)?.name === 'JetStreamNotEnabled') return true;
  if (err instanceof JetStreamApiError)
    return err.status === 503 || err.code === JetStreamApiCodes.JetStreamNotEnabledForAccount;
  const cause = (err as { cause?: unknown } | null)?.cause;
  return cause !== undefined && cause !== err && isTransientStartupError(cause);
}
