/**
 * PresenceReader — answers "where is this user connected?" with one KV read, counting
 * only the nodes whose lease is alive with the same epoch.
 */
import type { KV } from '@nats-io/kv';
import type { PresenceView, UserEntry } from '@switchboard/protocol';
import { encodeUserKey } from '@switchboard/protocol';
import { runPool } from '@switchboard/runtime';
import { decodeJson } from './codec.js';
import type { LeaseTable } from './lease-table.js';

export type PresenceReaderOptions = {
  /** The `presence-users` bucket. */
  kv: KV;
  leases: LeaseTable;
  /** Concurrent KV reads of a multi-user lookup (default 256). */
  readConcurrency?: number;
};

export class PresenceReader {
  readonly #o: PresenceReaderOptions;

  constructor(options: PresenceReaderOptions) {
    this.#o = options;
  }

  /**
   * The user's live presence; one KV read, no node is asked. A node listed under an epoch
   * the lease table has not seen (neither alive nor dead: it just rolled its epoch) has its
   * lease read first, so a reader never calls a user offline for a watch that lags.
   */
  async lookup(userId: string): Promise<PresenceView> {
    const e = await this.#o.kv.get(encodeUserKey(userId));
    const entry = e && e.operation === 'PUT' ? decodeJson<UserEntry>(e.value) : null;
    if (entry) {
      const { leases } = this.#o;
      const unknown: Promise<void>[] = [];
      for (const nodeId in entry.nodes) {
        const { epoch } = entry.nodes[nodeId]!;
        if (leases.isAlive(nodeId, epoch) || leases.isDead(nodeId, epoch)) continue;
        unknown.push(leases.refresh(nodeId));
      }
      if (unknown.length > 0) await Promise.all(unknown);
    }
    return this.view(userId, entry);
  }

  /** {@link lookup} for many users, reads pipelined with bounded concurrency; order kept. */
  async lookupMany(userIds: readonly string[]): Promise<PresenceView[]> {
    const out = new Array<PresenceView>(userIds.length);
    await runPool(userIds, this.#o.readConcurrency ?? 256, async (userId, i) => {
      out[i] = await this.lookup(userId);
    });
    return out;
  }

  /** The ids of the nodes in `nodes` whose lease is alive with the same epoch. No I/O. */
  aliveNodeIds(nodes: UserEntry['nodes']): string[] {
    const out: string[] = [];
    for (const nodeId in nodes) {
      if (this.#o.leases.isAlive(nodeId, nodes[nodeId]!.epoch)) out.push(nodeId);
    }
    return out;
  }

  /** Filters a stored entry down to the nodes that are alive with the entry's epoch. */
  view(userId: string, entry: UserEntry | null, now?: number): PresenceView {
    const nodes: PresenceView['nodes'] = [];
    let connections = 0;
    if (entry) {
      for (const [nodeId, n] of Object.entries(entry.nodes)) {
        if (!this.#o.leases.isAlive(nodeId, n.epoch, now)) continue;
        nodes.push({ nodeId, connections: n.connections, since: n.since });
        connections += n.connections;
      }
    }
    const view: PresenceView = { userId, online: nodes.length > 0, connections, nodes };
    const lastSeen = entry?.lastSeen;
    if (lastSeen !== undefined && nodes.length === 0) view.lastSeen = lastSeen;
    return view;
  }
}
