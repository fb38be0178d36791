/**
 * NodeLease — an edge node's liveness record in `presence-nodes`.
 *
 * One KV put per heartbeat whatever the node's user count. The bucket's max_age equals
 * the lease TTL, so a node that stops heartbeating disappears by itself within the TTL;
 * the epoch (fresh per process start) fences the user entries the node wrote.
 */
import type { KV } from '@nats-io/kv';
import type { NodeLease as NodeLeaseValue } from '@switchboard/protocol/presence';
import { encodeJson } from './codec.js';

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
   * Called when heartbeats failed for a whole TTL (the lease may have expired and the
   * node's entries been cleaned up): returns the fresh epoch to continue under.
   */
  onLapse?: () => string;
};

export class NodeLease {
  readonly #o: NodeLeaseOptions;
  readonly #startedAt = Date.now();
  #epoch: string;
  #lastOkAt = 0;
  #timer: NodeJS.Timeout | undefined;
  #draining = false;
  #beating: Promise<void> | undefined;

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

  /** Writes the lease once (awaited: the node is not alive before), then heartbeats. */
  async start(): Promise<void> {
    await this.#put();
    this.#timer = setInterval(() => {
      // Skip a beat rather than pile up writes when NATS is slow.
      if (this.#beating) return;
      this.#beating = this.#put()
        .catch((err: unknown) => this.#o.log.warn({ err }, 'lease heartbeat failed'))
        .finally(() => {
          this.#beating = undefined;
        });
    }, this.heartbeatIntervalMs);
    this.#timer.unref();
  }

  /** Marks the lease draining at once, so routers and presence can see the node leaving. */
  async markDraining(): Promise<void> {
    this.#draining = true;
    await this.#put();
  }

  /** Stops heartbeating and deletes the lease: the node's entries stop counting at once. */
  async stop(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
    await this.#beating;
    await this.#o.kv.delete(this.#o.nodeId);
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

  async #put(): Promise<void> {
    if (
      this.#lastOkAt > 0 &&
      Date.now() - this.#lastOkAt >= this.#o.leaseTtlMs &&
      this.#o.onLapse
    ) {
      const previous = this.#epoch;
      this.#epoch = this.#o.onLapse();
      this.#o.log.warn(
        { previous, epoch: this.#epoch },
        'lease lapsed: continuing under a new epoch',
      );
    }
    await this.#o.kv.put(this.#o.nodeId, encodeJson(this.value()));
    this.#lastOkAt = Date.now();
  }
}
