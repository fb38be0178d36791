/** Presence: node leases and user entries in KV, and the presence API's shapes. */
import { z } from 'zod';
import { UserId } from './message.js';

/** `presence-nodes` value under `<nodeId>`; alive while the bucket's max_age has not run out. */
export const NodeLease = z.object({
  nodeId: z.string(),
  /** Fresh random id per process start: entries of an older epoch are dead. */
  epoch: z.string(),
  startedAt: z.number(),
  heartbeatAt: z.number(),
  url: z.string(),
  connections: z.number().int().nonnegative(),
  draining: z.boolean(),
});
export type NodeLease = z.infer<typeof NodeLease>;

export const NodePresence = z.object({
  epoch: z.string(),
  connections: z.number().int().positive(),
  since: z.number(),
});
export type NodePresence = z.infer<typeof NodePresence>;

/** `presence-users` value under `<userKey>`, updated with compare-and-set. */
export const UserEntry = z.object({
  nodes: z.record(z.string(), NodePresence),
  /** Time of the last disconnect that left the user with no connection. */
  lastSeen: z.number().optional(),
});
export type UserEntry = z.infer<typeof UserEntry>;

export const PresenceNode = z.object({
  nodeId: z.string(),
  connections: z.number().int(),
  since: z.number(),
});

export const PresenceView = z
  .object({
    userId: z.string(),
    online: z.boolean(),
    connections: z.number().int(),
    nodes: z.array(PresenceNode),
    lastSeen: z.number().optional(),
  })
  .meta({ id: 'Presence' });
export type PresenceView = z.infer<typeof PresenceView>;

export const MAX_PRESENCE_QUERY = 1_000;

export const PresenceQueryRequest = z
  .object({ userIds: z.array(UserId).min(1).max(MAX_PRESENCE_QUERY) })
  .strict()
  .meta({ id: 'PresenceQueryRequest', example: { userIds: ['42', 'alice@example.com'] } });
export type PresenceQueryRequest = z.infer<typeof PresenceQueryRequest>;

export const PresenceSummary = z.object({ online: z.boolean(), connections: z.number().int() });

export const PresenceQueryResponse = z
  .object({ users: z.record(z.string(), PresenceSummary) })
  .meta({ id: 'PresenceQueryResponse' });
export type PresenceQueryResponse = z.infer<typeof PresenceQueryResponse>;

export const PresenceEvent = z.object({
  userId: z.string(),
  status: z.enum(['online', 'offline']),
  at: z.number(),
  reason: z.enum(['connect', 'disconnect', 'node-lost', 'drain']),
});
export type PresenceEvent = z.infer<typeof PresenceEvent>;
