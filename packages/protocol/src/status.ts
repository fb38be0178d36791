/**
 * Message status: what happened to a message, per recipient, as a timeline. Events are
 * stored on the `PUSH_STATUS` stream (24 h) by the push API and the OS push worker.
 */
import { z } from 'zod';
import { RecipientStatus, UndeliveredReason } from './message.js';

/** The push API's record of a send: one event per message with every recipient's outcome. */
export const SendRecord = z.object({
  kind: z.literal('send'),
  id: z.string(),
  /** The id of the API key that sent the message (status and idempotency are per key). */
  owner: z.string().optional(),
  event: z.string(),
  acceptedAt: z.number(),
  finishedAt: z.number(),
  ack: z.boolean(),
  recipients: z.array(
    z.object({
      userId: z.string(),
      status: RecipientStatus,
      reason: UndeliveredReason.optional(),
      connections: z.number().optional(),
      nodes: z.array(z.string()),
    }),
  ),
});
export type SendRecord = z.infer<typeof SendRecord>;

export const STATUS_BATCH_VERSION = 1;

/**
 * Many send records in one stream message on `status.v1.batch.<second>`: the records of
 * the messages whose id (a UUIDv7) carries a time in that second, as flushed together by
 * one push API process (`StatusBatcher`). JSON: `{"v":1,"records":[<SendRecord>,...]}`.
 * A reader keeps the records with its id; a batch with another `v` is skipped.
 */
export const StatusBatch = z.object({
  v: z.literal(STATUS_BATCH_VERSION),
  records: z.array(SendRecord),
});
export type StatusBatch = z.infer<typeof StatusBatch>;

/** The OS push worker's record of one device attempt (or of the message's end). */
export const ProviderRecord = z.object({
  kind: z.literal('provider'),
  id: z.string(),
  /** The id of the API key that sent the message (status and idempotency are per key). */
  owner: z.string().optional(),
  userId: z.string(),
  at: z.number(),
  outcome: z.enum([
    'accepted',
    'rejected',
    'retry',
    'device-removed',
    'no-devices',
    'dead-lettered',
  ]),
  deviceId: z.string().optional(),
  platform: z.string().optional(),
  detail: z.string().optional(),
  attempt: z.number().int().optional(),
});
export type ProviderRecord = z.infer<typeof ProviderRecord>;

export const StatusRecord = z.discriminatedUnion('kind', [SendRecord, ProviderRecord]);
export type StatusRecord = z.infer<typeof StatusRecord>;

export const TimelineEntry = z.object({
  at: z.number(),
  step: z.enum([
    'accepted',
    'routed',
    'delivered',
    'acked',
    'dropped',
    'queued-for-fallback',
    'provider-accepted',
    'provider-rejected',
    'provider-retry',
    'device-removed',
    'no-devices',
    'dead-lettered',
  ]),
  detail: z.string().optional(),
  nodeId: z.string().optional(),
  deviceId: z.string().optional(),
  platform: z.string().optional(),
});
export type TimelineEntry = z.infer<typeof TimelineEntry>;

export const MessageStatus = z
  .object({
    id: z.string(),
    event: z.string(),
    recipients: z.array(
      z.object({ userId: z.string(), status: RecipientStatus, timeline: z.array(TimelineEntry) }),
    ),
  })
  .meta({ id: 'MessageStatus' });
export type MessageStatus = z.infer<typeof MessageStatus>;
