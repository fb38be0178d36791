import {
  AckPolicy,
  jetstream,
  jetstreamManager,
  RetentionPolicy,
  StorageType,
} from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { subjectCovers } from '@switchboard/nats';
import type { SendRecord } from '@switchboard/protocol';
import { newMessageId, Streams, Subjects, statusBatchSubject } from '@switchboard/protocol';
import { NatsServer, waitFor } from '@switchboard/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readStatus, recordStatus, StatusBatcher } from '../src/status-stream.js';
import { ensureStatusStream, STATUS_STREAM_SUBJECTS } from '../src/stream.js';

type Warning = { o: object; m: string };
const logTo = (into: Warning[]) => ({ warn: (o: object, m: string) => into.push({ o, m }) });

/** A send record as the router makes one; `i` varies outcome, multicast and ack. */
function sendRecord(id: string, i: number): SendRecord {
  const at = 1_700_000_000_000 + i;
  const recipients: SendRecord['recipients'] = [
    i % 3 === 0
      ? { userId: `u${i}`, status: 'delivered', connections: 1 + (i % 4), nodes: ['edge-a'] }
      : i % 3 === 1
        ? { userId: `u${i}`, status: 'fallback', reason: 'offline', nodes: [] }
        : { userId: `u${i}@x.y`, status: 'dropped', reason: 'ack-timeout', nodes: ['e-b', 'e-c'] },
  ];
  if (i % 10 === 0) {
    recipients.push({ userId: `v${i}`, status: 'delivered', connections: 2, nodes: ['edge-b'] });
  }
  return {
    kind: 'send',
    id,
    event: `dm.new.${i % 7}`,
    acceptedAt: at,
    finishedAt: at + 3,
    ack: i % 2 === 0,
    recipients,
  };
}

/** Runs `fn` over items, `width` at a time. */
async function inParallel<T>(items: T[], width: number, fn: (t: T) => Promise<void>) {
  let next = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < items.length) await fn(items[next++]!);
    }),
  );
}

