/**
 * NodeLease — an edge node's liveness record in `presence-nodes`.
 *
 * One KV write per heartbeat whatever the node's user count. The bucket's max_age equals
 * the lease TTL, so a node that stops heartbeating disappears by itself within the TTL;
 * the epoch (fresh per process start) fences the user entries the node wrote.
 *
 * Every write is compare-and-set on the revision this process last wrote, so two processes
 * can never both hold one node id: the loser of a start-up race gets a
 * {@link NodeIdConflictError}, and a running node that finds its key rewritten under
 * another epoch reports the conflict (`onConflict`) instead of overwriting it.
 *
 * A lapse (no successful heartbeat for two thirds of the TTL, or the key found expired)
 * rolls the epoch through `onLapse`: readers may have judged the node dead and presence
 * may have removed its entries, so the node re-registers its users under a fresh epoch
 * instead of reviving the old one.
 */
import type { KV } from '@nats-io/kv';
import { isCasConflict } from '@switchboard/nats';
import {
  NodeLease as NodeLeaseSchema,
  type NodeLease as NodeLeaseValue,
} from '@switchboard/protocol';
import { decodeJson, encodeJson } from './codec.js';

type Log = { warn(obj: object, msg: string): void; debug?(obj: object, msg: string): void };

export type NodeLeaseOptions = {
  /** The `presence-nodes` bucket. */
  kv: KV;
  nodeId: string;
  epoch: string;
  /** Where clients reach this node (informational). */
  url: string;
  /** The bucket's max_age. Heartbeats run every `leaseTtlMs / 3`. */
  leaseTtlMs: number;
  /** Current number of connections, read at each heartbeat. */
  connections: () => number;
  log: Log;
  /**
   * Called when heartbeats failed for two thirds of the TTL or the lease had expired (the
   * node's entries may have been cleaned up): returns the fresh epoch to continue under.
   */
  onLapse?: () => string;
  /** Called once when another process has taken this node id: this one must stop serving. */
  onConflict?: (holder: NodeLeaseValue) => void;
  /** Told the outcome of every heartbeat write (for metrics). */
  onHeartbeat?: (ok: boolean) => void;
};

/** Another live process holds this node id. */
export class NodeIdConflictError extends Error {
  readonly holder: NodeLeaseValue | null;
  constructor(nodeId: string, holder: NodeLeaseValue | null, options?: ErrorOptions) {
    super(
      holder
        ? `node id ${nodeId} is held by another process (epoch ${holder.epoch}, started ${new Date(holder.startedAt).toISOString()}, ${holder.url}): give each edge its own NODE_ID`
        : `node id ${nodeId} was taken by another process while starting: give each edge its own NODE_ID`,
      options,
    );
    this.name = 'NodeIdConflictError';
    this.holder = holder;
  }
}

export class NodeLease {
  readonly #o: NodeLeaseOptions;
  readonly #startedAt = Date.now();
  #epoch: string;
  /** Revision of this process's last write (0: none yet). */
  #revision = 0;
  #lastOkAt = 0;
  #timer: NodeJS.Timeout | undefined;
  #draining = false;
  #conflicted = false;
  /** The epoch was rolled since the last stored heartbeat. */
  #rolled = false;
  #beating: Promise<void> | undefined;
  #beatStartedAt = 0;

  constructor(options: NodeLeaseOptions) {
    this.#o = options;
    this.#epoch = options.epoch;
  }

  get epoch(): string {
    return this.#epoch;
  }

