/**
 * UserRegistrar — one edge node's writes of its users into `presence-users`.
 *
 * The edge says how many connections a user has on this node (`set`) and moves on: the
 * handshake never waits for NATS. Writes are compare-and-set on the entry's revision,
 * retried on conflict, at most one in flight per user and `maxInFlight` overall; calls
 * that arrive while a user's write is queued or in flight coalesce into the next write, so
 * a connection storm costs at most one write per user per round trip.
 */
import type { KV } from '@nats-io/kv';
import type { UserEntry } from '@switchboard/protocol/presence';
import { encodeUserKey } from '@switchboard/protocol/user-key';
import { decodeJson, encodeJson, isCasConflict } from './codec.js';

type Log = { warn(obj: object, msg: string): void; error(obj: object, msg: string): void };

export type UserRegistrarOptions = {
  /** The `presence-users` bucket. */
  kv: KV;
  nodeId: string;
  epoch: string;
  log: Log;
  /** Concurrent KV writes (default 128). */
  maxInFlight?: number;
  /** Attempts per write on CAS conflicts or errors before giving up (default 8). */
  maxAttempts?: number;
};

type Known = { revision: number; entry: UserEntry | null };

export class UserRegistrar {
  readonly #o: Required<Omit<UserRegistrarOptions, 'log' | 'kv'>> &
    Pick<UserRegistrarOptions, 'log' | 'kv'>;
  /** Desired connection count of each user on this node that is not yet written. */
  readonly #desired = new Map<string, number>();
  /** Last revision this node wrote or read per connected user: saves a read per write. */
  readonly #known = new Map<string, Known>();
  readonly #queue = new Set<string>();
  readonly #inFlight = new Set<string>();
  #idleWaiters: Array<() => void> = [];
  #failed = 0;

  constructor(options: UserRegistrarOptions) {
    this.#o = { maxInFlight: 128, maxAttempts: 8, ...options };
  }

  /** Records that `userId` has `connections` sockets on this node; written asynchronously. */
  set(userId: string, connections: number): void {
    this.#desired.set(userId, connections);
    if (!this.#inFlight.has(userId)) this.#queue.add(userId);
    this.#pump();
  }

  /** Users waiting for or in a write. */
  get pending(): number {
    return this.#queue.size + this.#inFlight.size;
  }

  /** Writes that exhausted their attempts since start. */
  get failedWrites(): number {
    return this.#failed;
  }

  /** Resolves when every recorded change is written (or failed and logged). */
  flush(): Promise<void> {
    if (this.pending === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }

  #pump(): void {
    while (this.#inFlight.size < this.#o.maxInFlight && this.#queue.size > 0) {
      const userId = this.#queue.values().next().value as string;
      this.#queue.delete(userId);
      this.#inFlight.add(userId);
      void this.#write(userId).finally(() => {
        this.#inFlight.delete(userId);
        // A change that arrived during the write is queued again by this check.
        if (this.#desired.has(userId)) this.#queue.add(userId);
        this.#pump();
        if (this.pending === 0) {
          const waiters = this.#idleWaiters;
          this.#idleWaiters = [];
          for (const w of waiters) w();
        }
      });
    }
  }

  async #write(userId: string): Promise<void> {
    const key = encodeUserKey(userId);
    const { kv, nodeId, epoch } = this.#o;
    let lastErr: unknown;
    for (let attempt = 0; attempt < this.#o.maxAttempts; attempt++) {
      const desired = this.#desired.get(userId);
      if (desired === undefined) return;
      try {
        const known = this.#known.get(userId) ?? (await this.#read(kv, key));
        const next = applyNode(known.entry, nodeId, epoch, desired, Date.now());
        if (next !== null) {
          const revision = await kv.put(key, encodeJson(next), { previousSeq: known.revision });
          if (desired > 0) this.#known.set(userId, { revision, entry: next });
        }
        if (desired === 0) this.#known.delete(userId);
        // Only forget the wish if no newer one arrived while writing.
        if (this.#desired.get(userId) === desired) this.#desired.delete(userId);
        return;
      } catch (err) {
        lastErr = err;
        this.#known.delete(userId);
        if (!isCasConflict(err)) await sleep(Math.min(1000, 25 * 2 ** attempt));
      }
    }
    this.#failed++;
    this.#desired.delete(userId);
    this.#o.log.error({ err: lastErr, userId }, 'presence write failed: entry may be stale');
  }

  async #read(kv: KV, key: string): Promise<Known> {
    const e = await kv.get(key);
    if (e === null) return { revision: 0, entry: null };
    if (e.operation !== 'PUT') return { revision: e.revision, entry: null };
    return { revision: e.revision, entry: decodeJson<UserEntry>(e.value) };
  }
}

/**
 * The entry after setting this node's count, or null when nothing changes. A node of an
 * older epoch under the same id is replaced; an entry left with no node keeps `lastSeen`.
 */
export function applyNode(
  entry: UserEntry | null,
  nodeId: string,
  epoch: string,
  connections: number,
  now: number,
): UserEntry | null {
  const nodes = { ...(entry?.nodes ?? {}) };
  const mine = nodes[nodeId];
  if (connections > 0) {
    if (mine && mine.epoch === epoch && mine.connections === connections) return null;
    nodes[nodeId] = { epoch, connections, since: mine && mine.epoch === epoch ? mine.since : now };
    return entry?.lastSeen === undefined ? { nodes } : { nodes, lastSeen: entry.lastSeen };
  }
  if (!mine) return null;
  delete nodes[nodeId];
  return Object.keys(nodes).length === 0
    ? { nodes, lastSeen: now }
    : { nodes, ...(entry?.lastSeen ? { lastSeen: entry.lastSeen } : {}) };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
