/**
 * UserRegistrar — one edge node's writes of its users into `presence-users`.
 *
 * The edge says how many connections a user has on this node (`set`); `whenWritten` tells
 * when that count is stored (the edge completes a handshake only then, so a connected
 * client is routable). Writes are compare-and-set on the entry's revision, retried on
 * conflict, at most one in flight per user and `maxInFlight` overall; calls that arrive
 * while a user's write is queued or in flight coalesce into the next write, so a
 * connection storm costs at most one write per user per round trip.
 *
 * Refresh: an entry this node wrote is rewritten once it is `refreshAfterMs` old (with up
 * to 25% jitter, earlier), with the count the node has at that moment; the write rate is
 * users / refreshAfterMs, whatever the number of users.
 */
import type { KV } from '@nats-io/kv';
import { CasRetriesExhaustedError, isCasConflict, isConnectionClosed } from '@switchboard/nats';
import type { UserEntry } from '@switchboard/protocol';
import { encodeUserKey } from '@switchboard/protocol';
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
  /** The clock refresh ages are measured on (tests drive it). */
  clock?: () => number;
};

type Known = { revision: number; entry: UserEntry | null };
type Waiter = (written: boolean) => void;

/** How often due refreshes are looked for. */
const REFRESH_TICK_MS = 1_000;

export class UserRegistrar {
  readonly #o: Required<Omit<UserRegistrarOptions, 'log' | 'kv' | 'clock'>> &
    Pick<UserRegistrarOptions, 'log' | 'kv'>;
  readonly #now: () => number;
  /** Desired connection count of each user on this node that is not yet written. */
  readonly #desired = new Map<string, number>();
  /** Last revision this node wrote or read per connected user: saves a read per write. */
  readonly #known = new Map<string, Known>();
  /**
   * When this node last stored each of its live users (local clock), oldest first: a
   * written user is deleted and set again, so the Map's order is the write order.
   */
  readonly #writtenAt = new Map<string, number>();
  readonly #queue = new Set<string>();
  readonly #inFlight = new Set<string>();
  /** Callers of `whenWritten` waiting for the next write of a user to start. */
  readonly #waiters = new Map<string, Waiter[]>();
  #idleWaiters: Array<() => void> = [];
  #errors = 0;
  #writes = 0;
  #stopped = false;
  /** Users whose entry is rewritten even when unchanged (refresh before max_age). */
  readonly #forced = new Set<string>();
  #epoch: string;
  #refreshTimer: NodeJS.Timeout | undefined;

  constructor(options: UserRegistrarOptions) {
    this.#o = { maxInFlight: 128, ...options };
    this.#now = options.clock ?? Date.now;
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
    this.#writtenAt.clear();
    for (const [userId, n] of counts) this.set(userId, n);
  }

