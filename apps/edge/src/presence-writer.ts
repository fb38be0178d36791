/**
 * PresenceWriter — what this node writes into presence (JetStream KV): its lease in
 * `presence-nodes` ({@link NodeLease}: taken at start, heartbeat every TTL / 3, marked
 * draining, deleted at the end; a lapse rolls the epoch and rewrites every local user) and
 * its users in `presence-users` ({@link UserRegistrar}: one coalesced compare-and-set
 * write per user, refreshed within half the bucket's max_age). It also answers the
 * cluster-wide question the stored entry settles: does this user hold more connections
 * than `maxConnectionsPerUser`?
 *
 * Counts come from the hub's index (read, never changed here); the handshake says when a
 * user's count changed.
 */
import { randomUUID } from 'node:crypto';
import {
  NodeIdConflictError,
  NodeLease,
  type PresenceBuckets,
  UserRegistrar,
} from '@switchboard/presence-registry';
import type { Logger } from 'pino';
import type { EdgeConfig } from './config.js';
import type { EdgeMetrics } from './metrics.js';

/** This node's sockets per user, as the hub's index counts them. */
export type LocalCounts = {
  readonly connections: number;
  counts(): Iterable<[string, number]>;
  get(userId: string): ReadonlySet<unknown>;
};

export type PresenceWriterOptions = {
  buckets: PresenceBuckets;
  nodeId: string;
  config: Pick<EdgeConfig, 'publicUrl' | 'leaseTtlMs' | 'userEntryTtlMs' | 'maxConnectionsPerUser'>;
  local: LocalCounts;
  metrics: EdgeMetrics;
  log: Logger;
  /** Another live process took this node id: this node must stop serving (not called twice). */
  onConflict(err: NodeIdConflictError): void;
};

export class PresenceWriter {
  readonly #o: PresenceWriterOptions;
  readonly #lease: NodeLease;
  readonly #registrar: UserRegistrar;

  constructor(options: PresenceWriterOptions) {
    this.#o = options;
    const { buckets, nodeId, config, local, metrics, log } = options;
    this.#lease = new NodeLease({
      kv: buckets.nodes,
      nodeId,
      epoch: randomUUID(),
      url: config.publicUrl,
      leaseTtlMs: config.leaseTtlMs,
      connections: () => local.connections,
      log,
      onHeartbeat: (ok) => metrics.heartbeats.inc({ outcome: ok ? 'ok' : 'failed' }),
      onLapse: () => {
        metrics.lapses.inc();
        // Our entries may be gone or judged dead: every local user is written again.
        const fresh = randomUUID();
        this.#registrar.setEpoch(fresh, local.counts());
        return fresh;
      },
      onConflict: (holder) => options.onConflict(new NodeIdConflictError(nodeId, holder)),
    });
    this.#registrar = new UserRegistrar({
      kv: buckets.users,
      nodeId,
      epoch: this.epoch,
      log,
    });
  }

  /** Fresh per process start (and after a lease lapse): fences this run's presence entries. */
  get epoch(): string {
    return this.#lease.epoch;
  }

  /**
   * Takes the lease (rejects with {@link NodeIdConflictError} when another process holds
   * it), then keeps the users' entries fresh.
   */
  async start(): Promise<void> {
    await this.#lease.start();
    const local = this.#o.local;
    // Entries are rewritten within half the bucket's max_age, so a live user never expires.
    this.#registrar.startRefresh(
      this.#o.config.userEntryTtlMs / 2,
      (userId) => local.get(userId).size,
    );
  }

  /** Records that `userId` has `connections` sockets on this node; written asynchronously. */
  set(userId: string, connections: number): void {
    this.#registrar.set(userId, connections);
  }

  /** True once the user's last count set is stored; false after `timeoutMs` or on stop. */
  whenWritten(userId: string, timeoutMs: number): Promise<boolean> {
    return this.#registrar.whenWritten(userId, timeoutMs);
  }

  /**
   * Whether the user's entry as just stored holds more connections across the cluster than
   * `maxConnectionsPerUser` (0: no cap). Meant right after {@link whenWritten} resolved
   * true: that write was a compare-and-set, so the entry holds every node's count.
   */
  overUserCap(userId: string): boolean {
    const max = this.#o.config.maxConnectionsPerUser;
    return max > 0 && (this.#registrar.storedConnections(userId) ?? 0) > max;
  }

  /** Resolves true when every presence change so far is written (false after `timeoutMs`). */
  flush(timeoutMs?: number): Promise<boolean> {
    return this.#registrar.flush(timeoutMs);
  }

  /**
   * First step of a drain: the lease says draining (readers stop routing here) and the
   * periodic refresh stops. A failed write is logged: the drain goes on.
   */
  async markDraining(): Promise<void> {
    await this.#lease
      .markDraining()
      .catch((err: unknown) => this.#o.log.warn({ err }, 'could not mark lease draining'));
    this.#registrar.stopRefresh();
  }

  /**
   * Writes what is pending (the clients' removals, once they have left the hub) for at
   * most `timeoutMs`, then stops writing. What is still pending then is left to presence,
   * which cleans up after the lease.
   */
  async drain(timeoutMs: number): Promise<void> {
    if (!(await this.#registrar.flush(timeoutMs))) {
      this.#o.log.warn(
        { pending: this.#registrar.pending },
        'drain: presence writes still pending; presence cleans up after the lease',
      );
    }
    this.#registrar.stop();
  }

  /** Stops writing users: pending writes are abandoned (the node is going away). */
  stopWrites(): void {
    this.#registrar.stop();
  }

  /** Deletes the lease (after the users' removals): the node's entries stop counting. */
  async release(): Promise<void> {
    await this.#lease
      .stop()
      .catch((err: unknown) => this.#o.log.warn({ err }, 'could not delete lease'));
  }
}
