/** What the push API and the edge nodes exchange on `push.v1.node.<nodeId>`. */
import { z } from 'zod';

/** One message for the listed users on one node; ack is asked when `ackTimeoutMs` is set. */
export const DeliveryEnvelope = z.object({
  id: z.string(),
  event: z.string(),
  data: z.unknown(),
  sentAt: z.number(),
  userIds: z.array(z.string()).min(1),
  ackTimeoutMs: z.number().int().positive().optional(),
});
export type DeliveryEnvelope = z.infer<typeof DeliveryEnvelope>;

/** Per user: connections the message was emitted to, and how many acked (ack asked). */
export const UserDelivery = z.object({
  connections: z.number().int().nonnegative(),
  acked: z.number().int().nonnegative().optional(),
});
export type UserDelivery = z.infer<typeof UserDelivery>;

export const NodeReply = z.object({
  nodeId: z.string(),
  epoch: z.string(),
  results: z.record(z.string(), UserDelivery),
});
export type NodeReply = z.infer<typeof NodeReply>;

/** A message for every connected user, on `push.v1.broadcast`. */
export const BroadcastEnvelope = z.object({
  id: z.string(),
  event: z.string(),
  data: z.unknown(),
  sentAt: z.number(),
});
export type BroadcastEnvelope = z.infer<typeof BroadcastEnvelope>;
