/** The fallback queue's streams: `PUSH_FALLBACK` (work queue) and `PUSH_FALLBACK_DLQ`. */
import { DiscardPolicy, RetentionPolicy, StorageType } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import {
  ensureStream,
  NANOS_PER_DAY,
  NANOS_PER_MS,
  type ProvisionOptions,
} from '@switchboard/nats';
import { Streams, Subjects } from '@switchboard/protocol';

/** Creates the durable work-queue stream `PUSH_FALLBACK` (7 days) unless it exists. */
export function ensureFallbackStream(nc: NatsConnection, options: ProvisionOptions): Promise<void> {
  return ensureStream(nc, {
    name: Streams.fallback,
    subjects: [`${Subjects.fallbackPrefix}.>`],
    retention: RetentionPolicy.Workqueue,
    storage: StorageType.File,
    discard: DiscardPolicy.Old,
    num_replicas: options.replicas,
    // Deduplicates a retried publish of the same message id for the same user.
    duplicate_window: 2 * 60 * 1_000 * NANOS_PER_MS,
    max_age: 7 * NANOS_PER_DAY,
  });
}

/** Creates `PUSH_FALLBACK_DLQ` (limits, 30 days) unless it exists. */
export function ensureDeadLetterStream(
  nc: NatsConnection,
  options: ProvisionOptions,
): Promise<void> {
  return ensureStream(nc, {
    name: Streams.fallbackDlq,
    subjects: [`${Subjects.dlqPrefix}.>`],
    retention: RetentionPolicy.Limits,
    storage: StorageType.File,
    num_replicas: options.replicas,
    max_age: 30 * NANOS_PER_DAY,
  });
}