  /**
   * Rewrites every live entry this node stored `refreshAfterMs` ago or earlier (each
   * user's due time jittered up to 25% earlier, so a storm's users do not come due in
   * the same second), with its count from `count` at that moment. Checked every second.
   */
  startRefresh(refreshAfterMs: number, count: (userId: string) => number): void {
    this.stopRefresh();
    this.#refreshTimer = setInterval(
      () => this.refreshDue(refreshAfterMs, count),
      Math.min(REFRESH_TICK_MS, Math.max(10, Math.floor(refreshAfterMs / 4))),
    );
    this.#refreshTimer.unref();
  }

  /** One refresh pass (see {@link startRefresh}); returns how many users it queued. */
  refreshDue(refreshAfterMs: number, count: (userId: string) => number): number {
    const now = this.#now();
    let queued = 0;
    const earliest = refreshAfterMs * 0.75;
    for (const [userId, at] of this.#writtenAt) {
      const age = now - at;
      // Later entries were written later: none of them can be due.
      if (age < earliest) break;
      if (age < refreshAfterMs * (0.75 + 0.25 * jitterOf(userId))) continue;
      // Not due again until this write lands (or the user leaves).
      this.#writtenAt.delete(userId);
      const n = count(userId);
      if (n <= 0) continue;
      this.#forced.add(userId);
      this.set(userId, n);
      queued++;
    }
    return queued;
  }

  stopRefresh(): void {
    if (this.#refreshTimer) clearInterval(this.#refreshTimer);
    this.#refreshTimer = undefined;
  }

  /** Records that `userId` has `connections` sockets on this node; written asynchronously. */
  set(userId: string, connections: number): void {
    this.#desired.set(userId, connections);
    if (!this.#inFlight.has(userId)) this.#queue.add(userId);
    this.#pump();
  }

  /**
   * Resolves true once the count last `set` for `userId` (or a later one) is stored, at
   * once when nothing is pending for the user; false after `timeoutMs`, or when the
   * registrar stops or loses its connection first.
   */
  whenWritten(userId: string, timeoutMs: number): Promise<boolean> {
    if (!this.#desired.has(userId)) return Promise.resolve(true);
    return new Promise((resolve) => {
      let done = false;
      const waiter: Waiter = (written) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        resolve(written);
      };
      const timer = setTimeout(() => {
        const list = this.#waiters.get(userId);
        if (list) {
          const i = list.indexOf(waiter);
          if (i >= 0) list.splice(i, 1);
          if (list.length === 0) this.#waiters.delete(userId);
        }
        waiter(false);
      }, timeoutMs);
      timer.unref();
      // A write already in flight may carry an older count: the next write covers this one.
      const list = this.#waiters.get(userId);
      if (list) list.push(waiter);
      else this.#waiters.set(userId, [waiter]);
    });
  }

  /**
   * Connections of `userId` across the cluster in the entry as this node last stored or
   * read it (every node's count, this one's included), or undefined when it holds none.
   * Right after `whenWritten` resolved true this is the stored truth at that revision: the
   * write was a compare-and-set on it. Nodes that died and are not cleaned up yet count.
   */
  storedConnections(userId: string): number | undefined {
    const entry = this.#known.get(userId)?.entry;
    if (!entry) return undefined;
    let n = 0;
    for (const node of Object.values(entry.nodes)) n += node.connections;
    return n;
  }

  /** Users waiting for or in a write. */
  get pending(): number {
    return this.#queue.size + this.#inFlight.size;
  }

  /** Write attempts that failed with an error other than a CAS conflict (and were retried). */
  get writeErrors(): number {
    return this.#errors;
  }

  /** KV puts that succeeded since start. */
  get writes(): number {
    return this.#writes;
  }

  /** Stops retrying: pending writes are abandoned (the node is going away). */
  stop(): void {
    this.#stopped = true;
    this.stopRefresh();
    this.#queue.clear();
    for (const list of this.#waiters.values()) for (const w of list) w(false);
    this.#waiters.clear();
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
      // The waiters so far are served by this write: it reads the latest wish when it runs.
      const waiters = this.#waiters.get(userId);
      this.#waiters.delete(userId);
      void this.#write(userId)
        .catch((err: unknown) => {
          // Not retryable (a user id no key can hold): never written, never retried.
          this.#o.log.error({ err, userId }, 'presence write impossible; user dropped');
          this.#desired.delete(userId);
          return false;
        })
        .then((written) => {
          this.#inFlight.delete(userId);
          if (waiters) for (const w of waiters) w(written);
          // A change that arrived during the write is queued again by this check; waiters
          // that came without a change wanted exactly what was just stored.
          if (this.#desired.has(userId) && !this.#stopped) this.#queue.add(userId);
          else {
            const late = this.#waiters.get(userId);
            this.#waiters.delete(userId);
            if (late) for (const w of late) w(written);
          }
          this.#pump();
          if (this.pending === 0) {
            const idle = this.#idleWaiters;
            this.#idleWaiters = [];
            for (const w of idle) w();
          }
        });
    }
  }

  /**
   * Writes the user's wished count until it is stored (true), or the registrar stops
   * (false): compare-and-set conflicts re-read at once (with jitter after a few); other
   * errors (NATS away) back off up to 5 s and try again, so an outage never leaves a
   * connected user unregistered once NATS is back.
   */
  async #write(userId: string): Promise<boolean> {
    const key = encodeUserKey(userId);
    const { kv, nodeId } = this.#o;
    const forced = this.#forced.delete(userId);
    for (let attempt = 0; !this.#stopped; attempt++) {
      const desired = this.#desired.get(userId);
      if (desired === undefined) return true;
      try {
        const known = this.#known.get(userId) ?? (await this.#read(kv, key));
        const next = applyNode(known.entry, nodeId, this.#epoch, desired, Date.now(), forced);
        if (next !== null) {
          const revision = await kv.put(key, encodeJson(next), { previousSeq: known.revision });
          this.#writes++;
          if (desired > 0) {
            this.#known.set(userId, { revision, entry: next });
            this.#writtenAt.delete(userId);
            this.#writtenAt.set(userId, this.#now());
          }
        } else if (desired > 0 && !this.#writtenAt.has(userId)) {
          this.#writtenAt.set(userId, this.#now());
        }
        if (desired === 0) {
          this.#known.delete(userId);
          this.#writtenAt.delete(userId);
        }
        // Only forget the wish if no newer one arrived while writing.
        if (this.#desired.get(userId) === desired) this.#desired.delete(userId);
        return true;
      } catch (err) {
        this.#known.delete(userId);
        if (isCasConflict(err)) {
          if (attempt >= 4) await sleep(Math.random() * 20);
          continue;
        }
        this.#errors++;
        // A closed connection never comes back: the node is going away.
        if (isConnectionClosed(err)) {
          this.#stopped = true;
          return false;
        }
        if (attempt === 0) this.#o.log.warn({ err, userId }, 'presence write failed; retrying');
        await sleep(Math.min(5_000, 25 * 2 ** Math.min(attempt, 8)));
      }
    }
    return false;
  }

  async #read(kv: KV, key: string): Promise<Known> {
    const e = await kv.get(key);
    if (e === null) return { revision: 0, entry: null };
    if (e.operation !== 'PUT') return { revision: e.revision, entry: null };
    return { revision: e.revision, entry: decodeJson<UserEntry>(e.value) };
  }
}

/** A stable number in [0, 1) per user: spreads refreshes without a random draw per pass. */
function jitterOf(userId: string): number {
  let h = 2_166_136_261;
  for (let i = 0; i < userId.length; i++) h = Math.imul(h ^ userId.charCodeAt(i), 16_777_619);
  return (h >>> 0) / 4_294_967_296;
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
  throw new CasRetriesExhaustedError(userKey, maxAttempts);
}
