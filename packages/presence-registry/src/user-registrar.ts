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
import { isCasConflict } from '@switchboard/nats/errors';
import type { UserEntry } from '@switchboard/protocol/presence';
import { encodeUserKey } from '@switchboard/protocol/user-key';
import { decodeJson, encodeJson } from './codec.js';

type Log = { warn(obj: object, msg: string): void; error(obj: object, msg: string): void };

export type UserRegistrarOptions = {
  /** The `presence-users` bucket. */
  kv: KV;
  nodeId: string;
  epoch: string;
  log: Log;
  /** Concurrent KV writes (default 128). */
  maxInFlight?: number;
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
  #errors = 0;
  #stopped = false;
  /** Users whose entry is rewritten even when unchanged (refresh before max_age). */
  readonly #forced = new Set<string>();
  #epoch: string;
  #refreshTimer: NodeJS.Timeout | undefined;

  constructor(options: UserRegistrarOptions) {
    this.#o = { maxInFlight: 128, ...options };
    this.#epoch = options.epoch;
  }

  get epoch(): string {
    return this.#epoch;
  }

  /**
   * Continues under a new epoch (after a lease lapse): every user in `counts` is written
   * again under it. Entries of the old epoch stop counting and are cleaned up by presence.
   */
  setEpoch(epoch: string, counts: Iterable<[string, number]>): void {
    this.#epoch = epoch;
    this.#known.clear();
    for (const [userId, n] of counts) this.set(userId, n);
  }

  /** Rewrites the users' entries even if unchanged, so the bucket's max_age never removes a live one. */
  refresh(counts: Iterable<[string, number]>): void {
    for (const [userId, n] of counts) {
      this.#forced.add(userId);
      this.set(userId, n);
    }
  }

  /**
   * Refreshes every user once per `periodMs`, spread evenly (a slice each second), reading
   * the current users from `users` at the start of each round.
   */
  startRefresh(periodMs: number, users: () => Iterable<[string, number]>): void {
    const tickMs = 1_000;
    const ticks = Math.max(1, Math.floor(periodMs / tickMs));
    let round: Array<[string, number]> = [];
    let at = 0;
    let perTick = 0;
    this.#refreshTimer = setInterval(() => {
      if (at >= round.length) {
        round = [...users()];
        at = 0;
        perTick = Math.ceil(round.length / ticks);
      }
      this.refresh(round.slice(at, at + perTick));
      at += perTick;
    }, tickMs);
    this.#refreshTimer.unref();
  }

  stopRefresh(): void {
    if (this.#refreshTimer) clearInterval(this.#refreshTimer);
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

  /** Write attempts that failed with an error other than a CAS conflict (and were retried). */
  get writeErrors(): number {
    return this.#errors;
  }

  /** Stops retrying: pending writes are abandoned (the node is going away). */
  stop(): void {
    this.#stopped = true;
    this.stopRefresh();
    this.#queue.clear();
  }

  /**
   * Resolves true when every recorded change is written, or false after `timeoutMs`
   * (default: no limit) with writes still pending.
   */
  flush(timeoutMs?: number): Promise<boolean> {
    if (this.pending === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const done = () => resolve(true);
      this.#idleWaiters.push(done);
      if (timeoutMs !== undefined) {
        setTimeout(() => {
          this.#idleWaiters = this.#idleWaiters.filter((w) => w !== done);
          resolve(false);
        }, timeoutMs).unref();
      }
    });
  }

  #pump(): void {
    while (!this.#stopped && this.#inFlight.size < this.#o.maxInFlight && this.#queue.size > 0) {
      const userId = this.#queue.values().next().value as string;
      this.#queue.delete(userId);
      this.#inFlight.add(userId);
      void this.#write(userId).finally(() => {
        this.#inFlight.delete(userId);
        // A change that arrived during the write is queued again by this check.
        if (this.#desired.has(userId) && !this.#stopped) this.#queue.add(userId);
        this.#pump();
        if (this.pending === 0) {
          const waiters = this.#idleWaiters;
          this.#idleWaiters = [];
          for (const w of waiters) w();
        }
      });
    }
  }

  /**
   * Writes the user's wished count until it is stored: compare-and-set conflicts re-read at
   * once (with jitter after a few); other errors (NATS away) back off up to 5 s and try
   * again, so an outage never leaves a connected user unregistered once NATS is back.
   */
  async #write(userId: string): Promise<void> {
    const key = encodeUserKey(userId);
    const { kv, nodeId } = this.#o;
    const forced = this.#forced.delete(userId);
    for (let attempt = 0; !this.#stopped; attempt++) {
      const desired = this.#desired.get(userId);
      if (desired === undefined) return;
      try {
        const known = this.#known.get(userId) ?? (await this.#read(kv, key));
        const next = applyNode(known.entry, nodeId, this.#epoch, desired, Date.now(), forced);
        if (next !== null) {
          const revision = await kv.put(key, encodeJson(next), { previousSeq: known.revision });
          if (desired > 0) this.#known.set(userId, { revision, entry: next });
        }
        if (desired === 0) this.#known.delete(userId);
        // Only forget the wish if no newer one arrived while writing.
        if (this.#desired.get(userId) === desired) this.#desired.delete(userId);
        return;
      } catch (err) {
        this.#known.delete(userId);
        if (isCasConflict(err)) {
          if (attempt >= 4) await sleep(Math.random() * 20);
          continue;
        }
        this.#errors++;
        // A closed connection never comes back: the node is going away.
        if ((err as Error | null)?.name === 'ClosedConnectionError') {
          this.#stopped = true;
          return;
        }
        if (attempt === 0) this.#o.log.warn({ err, userId }, 'presence write failed; retrying');
        await sleep(Math.min(5_000, 25 * 2 ** Math.min(attempt, 8)));
      }
    }
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
  force = false,
): UserEntry | null {
  const nodes = { ...(entry?.nodes ?? {}) };
  const mine = nodes[nodeId];
  if (connections > 0) {
    if (!force && mine && mine.epoch === epoch && mine.connections === connections) return null;
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

/**
 * Removes `nodeId` from a user's entry if it is still there under `epoch` (compare-and-set,
 * retried on conflict). Used to clean up after a node that died. Returns true if removed.
 */
export async function removeNodeFromEntry(
  kv: KV,
  userKey: string,
  nodeId: string,
  epoch: string,
  lastSeen: number,
  maxAttempts = 8,
): Promise<boolean> {
  for (let attempt = 0; attempt < maxAttempts; attempt++) {
    const e = await kv.get(userKey);
    if (e === null || e.operation !== 'PUT') return false;
    const entry = decodeJson<UserEntry>(e.value);
    if (entry.nodes[nodeId]?.epoch !== epoch) return false;
    const nodes = { ...entry.nodes };
    delete nodes[nodeId];
    const next: UserEntry =
      Object.keys(nodes).length === 0
        ? { nodes, lastSeen: Math.max(entry.lastSeen ?? 0, lastSeen) }
        : { nodes, ...(entry.lastSeen === undefined ? {} : { lastSeen: entry.lastSeen }) };
    try {
      await kv.put(userKey, encodeJson(next), { previousSeq: e.revision });
      return true;
    } catch (err) {
      if (!isCasConflict(err)) throw err;
    }
  }
  throw new Error(`could not remove ${nodeId} from ${userKey}: too many conflicts`);
}