  get heartbeatIntervalMs(): number {
    return Math.max(1, Math.floor(this.#o.leaseTtlMs / 3));
  }

  /**
   * Takes the lease (awaited: the node is not alive before), then heartbeats. Replaces a
   * lease left by a dead predecessor; rejects with {@link NodeIdConflictError} when
   * another process wrote the key between our read and our write.
   */
  async start(): Promise<void> {
    const current = await this.#o.kv.get(this.#o.nodeId);
    try {
      this.#revision =
        current === null
          ? await this.#o.kv.create(this.#o.nodeId, encodeJson(this.value()))
          : await this.#o.kv.update(this.#o.nodeId, encodeJson(this.value()), current.revision);
    } catch (err) {
      // `create` of an existing key and `update` of a moved one both fail compare-and-set.
      if (!isCasConflict(err)) throw err;
      throw new NodeIdConflictError(this.#o.nodeId, await this.#holder(), { cause: err });
    }
    this.#lastOkAt = Date.now();
    this.#timer = setInterval(() => {
      // Skip a beat rather than pile up writes when NATS is slow; but a write lost with a
      // connection (NATS restarted while it was in flight) waits for JetStream's 5 s
      // timeout, longer than the lease lives: after most of an interval the next beat goes out
      // anyway (a healthy write takes milliseconds). The two are compare-and-set writes, so the later one re-reads and wins.
      if (this.#beating && Date.now() - this.#beatStartedAt < this.heartbeatIntervalMs * 0.9)
        return;
      this.#beatStartedAt = Date.now();
      const beat: Promise<void> = this.#put()
        .then(
          () => this.#o.onHeartbeat?.(true),
          (err: unknown) => {
            this.#o.onHeartbeat?.(false);
            this.#o.log.warn({ err }, 'lease heartbeat failed');
          },
        )
        .finally(() => {
          if (this.#beating === beat) this.#beating = undefined;
        });
      this.#beating = beat;
    }, this.heartbeatIntervalMs);
    this.#timer.unref();
  }

  /** Marks the lease draining at once, so routers and presence can see the node leaving. */
  async markDraining(): Promise<void> {
    this.#draining = true;
    await this.#beating;
    await this.#put();
  }

  /** Stops heartbeating and deletes the lease: the node's entries stop counting at once. */
  async stop(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
    await this.#beating;
    if (this.#conflicted) return;
    await this.#o.kv.delete(this.#o.nodeId, { previousSeq: this.#revision }).catch((err) => {
      // Someone else holds the key now: theirs to keep.
      if (!isCasConflict(err)) throw err;
    });
  }

  /** Stops heartbeating without deleting: the lease expires after the TTL (tests, crashes). */
  abandon(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
  }

  value(): NodeLeaseValue {
    return {
      nodeId: this.#o.nodeId,
      epoch: this.#epoch,
      startedAt: this.#startedAt,
      heartbeatAt: Date.now(),
      url: this.#o.url,
      connections: this.#o.connections(),
      draining: this.#draining,
    };
  }

  /** One new epoch per lapse, however many attempts fail before a write lands. */
  #lapse(why: string): void {
    if (!this.#o.onLapse || this.#rolled) return;
    this.#rolled = true;
    const previous = this.#epoch;
    this.#epoch = this.#o.onLapse();
    this.#o.log.warn(
      { previous, epoch: this.#epoch, why },
      'lease lapsed: continuing under a new epoch',
    );
  }

  async #put(): Promise<void> {
    if (this.#conflicted) return;
    const { kv, nodeId, leaseTtlMs } = this.#o;
    if (Date.now() - this.#lastOkAt >= (leaseTtlMs * 2) / 3) {
      this.#lapse(`no heartbeat stored for ${Date.now() - this.#lastOkAt} ms`);
    }
    try {
      this.#revision = await kv.update(nodeId, encodeJson(this.value()), this.#revision);
    } catch (err) {
      if (!isCasConflict(err)) throw err;
      // Not the revision we wrote last: expired (max_age), or rewritten by someone.
      const e = await kv.get(nodeId);
      const holder = e?.operation === 'PUT' ? parseLease(e.value) : null;
      if (holder && holder.epoch !== this.#epoch) {
        this.#conflicted = true;
        this.abandon();
        this.#o.log.warn({ nodeId, holder }, 'node id taken by another process');
        this.#o.onConflict?.(holder);
        return;
      }
      if (!holder) this.#lapse('lease expired');
      this.#revision = e
        ? await kv.update(nodeId, encodeJson(this.value()), e.revision)
        : await kv.create(nodeId, encodeJson(this.value()));
    }
    this.#lastOkAt = Date.now();
    this.#rolled = false;
  }

  async #holder(): Promise<NodeLeaseValue | null> {
    const e = await this.#o.kv.get(this.#o.nodeId).catch(() => null);
    return e?.operation === 'PUT' ? parseLease(e.value) : null;
  }
}

/** A stored lease, or null when the value is not one. */
export function parseLease(value: Uint8Array): NodeLeaseValue | null {
  try {
    return NodeLeaseSchema.parse(decodeJson(value));
  } catch {
    return null;
  }
}
