/** The reading side of presence, as the push API and the presence service open it. */
import type { NatsConnection } from '@nats-io/transport-node';
import { openPresenceBuckets, type PresenceBuckets } from '@switchboard/presence-registry';
import { LeaseTable } from './lease-table.js';
import { PresenceReader } from './presence-reader.js';

type Log = { warn(obj: object, msg: string): void };

export type OpenedReader = { buckets: PresenceBuckets; leases: LeaseTable; reader: PresenceReader };

/** Opens the presence buckets, loads the lease table (watch + snapshot), returns a reader. */
export async function openPresenceReader(
  nc: NatsConnection,
  options: { replicas: number; leaseTtlMs: number; log: Log },
): Promise<OpenedReader> {
  const buckets = await openPresenceBuckets(nc, {
    replicas: options.replicas,
    leaseTtlMs: options.leaseTtlMs,
  });
  const leases = await LeaseTable.create({
    kv: buckets.nodes,
    leaseTtlMs: options.leaseTtlMs,
    log: options.log,
  });
  return { buckets, leases, reader: new PresenceReader({ kv: buckets.users, leases }) };
}
