/**
 * PresenceMonitor — keeps every user entry in memory from a KV watch and, on the replica
 * that holds the {@link LeaderLock}:
 * - publishes user-level `online` / `offline` transitions on `presence.v1.events`,
 *   computed from consecutive revisions of an entry, so a second tab emits nothing;
 * - when a node's lease is lost (expired, or replaced by a restart), emits `offline`
 *   (`node-lost`) for the users it leaves with no node, and removes its entries with
 *   compare-and-set, setting `lastSeen` to the node's last heartbeat. An expired lease is
 *   fenced first: deleted with compare-and-set at the last revision seen. If the node
 *   wrote a newer heartbeat meanwhile (it is alive; this replica judged it late), nothing
 *   is removed; if the fence lands, a node that was only slow finds its lease gone, rolls
 *   its epoch and registers its users again, so its entries are never lost silently;
 * - every lease TTL, removes entries of nodes that have no lease (missed while no replica
 *   led), once it has watched for two TTLs.
 * A malformed key or value is logged, counted (`skipped`) and ignored: the watch goes on.
 * Times are this process's clock only (when an entry arrived), never an edge's.
 */
import type { KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { isCasConflict } from '@switchboard/nats';
import type { LeaseLost, LeaseTable } from '@switchboard/presence-registry';
import {
  parseLease,
  readUserEntry,
  removeNodeFromEntry,
  type SnapshotWatch,
  watchWithSnapshot,
} from '@switchboard/presence-registry';
import type { PresenceEvent, UserEntry } from '@switchboard/protocol';
import { decodeUserKey, Subjects } from '@switchboard/protocol';
import type { Logger } from 'pino';
import type { Counter } from 'prom-client';

export type PresenceMonitorOptions = {
  nc: NatsConnection;
  /** The `presence-users` bucket. */
  users: KV;
  /** The `presence-nodes` bucket (expired leases are fenced there before clean-up). */
  nodes: KV;
  leases: LeaseTable;
  isLeader: () => boolean;
  leaseTtlMs: number;
  log: Logger;
  /** Concurrent clean-up writes (default 64). */
  cleanupConcurrency?: number;
  /** Counts every published event by status and reason. */
  eventsCounter?: Counter<'status' | 'reason'>;
};

export class PresenceMonitor {
  readonly #o: PresenceMonitorOptions;
  readonly #entries = new Map<string, UserEntry>();
  /** When each held entry's current revision arrived (local clock). */
  readonly #arrivedAt = new Map<string, number>();
  /** Keys of the users this replica counts online: the state its events move between. */
  readonly #online = new Set<string>();
  #skipped = 0;
  readonly #byNode = new Map<string, Set<string>>();
  readonly #startedAt = Date.now();
  #watch: SnapshotWatch | undefined;
  #reconciler: NodeJS.Timeout | undefined;
  #cleaning: Promise<void> = Promise.resolve();
  #events = 0;

  private constructor(options: PresenceMonitorOptions) {
    this.#o = options;
  }

  static async create(options: PresenceMonitorOptions): Promise<PresenceMonitor> {
    const monitor = new PresenceMonitor(options);
    options.leases.onLost((lost) => monitor.#onLeaseLost(lost));
    monitor.#watch = await watchWithSnapshot(
      options.users,
      (e, initial) => {
        let read: ReturnType<typeof readUserEntry>;
        try {
          read = readUserEntry(e);
        } catch (err) {
          monitor.#skipped++;
          options.log.warn({ err, key: e.key }, 'ignored a malformed user entry');
          return;
        }
        const { userId, entry } = read;
        monitor.#onEntry(e.key, userId, entry, initial);
      },
      undefined,
      options.log,
    );
    monitor.#reconciler = setInterval(() => monitor.#reconcile(), options.leaseTtlMs);
    monitor.#reconciler.unref();
    return monitor;
  }

  /** Entries held in memory. */
  get size(): number {
    return this.#entries.size;
  }

  /** Entries ignored because their key or value was malformed. */
  get skipped(): number {
    return this.#skipped;
  }

  /** Events published since start. */
  get eventsPublished(): number {
    return this.#events;
  }

  /** Resolves when clean-ups started so far are done. */
  idle(): Promise<void> {
    return this.#cleaning;
  }

  stop(): void {
    if (this.#reconciler) clearInterval(this.#reconciler);
    this.#watch?.stop();
  }

  /**
   * Whether a node entry counts for events. Stricter than "not known dead": an entry of a
   * node whose lease was never seen counts only while it is younger than a TTL, because its
   * lease may simply not have reached this replica yet.
   */
  #counts(nodeId: string, epoch: string, arrivedAt: number, now: number): boolean {
    const { leases } = this.#o;
    if (leases.isAlive(nodeId, epoch)) return true;
    if (leases.isDead(nodeId, epoch)) return false;
    if (leases.get(nodeId)) return false;
    return now - arrivedAt < this.#o.leaseTtlMs;
  }

  #liveCount(
    entry: UserEntry | null | undefined,
    arrivedAt: number,
    now: number,
    except?: string,
  ): number {
    if (!entry) return 0;
    let n = 0;
    for (const [nodeId, p] of Object.entries(entry.nodes)) {
      if (nodeId !== except && this.#counts(nodeId, p.epoch, arrivedAt, now)) n++;
    }
    return n;
  }

  /**
   * A user's events are transitions of `#online`, the state this replica last counted for
   * the user (kept on every replica, published by the leader), not of a recount of the
   * previous revision: a recount changes with time and leases (an entry of a node whose
   * lease is lost no longer counts), and comparing two recounts emitted `online` twice, or
   * no `offline`, when a lease changed between two revisions of an entry.
   */
  #onEntry(key: string, userId: string, next: UserEntry | null, initial: boolean): void {
    const prev = this.#entries.get(key);
    const now = Date.now();
    const wasOnline = this.#online.has(key);
    const isOnline = this.#liveCount(next, now, now) > 0;
    if (isOnline) this.#online.add(key);
    else this.#online.delete(key);
    if (!initial && this.#o.isLeader() && isOnline !== wasOnline) {
      if (isOnline) {
        this.#publish({ userId, status: 'online', at: now, reason: 'connect' });
      } else {
        const left = Object.keys(prev?.nodes ?? {}).filter((n) => !next?.nodes[n]);
        const draining = left.some((n) => this.#o.leases.get(n)?.draining === true);
        this.#publish({
          userId,
          status: 'offline',
          at: next?.lastSeen ?? now,
          reason: draining ? 'drain' : 'disconnect',
        });
      }
    }
    this.#index(key, prev, next);
    if (next === null) this.#arrivedAt.delete(key);
    else this.#arrivedAt.set(key, now);
  }

  #index(key: string, prev: UserEntry | undefined, next: UserEntry | null): void {
    for (const nodeId of Object.keys(prev?.nodes ?? {})) {
      if (!next?.nodes[nodeId]) this.#byNode.get(nodeId)?.delete(key);
    }
    if (next === null) {
      this.#entries.delete(key);
      return;
    }
    this.#entries.set(key, next);
    for (const nodeId of Object.keys(next.nodes)) {
      let set = this.#byNode.get(nodeId);
      if (!set) {
        set = new Set();
        this.#byNode.set(nodeId, set);
      }
      set.add(key);
    }
  }

  #onLeaseLost(lost: LeaseLost): void {
    if (!this.#o.isLeader()) return;
    if (lost.reason !== 'expired') {
      this.#nodeLost(lost);
      return;
    }
    void this.#fence(lost).then(
      (fenced) => {
        if (fenced) this.#nodeLost(lost);
        else
          this.#o.log.info(
            { nodeId: lost.lease.nodeId, epoch: lost.lease.epoch },
            'lease seen as expired here but the node heartbeats: nothing removed',
          );
      },
      (err: unknown) =>
        this.#o.log.warn(
          { err, nodeId: lost.lease.nodeId },
          'could not fence an expired lease; the reconciler retries',
        ),
    );
  }

  /**
   * Deletes the lease at the revision last seen. True when the node has no newer lease
   * (the fence landed, or the key is already gone): its entries may be removed.
   */
  async #fence({ lease, revision }: LeaseLost): Promise<boolean> {
    const { nodes } = this.#o;
    try {
      await nodes.delete(lease.nodeId, { previousSeq: revision });
      return true;
    } catch (err) {
      if (!isCasConflict(err)) throw err;
      const e = await nodes.get(lease.nodeId);
      return e === null || e.operation !== 'PUT' || parseLease(e.value)?.epoch !== lease.epoch;
    }
  }

  #nodeLost({ lease, reason }: LeaseLost): void {
    const keys = [...(this.#byNode.get(lease.nodeId) ?? [])].filter(
      (k) => this.#entries.get(k)?.nodes[lease.nodeId]?.epoch === lease.epoch,
    );
    this.#o.log.info(
      { nodeId: lease.nodeId, epoch: lease.epoch, reason, users: keys.length },
      'node lease lost',
    );
    if (keys.length === 0) return;
    const now = Date.now();
    for (const key of keys) {
      const arrivedAt = this.#arrivedAt.get(key) ?? now;
      if (
        this.#online.has(key) &&
        this.#liveCount(this.#entries.get(key), arrivedAt, now, lease.nodeId) === 0
      ) {
        this.#online.delete(key);
        this.#publish({
          userId: decodeUserKey(key),
          status: 'offline',
          at: lease.heartbeatAt,
          reason: 'node-lost',
        });
      }
    }
    this.#clean(keys, lease.nodeId, lease.epoch, lease.heartbeatAt);
  }

  #reconcile(): void {
    if (!this.#o.isLeader() || Date.now() - this.#startedAt < 2 * this.#o.leaseTtlMs) return;
    const now = Date.now();
    const stale = new Map<string, { nodeId: string; epoch: string; keys: string[] }>();
    for (const [key, entry] of this.#entries) {
      const arrivedAt = this.#arrivedAt.get(key) ?? now;
      for (const [nodeId, p] of Object.entries(entry.nodes)) {
        if (this.#counts(nodeId, p.epoch, arrivedAt, now)) continue;
        const id = `${nodeId}\u0000${p.epoch}`;
        const group = stale.get(id) ?? { nodeId, epoch: p.epoch, keys: [] };
        group.keys.push(key);
        stale.set(id, group);
      }
    }
    for (const { nodeId, epoch, keys } of stale.values()) {
      // The server has the last word: an epoch whose lease is still stored is alive.
      void this.#o.nodes.get(nodeId).then(
        (e) => {
          if (e?.operation === 'PUT' && parseLease(e.value)?.epoch === epoch) return;
          this.#o.log.info(
            { nodeId, epoch, users: keys.length },
            'removing entries of a node without a lease',
          );
          this.#clean(keys, nodeId, epoch, now);
        },
        (err: unknown) => this.#o.log.warn({ err, nodeId }, 'reconcile: lease read failed'),
      );
    }
  }

  #clean(keys: string[], nodeId: string, epoch: string, lastSeen: number): void {
    const { users, log } = this.#o;
    const run = async () => {
      let next = 0;
      const worker = async () => {
        while (next < keys.length) {
          const key = keys[next++]!;
          try {
            await removeNodeFromEntry(users, key, nodeId, epoch, lastSeen);
          } catch (err) {
            log.warn(
              { err, key, nodeId },
              'clean-up of a dead node entry failed; the reconciler retries',
            );
          }
        }
      };
      await Promise.all(
        Array.from({ length: Math.min(this.#o.cleanupConcurrency ?? 64, keys.length) }, worker),
      );
    };
    this.#cleaning = this.#cleaning.then(run);
  }

  #publish(event: PresenceEvent): void {
    this.#events++;
    this.#o.eventsCounter?.inc({ status: event.status, reason: event.reason });
    this.#o.nc.publish(Subjects.presenceEvents, JSON.stringify(event));
  }
}
