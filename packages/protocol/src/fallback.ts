/** Messages on the `PUSH_FALLBACK` stream, one per recipient. */
import { z } from 'zod';
import { FallbackNotification, UndeliveredReason } from './message.js';

export const FallbackMessage = z.object({
  id: z.string(),
  /** The id of the API key that sent the message (status and idempotency are per key). */
  owner: z.string().optional(),
  userId: z.string(),
  event: z.string(),
  data: z.unknown(),
  sentAt: z.number(),
  reason: UndeliveredReason,
  notification: FallbackNotification,
});
export type FallbackMessage = z.infer<typeof FallbackMessage>;

/** What `PUSH_FALLBACK_DLQ` keeps: the message, why it was given up, and each device's last result. */
export const DeadLetter = z.object({
  message: FallbackMessage,
  reason: z.string(),
  attempts: z.number().int(),
  failedAt: z.number(),
  devices: z.array(z.object({ deviceId: z.string(), platform: z.string(), detail: z.string() })),
});
export type DeadLetter = z.infer<typeof DeadLetter>;
