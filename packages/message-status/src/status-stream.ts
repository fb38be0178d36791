/**
 * The `PUSH_STATUS` stream (24 h): message status records, written and read back.
 *
 * Send records of messages whose id is a UUIDv7 (every id the push API makes) are written
 * in batches by `StatusBatcher`, one stream message per flush and second on
 * `status.v1.batch.<second of the id's time>`. Every other record lives on the message's
 * own subjects, `status.v1.message.<idKey>.send` and `...user.<userKey>`.
 */
import {
  AckPolicy,
  DeliverPolicy,
  type JetStreamClient,
  type JetStreamManager,
  jetstream,
  jetstreamManager,
} from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import {
  encodeUserKey,
  messageIdTime,
  type SendRecord,
  SendRecord as SendRecordSchema,
  STATUS_BATCH_VERSION,
  type StatusRecord,
  StatusRecord as StatusRecordSchema,
  Streams,
  Subjects,
  statusBatchSubject,
  statusSubject,
} from '@switchboard/protocol';

/** The push API's record of a send (the `send` variant of `StatusRecord`). */
export type SendStatusRecord = SendRecord;

/**
 * Records one status event. Fire-and-forget (core publish into the stream): status must
 * never slow down or fail a delivery, and a lost status record loses no message.
 */
export function recordStatus(nc: Pick<NatsConnection, 'publish'>, record: StatusRecord): boolean {
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

/** How often queued records are written, unless the options say otherwise. */
export const DEFAULT_STATUS_FLUSH_INTERVAL_MS = 100;
/** Largest batch message, unless the options or the server's max_payload say less. */
export const DEFAULT_STATUS_BATCH_BYTES = 256 * 1024;
/** Recipients (summed over queued records) held at most; past it records are dropped. */
export const DEFAULT_STATUS_MAX_QUEUED_RECIPIENTS = 200_000;
/**
 * A record is batched only when its id's time lies in [now - this, now + ahead]: a send
 * takes at most ackTimeoutMs (60 s) plus its hand-offs. Outside it (a client-chosen UUIDv7
 * from another time) the record is written per id, so a second's batches, which a reader
 * reads whole, hold only about a minute of sends.
 */
export const STATUS_BATCH_MAX_ID_AGE_MS = 5 * 60_000;
export const STATUS_BATCH_MAX_ID_AHEAD_MS = 5_000;
/** How long a batch waits for JetStream's ack before it counts as failed. */
export const STATUS_BATCH_PUBLISH_TIMEOUT_MS = 5_000;
/** Room kept under max_payload for headers and the batch envelope. */
const PAYLOAD_HEADROOM_BYTES = 4096;
/** At most one "dropped" warning per this interval: the log must not become the overload. */
const DROP_WARN_INTERVAL_MS = 10_000;

export type StatusBatcherOptions = {
  nc: NatsConnection;
  log: { warn(o: object, m: string): void };
  /** Default `DEFAULT_STATUS_FLUSH_INTERVAL_MS` (100). */
  flushIntervalMs?: number;
  /** Default min(`DEFAULT_STATUS_BATCH_BYTES` (256 KiB), max_payload - 4 KiB). */
  maxBatchBytes?: number;
  /** Default `DEFAULT_STATUS_MAX_QUEUED_RECIPIENTS` (200,000). */
  maxQueuedRecipients?: number;
};

const BATCH_HEAD = `{"v":${STATUS_BATCH_VERSION},"records":[`;
const BATCH_TAIL = ']}';

/**
 * Writes send records in batches: one `PUSH_STATUS` message per flush and second instead
 * of one per send. Records of messages whose id has no time (client-supplied, not UUIDv7)
 * cost one core publish each, as `recordStatus`.
 *
 * Batches are JetStream publishes whose acks are awaited off the send path (in the flush):
 * one ack per batch is nothing next to the sends it carries, and it makes a batch that was
 * not stored (stream missing the batch subject, no quorum, timeout) a counted, logged
 * failure instead of a silent loss. A failed batch is not retried: status is best effort
 * and a lost record loses no message.
 */
export class StatusBatcher {
  readonly #nc: NatsConnection;
  readonly #js: JetStreamClient;
  readonly #log: StatusBatcherOptions['log'];
  readonly #flushIntervalMs: number;
  readonly #maxBatchBytes: number | undefined;
  readonly #maxQueuedRecipients: number;
  #queue = new Map<number, SendRecord[]>();
  #queuedRecipients = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;
  readonly #inFlight = new Set<Promise<void>>();
  #written = 0;
  #failed = 0;
  #stopped = false;
  #lastDropWarnAt = 0;

  constructor(o: StatusBatcherOptions) {
    this.#nc = o.nc;
    this.#js = jetstream(o.nc);
    this.#log = o.log;
    this.#flushIntervalMs = o.flushIntervalMs ?? DEFAULT_STATUS_FLUSH_INTERVAL_MS;
    this.#maxBatchBytes = o.maxBatchBytes;
    this.#maxQueuedRecipients = o.maxQueuedRecipients ?? DEFAULT_STATUS_MAX_QUEUED_RECIPIENTS;
  }

  /** Records stored (batches acked by JetStream, per-id records published). */
  get written(): number {
    return this.#written;
  }

  /** Records lost: dropped past the queue bound, or in a batch JetStream did not ack. */
  get failed(): number {
    return this.#failed;
  }

  /**
   * Queues one send record; never throws, never blocks; written within flushIntervalMs
   * (plus JetStream's ack). After `stop()`, records are written per id at once.
   */
  add(record: SendStatusRecord): void {
    try {
      const t = messageIdTime(record.id);
      const now = Date.now();
      if (
        this.#stopped ||
        t === null ||
        t < now - STATUS_BATCH_MAX_ID_AGE_MS ||
        t > now + STATUS_BATCH_MAX_ID_AHEAD_MS
      ) {
        if (recordStatus(this.#nc, record)) this.#written++;
        else this.#failed++;
        return;
      }
      const recipients = Math.max(1, record.recipients.length);
      if (this.#queuedRecipients + recipients > this.#maxQueuedRecipients) {
        this.#failed++;
        if (now - this.#lastDropWarnAt >= DROP_WARN_INTERVAL_MS) {
          this.#lastDropWarnAt = now;
          this.#log.warn(
            { queuedRecipients: this.#queuedRecipients, failed: this.#failed },
            'status batcher full: send records dropped (NATS slow or down)',
          );
        }
        return;
      }
      const second = Math.floor(t / 1000);
      const list = this.#queue.get(second);
      if (list) list.push(record);
      else this.#queue.set(second, [record]);
      this.#queuedRecipients += recipients;
      if (this.#timer === undefined) {
        this.#timer = setTimeout(() => {
          this.#timer = undefined;
          void this.flush();
        }, this.#flushIntervalMs);
        // The owner calls stop() to flush on close; a pending flush need not keep node up.
        this.#timer.unref?.();
      }
    } catch (err) {
      this.#failed++;
      this.#log.warn({ err, id: record?.id }, 'status record not queued');
    }
  }

  /**
   * Writes what is queued now, one stream message per second of the queued ids (split past
   * maxBatchBytes), and resolves when those and earlier batches are acked or failed.
   * Never rejects.
   */
  async flush(): Promise<void> {
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
    const queue = this.#queue;
    this.#queue = new Map();
    this.#queuedRecipients = 0;
    const maxBytes = this.#batchBytes();
    for (const [second, records] of queue) {
      let batches: EncodedBatch[];
      try {
        batches = encodeBatches(records, maxBytes);
      } catch (err) {
        this.#failed += records.length;
        this.#log.warn({ err, second, records: records.length }, 'status records not encodable');
        continue;
      }
      for (const batch of batches) {
        this.#publish(statusBatchSubject(second), batch.payload, batch.records);
      }
    }
    await Promise.all([...this.#inFlight]);
  }

  /** Flushes and stops the timer; records added later are written per id at once. */
  async stop(): Promise<void> {
    this.#stopped = true;
    await this.flush();
  }

  #batchBytes(): number {
    if (this.#maxBatchBytes !== undefined) return this.#maxBatchBytes;
    const maxPayload = this.#nc.info?.max_payload ?? 1024 * 1024;
    return Math.min(DEFAULT_STATUS_BATCH_BYTES, maxPayload - PAYLOAD_HEADROOM_BYTES);
  }

  #publish(subject: string, payload: string, records: number): void {
    const done = this.#js
      .publish(subject, payload, { timeout: STATUS_BATCH_PUBLISH_TIMEOUT_MS })
      .then(
        () => {
          this.#written += records;
        },
        (err: unknown) => {
          this.#failed += records;
          this.#log.warn(
            { err, subject, records, bytes: payload.length },
            'status batch not stored: those messages have no send status',
          );
        },
      )
      .finally(() => this.#inFlight.delete(done));
    this.#inFlight.add(done);
  }
}

type EncodedBatch = { payload: string; records: number };

/**
 * Packs records into `{"v":1,"records":[...]}` strings of at most maxBytes (UTF-8). A
 * record that alone exceeds the bound is split by recipients into several send records
 * of the same id, which `buildStatus` merges (as it does for a large multicast).
 */
function encodeBatches(records: SendRecord[], maxBytes: number): EncodedBatch[] {
  const room = maxBytes - BATCH_HEAD.length - BATCH_TAIL.length;
  const out: EncodedBatch[] = [];
  let parts: string[] = [];
  let bytes = 0;
  let count = 0;
  const close = () => {
    if (parts.length === 0) return;
    out.push({ payload: BATCH_HEAD + parts.join(',') + BATCH_TAIL, records: count });
    parts = [];
    bytes = 0;
    count = 0;
  };
  for (const record of records) {
    const pieces = fitRecord(record, room);
    for (const piece of pieces) {
      const size = Buffer.byteLength(piece);
      if (parts.length > 0 && bytes + 1 + size > room) close();
      bytes += (parts.length > 0 ? 1 : 0) + size; // the comma
      parts.push(piece);
    }
    // A split record counts once: `written` and `failed` count what `add` was given.
    count++;
  }
  close();
  return out;
}

/** The record's JSON, or several JSONs of recipient slices when it exceeds room bytes. */
function fitRecord(record: SendRecord, room: number): string[] {
  const json = JSON.stringify(record);
  const size = Buffer.byteLength(json);
  if (size <= room || record.recipients.length <= 1) return [json];
  const slices = Math.ceil(size / room) + 1;
  const per = Math.ceil(record.recipients.length / slices);
  const out: string[] = [];
  for (let i = 0; i < record.recipients.length; i += per) {
    out.push(...fitRecord({ ...record, recipients: record.recipients.slice(i, i + per) }, room));
  }
  return out;
}

type StoredMessage = { seq: number; data: unknown };

/** Every message on one subject of `PUSH_STATUS`, in stream order (ephemeral consumer). */
async function readSubject(
  jsm: JetStreamManager,
  js: JetStreamClient,
  filter: string,
): Promise<StoredMessage[]> {
  const info = await jsm.consumers.add(Streams.status, {
    filter_subject: filter,
    deliver_policy: DeliverPolicy.All,
    ack_policy: AckPolicy.None,
    inactive_threshold: 30_000_000_000,
    mem_storage: true,
  });
  const out: StoredMessage[] = [];
  try {
    const consumer = await js.consumers.get(Streams.status, info.name);
    let pending = info.num_pending;
    while (pending > 0) {
      const batch = await consumer.fetch({ max_messages: Math.min(pending, 256), expires: 2_000 });
      let got = 0;
      for await (const m of batch) {
        got++;
        let data: unknown;
        try {
          data = m.json();
        } catch {
          continue; // not JSON: not ours to read
        }
        out.push({ seq: m.seq, data });
      }
      if (got === 0) break;
      pending -= got;
    }
  } finally {
    await jsm.consumers.delete(Streams.status, info.name).catch(() => {});
  }
  return out;
}

/** The send records with this id in one stored batch (other ids are not validated). */
function recordsInBatch(data: unknown, messageId: string): SendRecord[] {
  if (typeof data !== 'object' || data === null) return [];
  const batch = data as { v?: unknown; records?: unknown };
  if (batch.v !== STATUS_BATCH_VERSION || !Array.isArray(batch.records)) return [];
  const out: SendRecord[] = [];
  for (const r of batch.records as unknown[]) {
    if (typeof r !== 'object' || r === null || (r as { id?: unknown }).id !== messageId) continue;
    const parsed = SendRecordSchema.safeParse(r);
    if (parsed.success) out.push(parsed.data);
  }
  return out;
}

/**
 * Every status record of a message (optionally only one recipient's provider records), in
 * stream order. For a UUIDv7 id this also reads the id's second of batches and keeps the
 * records with that id: the cost of a read grows with the sends of that second.
 */
export async function readStatus(
  nc: NatsConnection,
  messageId: string,
  userId?: string,
): Promise<StatusRecord[]> {
  const jsm = await jetstreamManager(nc);
  const js = jetstream(nc);
  const filter =
    userId === undefined
      ? `${Subjects.statusPrefix}.${encodeUserKey(messageId)}.>`
      : statusSubject(messageId, userId);
  // Send records are batched only per message, never per recipient: a recipient's read
  // (os-push) wants its provider records alone, as it always had.
  const t = userId === undefined ? messageIdTime(messageId) : null;
  const [own, batches] = await Promise.all([
    readSubject(jsm, js, filter),
    t === null
      ? Promise.resolve([])
      : readSubject(jsm, js, statusBatchSubject(Math.floor(t / 1000))),
  ]);
  const found: { seq: number; record: StatusRecord }[] = [];
  for (const m of own) {
    const parsed = StatusRecordSchema.safeParse(m.data);
    if (parsed.success) found.push({ seq: m.seq, record: parsed.data });
  }
  for (const m of batches) {
    for (const record of recordsInBatch(m.data, messageId)) found.push({ seq: m.seq, record });
  }
  // Stable: records of one batch keep their order.
  found.sort((a, b) => a.seq - b.seq);
  return found.map((f) => f.record);
}
