/**
 * IdempotencyStore — makes a retried send return the first answer without sending again,
 * through the `push-idempotency` bucket (max_age 24 h).
 *
 * The first request claims the key with a `pending` record (KV create: exactly one
 * claimant wins), sends, then stores its response. A duplicate that arrives meanwhile
 * waits for that response; one that arrives later gets it at once. A claim whose owner
 * died is taken over after `pendingTimeoutMs`. A key reused for a different request is a
 * conflict, as is a wait that outlasts `waitTimeoutMs`.
 */
import { createHash } from 'node:crypto';
import type { KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { isCasConflict, openBucket, type ProvisionOptions } from '@switchboard/nats';
import { Buckets } from '@switchboard/protocol';

type Pending = { state: 'pending'; fingerprint: string; at: number };
type Done<R> = { state: 'done'; fingerprint: string; at: number; response: R };
type Stored<R> = Pending | Done<R>;

export type Claim<R> =
  | { kind: 'claimed'; commit(response: R): Promise<void>; release(): Promise<void> }
  | { kind: 'replay'; response: R }
  | { kind: 'mismatch' }
  | { kind: 'in-progress' };

/**
 * The store could not be read or written: a request cannot tell a retry from a first
 * send, so it is refused (503) rather than risk sending twice.
 */
export class IdempotencyUnavailableError extends Error {
  constructor(cause: unknown) {
    super('the idempotency store is unavailable', { cause });
    this.name = 'IdempotencyUnavailableError';
  }
}

/** What the store uses of the `push-idempotency` bucket. */
export type IdempotencyBucket = Pick<KV, 'create' | 'get' | 'update' | 'put' | 'delete'>;

export type IdempotencyStoreOptions = {
  kv: IdempotencyBucket;
  /** After this long a pending claim counts as abandoned (its owner died). */
  pendingTimeoutMs: number;
  pollIntervalMs?: number;
};

export class IdempotencyStore<R> {
  readonly #o: IdempotencyStoreOptions;

  constructor(options: IdempotencyStoreOptions) {
    this.#o = options;
  }

  /** A stable fingerprint of a request, to tell a retry from a reuse of the key. */
  static fingerprint(value: unknown): string {
    return createHash('sha256').update(JSON.stringify(value)).digest('base64url');
  }

  /**
   * Claims `key` for this request, or says what the first request with it answered;
   * rejects with {@link IdempotencyUnavailableError} when the bucket cannot be used.
   */
  async claim(key: string, fingerprint: string, waitTimeoutMs: number): Promise<Claim<R>> {
    try {
      return await this.#claim(key, fingerprint, waitTimeoutMs);
    } catch (err) {
      throw new IdempotencyUnavailableError(err);
    }
  }

  async #claim(key: string, fingerprint: string, waitTimeoutMs: number): Promise<Claim<R>> {
    const { kv } = this.#o;
    const k = createHash('sha256').update(key).digest('base64url');
    const deadline = Date.now() + waitTimeoutMs;
    for (;;) {
      const pending: Pending = { state: 'pending', fingerprint, at: Date.now() };
      try {
        const revision = await kv.create(k, JSON.stringify(pending));
        return this.#claimed(k, fingerprint, revision);
      } catch (err) {
        if (!isCasConflict(err)) throw err;
      }
      const e = await kv.get(k);
      if (e === null || e.operation !== 'PUT') continue;
      const stored = e.json<Stored<R>>();
      if (stored.fingerprint !== fingerprint) return { kind: 'mismatch' };
      if (stored.state === 'done') return { kind: 'replay', response: stored.response };
      if (Date.now() - stored.at > this.#o.pendingTimeoutMs) {
        try {
          const revision = await kv.update(k, JSON.stringify(pending), e.revision);
          return this.#claimed(k, fingerprint, revision);
        } catch (err) {
          if (!isCasConflict(err)) throw err;
          continue;
        }
      }
      if (Date.now() >= deadline) return { kind: 'in-progress' };
      await new Promise((r) => setTimeout(r, this.#o.pollIntervalMs ?? 50));
    }
  }

  #claimed(k: string, fingerprint: string, revision: number): Claim<R> {
    const { kv } = this.#o;
    return {
      kind: 'claimed',
      commit: async (response) => {
        const done: Done<R> = { state: 'done', fingerprint, at: Date.now(), response };
        await kv.put(k, JSON.stringify(done));
      },
      // Lets a retry send after this request failed before sending anything durable.
      release: () => kv.delete(k, { previousSeq: revision }).catch(() => {}),
    };
  }
}

/** How long an idempotency key is remembered. */
export const IDEMPOTENCY_TTL_MS = 24 * 60 * 60 * 1000;
/**
 * How long one read or write of a key may take before it fails (JetStream's default is
 * 5 s). A claim that times out takes two of these (nats.js' `kv.create` reads the key after
 * a failed write that was not a JetStream error), and the stored answer is one more write:
 * with the default, a send in flight when NATS went away answered only after 10 s and more.
 */
export const IDEMPOTENCY_TIMEOUT_MS = 2_000;

/** Opens (creating if missing) `push-idempotency` (max_age {@link IDEMPOTENCY_TTL_MS}). */
export function openIdempotencyBucket(nc: NatsConnection, options: ProvisionOptions): Promise<KV> {
  return openBucket(nc, Buckets.idempotency, {
    replicas: options.replicas,
    ttlMs: IDEMPOTENCY_TTL_MS,
    timeoutMs: IDEMPOTENCY_TIMEOUT_MS,
    description: 'switchboard idempotency keys',
  });
}
