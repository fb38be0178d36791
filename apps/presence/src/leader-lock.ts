/**
 * LeaderLock — at most one presence replica acts (cleans up dead nodes, emits events).
 * The holder writes one key in a bucket whose max_age is the TTL and renews it every TTL/3
 * by compare-and-set; when it dies the key expires and another replica takes it.
 */
import { randomUUID } from 'node:crypto';
import type { KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { openBucket, type ProvisionOptions } from '@switchboard/nats';
import { Buckets } from '@switchboard/protocol';
import type { Logger } from 'pino';

const KEY = 'monitor';

export type LeaderLockOptions = { kv: KV; ttlMs: number; log: Logger };

export class LeaderLock {
  readonly id = randomUUID();
  readonly #o: LeaderLockOptions;
  #revision = 0;
  #timer: NodeJS.Timeout | undefined;
  #busy = false;

  constructor(options: LeaderLockOptions) {
    this.#o = options;
  }

  /** True while this replica holds the lock (renewed within the TTL). */
  get isLeader(): boolean {
    return this.#revision > 0;
  }

  /** Tries at once, then every TTL/3. */
  async start(): Promise<void> {
    await this.#tick();
    this.#timer = setInterval(() => void this.#tick(), Math.max(50, Math.floor(this.#o.ttlMs / 3)));
    this.#timer.unref();
  }

  /** Stops renewing and releases the lock, so another replica takes over at once. */
  async stop(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer);
    if (this.#revision > 0) {
      const revision = this.#revision;
      this.#revision = 0;
      await this.#o.kv.delete(KEY, { previousSeq: revision }).catch(() => {});
    }
  }

  async #tick(): Promise<void> {
    if (this.#busy) return;
    this.#busy = true;
    const value = JSON.stringify({ id: this.id, at: Date.now() });
    try {
      if (this.#revision > 0) {
        this.#revision = await this.#o.kv.update(KEY, value, this.#revision);
      } else {
        this.#revision = await this.#o.kv.create(KEY, value);
        this.#o.log.info({ id: this.id }, 'presence leader: acquired');
      }
    } catch (err) {
      if (this.#revision > 0) this.#o.log.warn({ err, id: this.id }, 'presence leader: lost');
      this.#revision = 0;
    } finally {
      this.#busy = false;
    }
  }
}

/** Opens (creating if missing) `presence-leader`, whose max_age is the lease TTL. */
export function openLeaderBucket(
  nc: NatsConnection,
  options: ProvisionOptions & { ttlMs: number },
): Promise<KV> {
  return openBucket(nc, Buckets.presenceLeader, {
    replicas: options.replicas,
    ttlMs: options.ttlMs,
    description: 'switchboard presence leader',
  });
}
