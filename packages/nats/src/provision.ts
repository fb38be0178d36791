/**
 * Creation (or binding) of the buckets and streams of NATS layout v1. Each app opens only
 * what it uses; creating is idempotent, and an existing bucket keeps its configuration.
 */
import {
  DiscardPolicy,
  jetstream,
  jetstreamManager,
  RetentionPolicy,
  StorageType,
  type StreamConfig,
} from '@nats-io/jetstream';
import { type KV, Kvm } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { Buckets, Streams, Subjects } from '@switchboard/protocol/subjects';

export type { KV };

/** Default lease TTL: a crashed node's users are offline within this time. */
export const DEFAULT_LEASE_TTL_MS = 10_000;
/** GC backstop of user entries: a live node refreshes its entries well within it. */
export const DEFAULT_USER_ENTRY_TTL_MS = 24 * 60 * 60 * 1000;
export const IDEMPOTENCY_TTL_MS = 24 * 60 * 60 * 1000;

export type ProvisionOptions = { replicas: number };

export type PresenceBuckets = { nodes: KV; users: KV };

/** How long one presence read or write may take before it fails and is retried. */
export const PRESENCE_WRITE_TIMEOUT_MS = 2_000;

/** Opens `presence-nodes` (max_age = lease TTL) and `presence-users` (long max_age). */
export async function openPresenceBuckets(
  nc: NatsConnection,
  options: ProvisionOptions & { leaseTtlMs?: number; userEntryTtlMs?: number },
): Promise<PresenceBuckets> {
  const leaseTtlMs = options.leaseTtlMs ?? DEFAULT_LEASE_TTL_MS;
  // A write lost with a connection (NATS restarted while it was in flight) is only retried
  // after its timeout: a heartbeat must fail within its interval, a presence write soon
  // enough that a user is routable again within about 2 s of NATS coming back.
  const nodesKvm = new Kvm(jetstream(nc, { timeout: Math.max(250, Math.floor(leaseTtlMs / 3)) }));
  const usersKvm = new Kvm(jetstream(nc, { timeout: PRESENCE_WRITE_TIMEOUT_MS }));
  const [nodes, users] = await Promise.all([
    nodesKvm.create(Buckets.nodes, {
      history: 1,
      ttl: leaseTtlMs,
      replicas: options.replicas,
      // File, not memory: on 2.9 a clustered memory stream can come back from a node
      // restart with its sequence reset, which stalls watchers.
      storage: StorageType.File,
      description: 'switchboard node leases',
    }),
    usersKvm.create(Buckets.users, {
      history: 1,
      ttl: options.userEntryTtlMs ?? DEFAULT_USER_ENTRY_TTL_MS,
      replicas: options.replicas,
      storage: StorageType.File,
      description: 'switchboard user presence entries',
    }),
  ]);
  return { nodes, users };
}

/** Opens `presence-leader` (max_age = the lease TTL): who among presence replicas acts. */
export async function openLeaderBucket(
  nc: NatsConnection,
  options: ProvisionOptions & { ttlMs: number },
): Promise<KV> {
  return new Kvm(nc).create(Buckets.presenceLeader, {
    history: 1,
    ttl: options.ttlMs,
    replicas: options.replicas,
    storage: StorageType.File,
    description: 'switchboard presence leader',
  });
}

/** Opens `push-idempotency` (24 h max_age). */
export async function openIdempotencyBucket(
  nc: NatsConnection,
  options: ProvisionOptions,
): Promise<KV> {
  return new Kvm(nc).create(Buckets.idempotency, {
    history: 1,
    ttl: IDEMPOTENCY_TTL_MS,
    replicas: options.replicas,
    storage: StorageType.File,
    description: 'switchboard idempotency keys',
  });
}

/** Opens `devices`: `<userKey>.<deviceId>` → device record. */
export async function openDevicesBucket(
  nc: NatsConnection,
  options: ProvisionOptions,
): Promise<KV> {
  return new Kvm(nc).create(Buckets.devices, {
    history: 1,
    replicas: options.replicas,
    storage: StorageType.File,
    description: 'switchboard device tokens',
  });
}