describe('status batcher', () => {
  let nats: NatsServer;
  let nc: NatsConnection;

  const streamState = async () => {
    const jsm = await jetstreamManager(nc);
    const { state } = await jsm.streams.info(Streams.status);
    return { messages: state.messages, bytes: state.bytes };
  };

  beforeAll(async () => {
    nats = await NatsServer.start();
    nc = await connect({ servers: nats.url });
    await ensureStatusStream(nc, { replicas: 1 });
  });
  afterAll(async () => {
    await nc?.close();
    await nats?.stop();
  });

  it('status batcher - 1,000 sends in a burst are a handful of stream messages, each readable exactly', async () => {
    const warnings: Warning[] = [];
    const batcher = new StatusBatcher({ nc, log: logTo(warnings) });
    const before = await streamState();
    const records = Array.from({ length: 1_000 }, (_, i) => sendRecord(newMessageId(), i));
    for (const r of records) batcher.add(r);
    await waitFor(() => batcher.written === 1_000, {
      message: () => `written ${batcher.written}, failed ${batcher.failed}`,
    });
    const after = await streamState();
    // One message per distinct second of the ids: a burst spans one or two seconds.
    expect(after.messages - before.messages).toBeGreaterThanOrEqual(1);
    expect(after.messages - before.messages).toBeLessThanOrEqual(3);
    expect(batcher.failed).toBe(0);
    expect(warnings).toEqual([]);
    await inParallel(records, 16, async (r) => {
      expect(await readStatus(nc, r.id)).toEqual([r]);
    });
    await batcher.stop();
  });

  it('status batcher - a record is readable within flushIntervalMs (plus a margin), not later', async () => {
    const flushIntervalMs = 100;
    const batcher = new StatusBatcher({ nc, log: logTo([]), flushIntervalMs });
    const record = sendRecord(newMessageId(), 3);
    const t0 = Date.now();
    batcher.add(record);
    await waitFor(async () => (await readStatus(nc, record.id)).length === 1, {
      timeoutMs: flushIntervalMs + 400,
      intervalMs: 10,
    });
    expect(Date.now() - t0).toBeLessThan(flushIntervalMs + 400);
    expect(await readStatus(nc, record.id)).toEqual([record]);
    await batcher.stop();
  });

  it('status batcher - stop() writes what is queued before it resolves', async () => {
    const batcher = new StatusBatcher({ nc, log: logTo([]), flushIntervalMs: 60_000 });
    const records = Array.from({ length: 10 }, (_, i) => sendRecord(newMessageId(), i));
    for (const r of records) batcher.add(r);
    expect(batcher.written).toBe(0);
    await batcher.stop();
    expect(batcher.written).toBe(10);
    for (const r of records) expect(await readStatus(nc, r.id)).toEqual([r]);
    // After stop, a late record is still written (per id, at once).
    const late = sendRecord(newMessageId(), 11);
    batcher.add(late);
    expect(batcher.written).toBe(11);
    await waitFor(async () => (await readStatus(nc, late.id)).length === 1);
  });

  it('status batcher - a client-supplied id (no time) is written per id and reads back the same', async () => {
    const batcher = new StatusBatcher({ nc, log: logTo([]) });
    const before = await streamState();
    const plain = sendRecord('order-42', 1);
    const dotted = sendRecord('tenant.7:order-43', 2);
    // A UUIDv7 made an hour ago by a client is outside the batching window: per id too.
    const oldV7 = sendRecord(newMessageId(Date.now() - 3_600_000), 4);
    for (const r of [plain, dotted, oldV7]) batcher.add(r);
    // Written at add(), not at the flush.
    expect(batcher.written).toBe(3);
    await nc.flush();
    expect((await streamState()).messages - before.messages).toBe(3);
    expect(await readStatus(nc, plain.id)).toEqual([plain]);
    expect(await readStatus(nc, dotted.id)).toEqual([dotted]);
    expect(await readStatus(nc, oldV7.id)).toEqual([oldV7]);
    await batcher.stop();
  });

  it('status batcher - batches stay under maxBatchBytes; a record larger than that is split by recipients', async () => {
    const maxBatchBytes = 4_096;
    const batcher = new StatusBatcher({
      nc,
      log: logTo([]),
      maxBatchBytes,
      flushIntervalMs: 60_000,
    });
    const now = Date.now();
    // All in one second, so only the size splits them.
    const second = Math.floor(now / 1000);
    const records = Array.from({ length: 100 }, (_, i) =>
      sendRecord(newMessageId(second * 1000 + (i % 1000)), i),
    );
    const big: SendRecord = {
      ...sendRecord(newMessageId(second * 1000), 0),
      recipients: Array.from({ length: 500 }, (_, i) => ({
        userId: `user-${i}`,
        status: 'delivered' as const,
        connections: 1,
        nodes: ['edge-a'],
      })),
    };
    for (const r of records) batcher.add(r);
    batcher.add(big);
    await batcher.stop();
    expect(batcher.written).toBe(101);
    // Every stored batch of that second is within the bound.
    const stored = await batchSizes(statusBatchSubject(second));
    expect(stored.length).toBeGreaterThan(1);
    for (const size of stored) expect(size).toBeLessThanOrEqual(maxBatchBytes);
    for (const r of records) expect(await readStatus(nc, r.id)).toEqual([r]);
    const parts = await readStatus(nc, big.id);
    expect(parts.length).toBeGreaterThan(1);
    expect(parts.flatMap((p) => (p.kind === 'send' ? p.recipients : []))).toEqual(big.recipients);
    for (const p of parts) expect({ ...p, recipients: [] }).toEqual({ ...big, recipients: [] });
  });

  it('status batcher - past maxQueuedRecipients a record is dropped and counted, with one warning', async () => {
    const warnings: Warning[] = [];
    const batcher = new StatusBatcher({
      nc,
      log: logTo(warnings),
      flushIntervalMs: 60_000,
      maxQueuedRecipients: 5,
    });
    // Records with i % 10 !== 0 have one recipient each.
    for (let i = 1; i <= 10; i++) batcher.add(sendRecord(newMessageId(), i));
    expect(batcher.failed).toBe(5);
    expect(warnings).toHaveLength(1);
    await batcher.stop();
    expect(batcher.written).toBe(5);
  });

  /** Sizes in bytes of the stored messages on one subject. */
  async function batchSizes(subject: string): Promise<number[]> {
    const jsm = await jetstreamManager(nc);
    const info = await jsm.consumers.add(Streams.status, {
      filter_subject: subject,
      ack_policy: AckPolicy.None,
      mem_storage: true,
    });
    const consumer = await jetstream(nc).consumers.get(Streams.status, info.name);
    const sizes: number[] = [];
    const batch = await consumer.fetch({ max_messages: info.num_pending, expires: 2_000 });
    for await (const m of batch) sizes.push(m.data.length);
    await jsm.consumers.delete(Streams.status, info.name);
    return sizes;
  }
});

