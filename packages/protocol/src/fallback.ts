/** Messages on the `PUSH_FALLBACK` stream, one per recipient. */
import { z } from 'zod';
import { FallbackNotification, UndeliveredReason } from './message.js';

export const FallbackMessage = z.object({
  id: z.string(),
  userId: z.string(),
  event: z.string(),
  data: z.unknown(),
  sentAt: z.number(),
  reason: UndeliveredReason,
  notification: FallbackNotification,
});
export type FallbackMessage = z.infer<typeof FallbackMessage>;
