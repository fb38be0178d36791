/**
 * LeaseTable — the set of live node leases, kept in memory from a KV watch.
 *
 * NATS 2.9 sends no marker when max_age removes a key, so a lease is alive while it was
 * last written less than the lease TTL ago (measured on this process's clock from when
 * the update arrived) and has not been deleted.
 */
import type { KV } from '@nats-io/kv';
import { NodeLease, type NodeLease as NodeLeaseValue } from '@switchboard/protocol/presence';
import { decodeJson } from './codec.js';

type Log = { warn(obj: object, msg: string): void };

export type LeaseTableOptions = {
  /** The `presence-nodes` bucket. */
  kv: KV;
  leaseTtlMs: number;
  log: Log;
  /** Longest wait for the initial snapshot before serving what has arrived. */
  initialLoadTimeoutMs?: number;
};

type Held = { lease: NodeLeaseValue; seenAt: number };

export class LeaseTable {
  readonly #o: LeaseTableOptions;
  readonly #leases = new Map<string, Held>();
  #stopWatch: (() => void) | undefined;

  private constructor(options: LeaseTableOptions) {
    this.#o = options;
  }

  /** Starts the watch and resolves once the current leases are loaded. */
  static async create(options: LeaseTableOptions): Promise<LeaseTable> {
    const table = new LeaseTable(options);
    await table.#start();
    return table;
  }

  async #start(): Promise<void> {
    const { kv } = this.#o;
    const iter = await kv.watch();
    this.#stopWatch = () => iter.stop();
    // Every entry up to the stream's last sequence at this point belongs to the snapshot.
    const status = await kv.status();
    const lastSeq = status.streamInfo.state.last_seq;
    let loaded: () => void = () => {};
    const ready = new Promise<void>((resolve) => {
      loaded = resolve;
    });
    if (status.streamInfo.state.messages === 0) loaded();
    void (async () => {
      for await (const e of iter) {
        if (e.operation === 'PUT') {
          try {
            const lease = NodeLease.parse(decodeJson(e.value));
            const seenAt = e.isUpdate ? Date.now() : Math.min(Date.now(), e.created.getTime());
            this.#leases.set(e.key, { lease, seenAt });
          } catch (err) {
            this.#o.log.warn({ err, key: e.key }, 'ignored a malformed node lease');
          }
        } else {
          this.#leases.delete(e.key);
        }
        if (e.revision >= lastSeq) loaded();
      }
    })();
    const timeout = setTimeout(loaded, this.#o.initialLoadTimeoutMs ?? 2_000);
    await ready;
    clearTimeout(timeout);
  }

  /** True when `nodeId`'s lease is alive and carries `epoch`. O(1), no I/O. */
  isAlive(nodeId: string, epoch: string, now = Date.now()): boolean {
    const held = this.#leases.get(nodeId);
    return (
      held !== undefined && held.lease.epoch === epoch && now - held.seenAt < this.#o.leaseTtlMs
    );
  }

  /** The lease of `nodeId` if alive (any epoch). */
  get(nodeId: string, now = Date.now()): NodeLeaseValue | undefined {
    const held = this.#leases.get(nodeId);
    return held && now - held.seenAt < this.#o.leaseTtlMs ? held.lease : undefined;
  }

  /** Every alive lease. */
  alive(now = Date.now()): NodeLeaseValue[] {
    const out: NodeLeaseValue[] = [];
    for (const held of this.#leases.values()) {
      if (now - held.seenAt < this.#o.leaseTtlMs) out.push(held.lease);
    }
    return out;
  }

  stop(): void {
    this.#stopWatch?.();
  }
}