const NS_PER_DAY = 24 * 60 * 60 * 1_000_000_000;

/**
 * Creates a stream unless one with that name exists (an existing stream keeps its
 * configuration: changing one is an operator's decision, e.g. `nats stream edit`).
 */
export async function ensureStream(
  nc: NatsConnection,
  config: Partial<StreamConfig> & { name: string },
): Promise<void> {
  const jsm = await jetstreamManager(nc);
  try {
    await jsm.streams.info(config.name);
  } catch (err) {
    if (!(err instanceof Error && /stream not found/i.test(err.message))) throw err;
    await jsm.streams.add(config);
  }
}

/** Creates the durable work-queue stream `PUSH_FALLBACK` (7 days) unless it exists. */
export function ensureFallbackStream(nc: NatsConnection, options: ProvisionOptions): Promise<void> {
  return ensureStream(nc, {
    name: Streams.fallback,
    subjects: [`${Subjects.fallbackPrefix}.>`],
    retention: RetentionPolicy.Workqueue,
    storage: StorageType.File,
    discard: DiscardPolicy.Old,
    num_replicas: options.replicas,
    // Deduplicates a retried publish of the same message id for the same user.
    duplicate_window: 2 * 60 * 1_000_000_000,
    max_age: 7 * NS_PER_DAY,
  });
}

/** Creates `PUSH_FALLBACK_DLQ` (limits, 30 days) unless it exists. */
export function ensureDeadLetterStream(
  nc: NatsConnection,
  options: ProvisionOptions,
): Promise<void> {
  return ensureStream(nc, {
    name: Streams.fallbackDlq,
    subjects: [`${Subjects.dlqPrefix}.>`],
    retention: RetentionPolicy.Limits,
    storage: StorageType.File,
    num_replicas: options.replicas,
    max_age: 30 * NS_PER_DAY,
  });
}

/** The subjects `PUSH_STATUS` must carry: per-message records and batches of send records. */
export const STATUS_STREAM_SUBJECTS = [
  `${Subjects.statusPrefix}.>`,
  `${Subjects.statusBatchPrefix}.>`,
] as const;

/**
 * Creates `PUSH_STATUS` (message status records, 24 h) unless it exists. An existing
 * stream keeps its configuration except its subjects: one made by a version before batches
 * (only `status.v1.message.>`) gets `status.v1.batch.>` added, since batches published
 * without it would not be stored. A subject already covered by a wider one (an operator's
 * `status.v1.>`) is left alone.
 */
export async function ensureStatusStream(
  nc: NatsConnection,
  options: ProvisionOptions,
): Promise<void> {
  await ensureStream(nc, {
    name: Streams.status,
    subjects: [...STATUS_STREAM_SUBJECTS],
    retention: RetentionPolicy.Limits,
    storage: StorageType.File,
    num_replicas: options.replicas,
    max_age: NS_PER_DAY,
  });
  const jsm = await jetstreamManager(nc);
  const have = (await jsm.streams.info(Streams.status)).config.subjects ?? [];
  const missing = STATUS_STREAM_SUBJECTS.filter(
    (want) => !have.some((filter) => subjectCovers(filter, want)),
  );
  if (missing.length > 0) {
    await jsm.streams.update(Streams.status, { subjects: [...have, ...missing] });
  }
}

/** Whether every subject matched by `subject` (itself possibly with wildcards) matches `filter`. */
export function subjectCovers(filter: string, subject: string): boolean {
  const f = filter.split('.');
  const s = subject.split('.');
  for (let i = 0; i < f.length; i++) {
    const ft = f[i];
    if (ft === '>') return i < s.length;
    const st = s[i];
    if (st === undefined || st === '>') return false;
    if (ft !== '*' && (ft !== st || st === '*')) return false;
  }
  return f.length === s.length;
}
