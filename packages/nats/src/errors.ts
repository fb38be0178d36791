/** Reading JetStream's answers. */
import { JetStreamApiCodes } from '@nats-io/jetstream';

/** True for a "wrong last sequence" answer to a compare-and-set write: someone wrote first. */
export function isCasConflict(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return (
    code === JetStreamApiCodes.StreamWrongLastSequence ||
    code === JetStreamApiCodes.StreamWrongLastSequenceUnknown
  );
}
