/** The `PUSH_STATUS` stream's definition (24 h of message status records). */
import { jetstreamManager, RetentionPolicy, StorageType } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import {
  ensureStream,
  NANOS_PER_DAY,
  type ProvisionOptions,
  subjectCovers,
} from '@switchboard/nats';
import { Streams, Subjects } from '@switchboard/protocol';

/** The subjects `PUSH_STATUS` must carry: per-message records and batches of send records. */
export const STATUS_STREAM_SUBJECTS = [
  `${Subjects.statusPrefix}.>`,
  `${Subjects.statusBatchPrefix}.>`,
] as const;

/**
 * Creates `PUSH_STATUS` (message status records, 24 h) unless it exists. An existing
 * stream keeps its configuration except its subjects: one made by a version before batches
 * (only `status.v1.message.>`) gets `status.v1.batch.>` added, since batches published
 * without it would not be stored. A subject already covered by a wider one (an operator's
 * `status.v1.>`) is left alone.
 */
export async function ensureStatusStream(
  nc: NatsConnection,
  options: ProvisionOptions,
): Promise<void> {
  await ensureStream(nc, {
    name: Streams.status,
    subjects: [...STATUS_STREAM_SUBJECTS],
    retention: RetentionPolicy.Limits,
    storage: StorageType.File,
    num_replicas: options.replicas,
    max_age: NANOS_PER_DAY,
  });
  const jsm = await jetstreamManager(nc);
  const have = (await jsm.streams.info(Streams.status)).config.subjects ?? [];
  const missing = STATUS_STREAM_SUBJECTS.filter(
    (want) => !have.some((filter) => subjectCovers(filter, want)),
  );
  if (missing.length > 0) {
    await jsm.streams.update(Streams.status, { subjects: [...have, ...missing] });
  }
}
