/** Reading JetStream's answers. */
import { JetStreamApiCodes } from '@nats-io/jetstream';
import { NoRespondersError, RequestError } from '@nats-io/transport-node';

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
