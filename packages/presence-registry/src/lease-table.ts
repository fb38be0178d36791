/**
 * LeaseTable — the set of node leases, kept in memory from a KV watch.
 *
 * NATS 2.9 sends no marker when max_age removes a key, so a lease is alive while it was
 * last written less than the lease TTL ago and has not been deleted. A sweep every
 * `sweepIntervalMs` turns silent leases into "lost" notifications; an epoch that was lost,
 * deleted or replaced stays known as dead, so entries written under it never count again.
 *
 * One clock: ages are measured on this process's clock only. A live update is as old as
 * its arrival; a lease read in a snapshot or a poll is as old as its server timestamp is
 * behind the newest one read with it (a difference of two server times). Server and
 * local times are never compared, so clock skew between machines cannot expire a live
 * lease early; a lease read at start-up counts for at most one TTL after the newest.
 */
import type { KV } from '@nats-io/kv';
import { NodeLease, type NodeLease as NodeLeaseValue } from '@switchboard/protocol';
import { decodeJson } from './codec.js';
import { watchWithSnapshot } from './kv-snapshot-watch.js';

type Log = { warn(obj: object, msg: string): void };

export type LeaseLossReason = 'expired' | 'deleted' | 'replaced';
/** `revision`: the last revision of the lease this table saw (for a compare-and-set fence). */
export type LeaseLost = { lease: NodeLeaseValue; reason: LeaseLossReason; revision: number };

export type LeaseTableOptions = {
  /** The `presence-nodes` bucket. */
  kv: KV;
  leaseTtlMs: number;
  log: Log;
  /** Longest wait for the initial snapshot before serving what has arrived (default 2 s). */
  initialLoadTimeoutMs?: number;
  /** How often silent leases are looked for (default TTL / 10, at most 500 ms). */
  sweepIntervalMs?: number;
  /** This process's clock (tests skew it). */
  clock?: () => number;
};

/** `writtenAt`: the server's timestamp of the lease write; it only moves forward. */
type Held = { lease: NodeLeaseValue; seenAt: number; writtenAt: number; revision: number };

/** How many dead epochs are remembered (oldest forgotten first). */
const DEAD_EPOCHS_KEPT = 10_000;

export class LeaseTable {
  readonly #o: LeaseTableOptions;
  readonly #leases = new Map<string, Held>();
  readonly #dead = new Set<string>();
  readonly #listeners: Array<(lost: LeaseLost) => void> = [];
  #stopWatch: (() => void) | undefined;
  #sweeper: NodeJS.Timeout | undefined;
  readonly #now: () => number;
  #lastWatchEventAt: number;
  #polling = false;
  #lastPollAt = 0;
  readonly #refreshed = new Map<string, { at: number; promise?: Promise<void> }>();

  private constructor(options: LeaseTableOptions) {
    this.#o = options;
    this.#now = options.clock ?? Date.now;
    this.#lastWatchEventAt = this.#now();
  }

  /** Starts the watch and resolves once the current leases are loaded. */
  static async create(options: LeaseTableOptions): Promise<LeaseTable> {
    const table = new LeaseTable(options);
    await table.#start();
    return table;
  }

