/** The `PUSH_STATUS` stream (24 h): message status records, written and read back. */
import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import {
  type StatusRecord,
  StatusRecord as StatusRecordSchema,
} from '@switchboard/protocol/status';
import { Streams, Subjects, statusSubject } from '@switchboard/protocol/subjects';
import { encodeUserKey } from '@switchboard/protocol/user-key';

/**
 * Records one status event. Fire-and-forget (core publish into the stream): status must
 * never slow down or fail a delivery, and a lost status record loses no message.
 */
export function recordStatus(nc: NatsConnection, record: StatusRecord): boolean {
  const userId = record.kind === 'send' ? undefined : record.userId;
  try {
    nc.publish(statusSubject(record.id, userId), JSON.stringify(record));
    return true;
  } catch {
    // Closed connection or a record over max_payload: the message itself is unaffected.
    return false;
  }
}

/** Records one status event and waits for JetStream to store it (used where order matters). */
export async function recordStatusDurably(nc: NatsConnection, record: StatusRecord): Promise<void> {
  const userId = record.kind === 'send' ? undefined : record.userId;
  await jetstream(nc).publish(statusSubject(record.id, userId), JSON.stringify(record));
}

/** Every status record of a message (optionally one recipient's), in stream order. */
export async function readStatus(
  nc: NatsConnection,
  messageId: string,
  userId?: string,
): Promise<StatusRecord[]> {
  const jsm = await jetstreamManager(nc);
  const filter =
    userId === undefined
      ? `${Subjects.statusPrefix}.${encodeUserKey(messageId)}.>`
      : statusSubject(messageId, userId);
  // An ephemeral pull consumer over just this message's subjects; it knows how many there are.
  const info = await jsm.consumers.add(Streams.status, {
    filter_subject: filter,
    deliver_policy: DeliverPolicy.All,
    ack_policy: AckPolicy.None,
    inactive_threshold: 30_000_000_000,
    mem_storage: true,
  });
  const out: StatusRecord[] = [];
  try {
    const consumer = await jetstream(nc).consumers.get(Streams.status, info.name);
    let pending = info.num_pending;
    while (pending > 0) {
      const batch = await consumer.fetch({ max_messages: Math.min(pending, 256), expires: 2_000 });
      let got = 0;
      for await (const m of batch) {
        got++;
        const parsed = StatusRecordSchema.safeParse(m.json());
        if (parsed.success) out.push(parsed.data);
      }
      if (got === 0) break;
      pending -= got;
    }
  } finally {
    await jsm.consumers.delete(Streams.status, info.name).catch(() => {});
  }
  return out;
}
