/**
 * Generic provisioning: a stream or a KV bucket is created unless it exists. Which streams
 * and buckets there are lives with their owners (the presence registry, the device
 * registry, the fallback queue, message status, the push API's idempotency store).
 */
import {
  JetStreamApiCodes,
  jetstream,
  jetstreamManager,
  StorageType,
  type StreamConfig,
} from '@nats-io/jetstream';
import { type KV, Kvm } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { isJetStreamError } from './errors.js';

export type { KV };

/** What every owner's `open…`/`ensure…` takes: the replica count of what it creates. */
export type ProvisionOptions = { replicas: number };

export const NANOS_PER_MS = 1_000_000;
export const NANOS_PER_DAY = 24 * 60 * 60 * 1_000 * NANOS_PER_MS;

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
    if (!isJetStreamError(err, JetStreamApiCodes.StreamNotFound)) throw err;
    await jsm.streams.add(config);
  }
}

export type BucketOptions = ProvisionOptions & {
  description: string;
  /** Entry max age; 0 or absent keeps entries until deleted. */
  ttlMs?: number;
  /** Timeout of every read and write through the returned handle (the client's default 5 s). */
  timeoutMs?: number;
};

/**
 * Opens a KV bucket of one value per key on file storage, creating it if missing (an
 * existing bucket keeps its configuration).
 */
export function openBucket(nc: NatsConnection, name: string, options: BucketOptions): Promise<KV> {
  const kvm = new Kvm(
    options.timeoutMs === undefined ? nc : jetstream(nc, { timeout: options.timeoutMs }),
  );
  return kvm.create(name, {
    history: 1,
    ...(options.ttlMs ? { ttl: options.ttlMs } : {}),
    replicas: options.replicas,
    // File, not memory: on 2.9 a clustered memory stream can come back from a node
    // restart with its sequence reset, which stalls watchers.
    storage: StorageType.File,
    description: options.description,
  });
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