  async #start(): Promise<void> {
    const initial = new Set<string>();
    const watch = await watchWithSnapshot(
      this.#o.kv,
      (e, isInitial) => {
        this.#lastWatchEventAt = this.#now();
        if (isInitial) initial.add(e.key);
        else initial.delete(e.key);
        if (e.operation === 'PUT') {
          try {
            const lease = NodeLease.parse(decodeJson(e.value));
            this.#put(e.key, {
              lease,
              seenAt: this.#now(),
              writtenAt: e.created.getTime(),
              revision: e.revision,
            });
          } catch (err) {
            this.#o.log.warn({ err, key: e.key }, 'ignored a malformed node lease');
          }
          return;
        }
        const held = this.#leases.get(e.key);
        this.#leases.delete(e.key);
        if (held) this.#lose(held, 'deleted');
      },
      this.#o.initialLoadTimeoutMs,
      this.#o.log,
    );
    // Snapshot leases were written before they reached us: age them by how far their
    // server time is behind the newest one in the snapshot.
    this.#ageByServerTime([...initial]);
    this.#stopWatch = () => watch.stop();
    const every = this.#o.sweepIntervalMs ?? Math.min(500, Math.floor(this.#o.leaseTtlMs / 10));
    this.#sweeper = setInterval(() => this.#sweep(), Math.max(10, every));
    this.#sweeper.unref();
  }

  #put(nodeId: string, held: Held): void {
    const before = this.#leases.get(nodeId);
    this.#leases.set(nodeId, held);
    // Heartbeats of an epoch judged expired here arrived after all (this process stalled,
    // or the watch lagged): it lives. Presence fences before it cleans up, so the node
    // rolls its epoch if its entries were removed meanwhile.
    this.#dead.delete(epochKey(nodeId, held.lease.epoch));
    if (
      before &&
      before.lease.epoch !== held.lease.epoch &&
      !this.#dead.has(epochKey(nodeId, before.lease.epoch))
    ) {
      this.#lose(before, 'replaced');
    }
  }

  /** Sets `seenAt` of `keys` to now minus how far each was written before the newest. */
  #ageByServerTime(keys: string[]): void {
    let newest = 0;
    for (const k of keys) newest = Math.max(newest, this.#leases.get(k)?.writtenAt ?? 0);
    const now = this.#now();
    for (const k of keys) {
      const held = this.#leases.get(k);
      if (held) held.seenAt = now - (newest - held.writtenAt);
    }
  }

  /**
   * Reads every lease directly. Used when the watch has been silent for half a TTL while
   * heartbeats arrive every third of one: the watch's consumer may have died with a NATS
   * node, and the client only recreates it after 10 s without its own heartbeats. A key
   * that exists was written less than a TTL ago (the bucket's max_age).
   */
  async #poll(): Promise<void> {
    if (this.#polling) return;
    this.#polling = true;
    try {
      const { kv } = this.#o;
      const keys: string[] = [];
      for await (const k of await kv.keys()) keys.push(k);
      const fresh: string[] = [];
      for (const key of keys) {
        const e = await kv.get(key);
        if (e?.operation !== 'PUT') continue;
        const held = this.#leases.get(key);
        const writtenAt = e.created.getTime();
        if (held && held.writtenAt >= writtenAt) continue;
        try {
          const lease = NodeLease.parse(decodeJson(e.value));
          this.#put(key, { lease, seenAt: this.#now(), writtenAt, revision: e.revision });
          fresh.push(key);
        } catch (err) {
          this.#o.log.warn({ err, key }, 'ignored a malformed node lease');
        }
      }
      this.#ageByServerTime(fresh);
    } catch (err) {
      this.#o.log.warn({ err }, 'lease poll failed');
    } finally {
      this.#polling = false;
    }
  }

  #sweep(now = this.#now()): void {
    // A silent watch may have lost its consumer (NATS node died or restarted): read the
    // leases directly, at most once per half TTL, also when none is held (after an outage
    // every lease has expired here, and the watch may be what keeps new ones away).
    if (
      now - this.#lastWatchEventAt > this.#o.leaseTtlMs / 2 &&
      now - this.#lastPollAt > this.#o.leaseTtlMs / 2
    ) {
      this.#lastPollAt = now;
      void this.#poll();
    }
    for (const [nodeId, held] of this.#leases) {
      if (now - held.seenAt >= this.#o.leaseTtlMs) {
        this.#leases.delete(nodeId);
        this.#lose(held, 'expired');
      }
    }
  }

  #lose({ lease, revision }: Held, reason: LeaseLossReason): void {
    const key = epochKey(lease.nodeId, lease.epoch);
    if (this.#dead.has(key)) return;
    this.#dead.add(key);
    if (this.#dead.size > DEAD_EPOCHS_KEPT)
      this.#dead.delete(this.#dead.values().next().value as string);
    for (const listener of this.#listeners) {
      try {
        listener({ lease, reason, revision });
      } catch (err) {
        this.#o.log.warn({ err, nodeId: lease.nodeId }, 'lease-lost listener failed');
      }
    }
  }

  /** Calls `listener` once per lost epoch: expired (no heartbeat for a TTL), deleted, or replaced by a new epoch. */
  onLost(listener: (lost: LeaseLost) => void): void {
    this.#listeners.push(listener);
  }

  /** True when `nodeId`'s lease is alive and carries `epoch`. O(1), no I/O. */
  isAlive(nodeId: string, epoch: string, now = this.#now()): boolean {
    const held = this.#leases.get(nodeId);
    return (
      held !== undefined && held.lease.epoch === epoch && now - held.seenAt < this.#o.leaseTtlMs
    );
  }

  /**
   * Reads one node's lease directly (one KV get), for a reader that meets an epoch this
   * table has not seen: the node may have just rolled its epoch (after a NATS outage) while
   * the watch lags or lost its consumer. At most one read per node per 250 ms. The lease is
   * aged by the server's write times against the newest lease held, as the poll does.
   */
  refresh(nodeId: string): Promise<void> {
    const now = this.#now();
    const last = this.#refreshed.get(nodeId);
    if (last && (last.promise || now - last.at < 250)) return last.promise ?? Promise.resolve();
    const promise = (async () => {
      try {
        const e = await this.#o.kv.get(nodeId);
        if (e?.operation !== 'PUT') return;
        const writtenAt = e.created.getTime();
        const held = this.#leases.get(nodeId);
        if (held && held.writtenAt >= writtenAt) return;
        let newest = writtenAt;
        for (const h of this.#leases.values()) newest = Math.max(newest, h.writtenAt);
        const lease = NodeLease.parse(decodeJson(e.value));
        this.#put(nodeId, {
          lease,
          seenAt: this.#now() - Math.min(this.#o.leaseTtlMs, newest - writtenAt),
          writtenAt,
          revision: e.revision,
        });
      } catch (err) {
        this.#o.log.warn({ err, nodeId }, 'lease read failed');
      } finally {
        this.#refreshed.set(nodeId, { at: this.#now() });
      }
    })();
    this.#refreshed.set(nodeId, { at: now, promise });
    return promise;
  }

  /** True when this epoch is known to be over (lost, deleted or replaced). */
  isDead(nodeId: string, epoch: string): boolean {
    return this.#dead.has(epochKey(nodeId, epoch));
  }

  /** The lease of `nodeId` if alive (any epoch). */
  get(nodeId: string, now = this.#now()): NodeLeaseValue | undefined {
    const held = this.#leases.get(nodeId);
    return held && now - held.seenAt < this.#o.leaseTtlMs ? held.lease : undefined;
  }

  /** Every alive lease. */
  alive(now = this.#now()): NodeLeaseValue[] {
    const out: NodeLeaseValue[] = [];
    for (const held of this.#leases.values()) {
      if (now - held.seenAt < this.#o.leaseTtlMs) out.push(held.lease);
    }
    return out;
  }

  stop(): void {
    if (this.#sweeper) clearInterval(this.#sweeper);
    this.#stopWatch?.();
  }
}

const epochKey = (nodeId: string, epoch: string) => `${nodeId}\u0000${epoch}`;
