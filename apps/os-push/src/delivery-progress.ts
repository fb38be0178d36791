/**
 * DeliveryProgress — what earlier deliveries of one fallback message already settled, so a
 * redelivery sends only to the devices still owed a push. One KV entry per (message, user)
 * in the bucket `os-push-progress`, written only when a delivery ends without finishing
 * the message (nak) and read only on a redelivery: a message settled on its first delivery
 * costs nothing here. Only os-push workers read it, so its name lives here, not in protocol.
 */

import { StorageType } from '@nats-io/jetstream';
import { type KV, Kvm } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { encodeUserKey } from '@switchboard/protocol';
import { z } from 'zod';

export const PROGRESS_BUCKET = 'os-push-progress';
/** As long as `PUSH_FALLBACK` keeps a message (7 days): a record outlives its message. */
export const PROGRESS_MAX_AGE_MS = 7 * 24 * 60 * 60 * 1000;

const DeviceOutcome = z.object({
  platform: z.string(),
  /** `accepted`, `rejected`, `device-removed`: final; `retry`: the last answer of a device still owed. */
  outcome: z.enum(['accepted', 'rejected', 'device-removed', 'retry']),
  detail: z.string(),
  /** A rejection because the notification itself is invalid for the platform (dead-lettered). */
  invalid: z.boolean().optional(),
});
export type DeviceOutcome = z.infer<typeof DeviceOutcome>;

export const Progress = z.object({
  v: z.literal(1),
  devices: z.record(z.string(), DeviceOutcome),
  /** Why the last delivery failed as a whole (an error, not a device's answer). */
  error: z.string().optional(),
});
export type Progress = z.infer<typeof Progress>;

export const emptyProgress = (): Progress => ({ v: 1, devices: {} });

/** Whether the device needs no further send for this message. */
export const isSettled = (o: DeviceOutcome | undefined): boolean =>
  o !== undefined && o.outcome !== 'retry';

export class DeliveryProgress {
  readonly #kv: KV;

  private constructor(kv: KV) {
    this.#kv = kv;
  }

  /** Opens (or creates) the bucket. */
  static async open(nc: NatsConnection, options: { replicas: number }): Promise<DeliveryProgress> {
    const kv = await new Kvm(nc).create(PROGRESS_BUCKET, {
      history: 1,
      replicas: options.replicas,
      storage: StorageType.File,
      ttl: PROGRESS_MAX_AGE_MS,
      description: 'os-push: per-device results of fallback messages being retried',
    });
    return new DeliveryProgress(kv);
  }

  static key(messageId: string, userId: string): string {
    return `${encodeUserKey(messageId)}.${encodeUserKey(userId)}`;
  }

  /** The stored progress, or an empty one; throws when the bucket cannot be read. */
  async read(messageId: string, userId: string): Promise<Progress> {
    const e = await this.#kv.get(DeliveryProgress.key(messageId, userId));
    if (e?.operation !== 'PUT' || e.length === 0) return emptyProgress();
    const parsed = Progress.safeParse(e.json());
    return parsed.success ? parsed.data : emptyProgress();
  }

  /** Stores the progress (one KV put, acked by JetStream); throws on failure. */
  async write(messageId: string, userId: string, progress: Progress): Promise<void> {
    await this.#kv.put(DeliveryProgress.key(messageId, userId), JSON.stringify(progress));
  }

  /** Forgets the progress of a finished message (one KV delete); throws on failure. */
  async remove(messageId: string, userId: string): Promise<void> {
    await this.#kv.delete(DeliveryProgress.key(messageId, userId));
  }
}