describe('status stream upgrade', () => {
  let nats: NatsServer;
  let nc: NatsConnection;

  beforeAll(async () => {
    nats = await NatsServer.start();
    nc = await connect({ servers: nats.url });
  });
  afterAll(async () => {
    await nc?.close();
    await nats?.stop();
  });

  const createOldStream = async (subjects: string[]) => {
    const jsm = await jetstreamManager(nc);
    await jsm.streams.delete(Streams.status).catch(() => {});
    await jsm.streams.add({
      name: Streams.status,
      subjects,
      retention: RetentionPolicy.Limits,
      storage: StorageType.File,
      num_replicas: 1,
      max_age: 24 * 60 * 60 * 1_000_000_000,
    });
  };

  it('status stream - a stream from before batches gets status.v1.batch.> on start, keeping its records', async () => {
    await createOldStream([`${Subjects.statusPrefix}.>`]);
    const old = sendRecord('before-upgrade', 1);
    expect(recordStatus(nc, old)).toBe(true);
    await nc.flush();

    // A batch published before the upgrade is not stored, and that is counted and logged.
    const warnings: Warning[] = [];
    const early = new StatusBatcher({ nc, log: logTo(warnings), flushIntervalMs: 60_000 });
    early.add(sendRecord(newMessageId(), 2));
    await early.stop();
    expect(early.failed).toBe(1);
    expect(warnings.map((w) => w.m)).toEqual([
      'status batch not stored: those messages have no send status',
    ]);

    await ensureStatusStream(nc, { replicas: 1 });
    const jsm = await jetstreamManager(nc);
    const info = await jsm.streams.info(Streams.status);
    expect(info.config.subjects).toEqual([...STATUS_STREAM_SUBJECTS]);
    expect(info.config.max_age).toBe(24 * 60 * 60 * 1_000_000_000);
    expect(await readStatus(nc, old.id)).toEqual([old]);

    const batcher = new StatusBatcher({ nc, log: logTo([]), flushIntervalMs: 60_000 });
    const fresh = sendRecord(newMessageId(), 3);
    batcher.add(fresh);
    await batcher.stop();
    expect(batcher.written).toBe(1);
    expect(await readStatus(nc, fresh.id)).toEqual([fresh]);

    // Idempotent: a second start changes nothing.
    await ensureStatusStream(nc, { replicas: 1 });
    expect((await jsm.streams.info(Streams.status)).config.subjects).toEqual([
      ...STATUS_STREAM_SUBJECTS,
    ]);
  });

  it('status stream - subjects an operator widened (status.v1.>) are left as they are', async () => {
    await createOldStream(['status.v1.>']);
    await ensureStatusStream(nc, { replicas: 1 });
    const jsm = await jetstreamManager(nc);
    expect((await jsm.streams.info(Streams.status)).config.subjects).toEqual(['status.v1.>']);
    const batcher = new StatusBatcher({ nc, log: logTo([]), flushIntervalMs: 60_000 });
    const r = sendRecord(newMessageId(), 5);
    batcher.add(r);
    await batcher.stop();
    expect(await readStatus(nc, r.id)).toEqual([r]);
  });

  it.each([
    ['status.v1.>', 'status.v1.batch.>', true],
    ['>', 'status.v1.batch.>', true],
    ['status.v1.batch.>', 'status.v1.batch.>', true],
    ['status.*.batch.>', 'status.v1.batch.>', true],
    ['status.v1.message.>', 'status.v1.batch.>', false],
    ['status.v1.batch.*', 'status.v1.batch.>', false],
    ['status.v1.batch.*', 'status.v1.batch.17', true],
    ['status.v1.batch', 'status.v1.batch.>', false],
  ])('status stream - subjectCovers(%j, %j) is %j', (filter, subject, covers) => {
    expect(subjectCovers(filter, subject)).toBe(covers);
  });
});
