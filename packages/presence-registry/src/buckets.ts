/**
 * The presence registry's two buckets: `presence-nodes` (one lease per node, max_age = the
 * lease TTL) and `presence-users` (one entry per user naming the nodes that hold them).
 */
import type { NatsConnection } from '@nats-io/transport-node';
import { type KV, openBucket, type ProvisionOptions } from '@switchboard/nats';
import { Buckets } from '@switchboard/protocol';

/** Default lease TTL: a crashed node's users are offline within this time. */
export const DEFAULT_LEASE_TTL_MS = 10_000;
/** GC backstop of user entries: a live node refreshes its entries well within it. */
export const DEFAULT_USER_ENTRY_TTL_MS = 24 * 60 * 60 * 1000;
/** How long one presence read or write may take before it fails and is retried. */
export const PRESENCE_WRITE_TIMEOUT_MS = 2_000;

export type PresenceBuckets = { nodes: KV; users: KV };

/** Opens (creating if missing) `presence-nodes` and `presence-users`. */
export async function openPresenceBuckets(
  nc: NatsConnection,
  options: ProvisionOptions & { leaseTtlMs?: number; userEntryTtlMs?: number },
): Promise<PresenceBuckets> {
  const leaseTtlMs = options.leaseTtlMs ?? DEFAULT_LEASE_TTL_MS;
  // A write lost with a connection (NATS restarted while it was in flight) is only retried
  // after its timeout: a heartbeat must fail within its interval, a presence write soon
  // enough that a user is routable again within about 2 s of NATS coming back.
  const [nodes, users] = await Promise.all([
    openBucket(nc, Buckets.nodes, {
      replicas: options.replicas,
      ttlMs: leaseTtlMs,
      timeoutMs: Math.max(250, Math.floor(leaseTtlMs / 3)),
      description: 'switchboard node leases',
    }),
    openBucket(nc, Buckets.users, {
      replicas: options.replicas,
      ttlMs: options.userEntryTtlMs ?? DEFAULT_USER_ENTRY_TTL_MS,
      timeoutMs: PRESENCE_WRITE_TIMEOUT_MS,
      description: 'switchboard user presence entries',
    }),
  ]);
  return { nodes, users };
}
