/**
 * PresenceMirror — the push API's in-memory copy of `presence-users`, fed by one KV watch,
 * so that routing a message costs no presence read.
 *
 * It holds only users with at least one node entry (memory grows with online users, not
 * with every user who ever connected) and answers from memory while it is caught up: the
 * last update it applied said nothing more was pending at the server. Behind, or for a
 * user it does not hold, it answers "ask KV" (`undefined`); the router then reads the
 * entry, so a miss costs one read and never a wrong "offline".
 *
 * The mirror may be a moment behind a user's newest connection on another node; the
 * node's reply stays the truth: a recipient the mirror routed that no node reached is read
 * again from KV before anyone calls it offline (see DeliveryRouter).
 */
import type { KV } from '@nats-io/kv';
import type { NodePresence } from '@switchboard/protocol';
import { readUserEntry } from './codec.js';
import { type SnapshotWatch, watchWithSnapshot } from './kv-snapshot-watch.js';

type Log = { warn(obj: object, msg: string): void };

export type PresenceMirrorOptions = {
  /** The `presence-users` bucket. */
  kv: KV;
  log: Log;
  /** Longest wait for the initial snapshot (default 5 s). */
  initialLoadTimeoutMs?: number;
};

export class PresenceMirror {
  /** userId → its node entries (only users with at least one). */
  readonly #users = new Map<string, Record<string, NodePresence>>();
  #caughtUp = false;
  #watch: SnapshotWatch | undefined;
  #skipped = 0;

  private constructor() {}

  /** Starts the watch and resolves once the current entries are loaded. */
  static async create(options: PresenceMirrorOptions): Promise<PresenceMirror> {
    const mirror = new PresenceMirror();
    let seen = false;
    mirror.#watch = await watchWithSnapshot(
      options.kv,
      (e) => {
        seen = true;
        // `delta`: messages still pending at the server after this one.
        mirror.#caughtUp = (e.delta ?? 0) === 0;
        let read: ReturnType<typeof readUserEntry>;
        try {
          read = readUserEntry(e);
        } catch (err) {
          mirror.#skipped++;
          options.log.warn({ err, key: e.key }, 'presence mirror: ignored a malformed entry');
          return;
        }
        const nodes = read.entry?.nodes;
        const userId = read.userId;
        if (nodes && Object.keys(nodes).length > 0) mirror.#users.set(userId, nodes);
        else mirror.#users.delete(userId);
      },
      options.initialLoadTimeoutMs ?? 5_000,
      options.log,
    );
    // An empty bucket sends nothing: the mirror is caught up from the start.
    if (!seen) mirror.#caughtUp = true;
    return mirror;
  }

  /**
   * The user's node entries from memory (not yet filtered by lease), or `undefined` when
   * the mirror cannot vouch for the answer (user not held, or updates still pending):
   * then ask KV.
   */
  nodes(userId: string): Record<string, NodePresence> | undefined {
    return this.#caughtUp ? this.#users.get(userId) : undefined;
  }

  /** True while the last applied update said nothing was pending at the server. */
  get caughtUp(): boolean {
    return this.#caughtUp;
  }

  /** Users held (those with at least one node entry). */
  get size(): number {
    return this.#users.size;
  }

  /** Entries ignored because their key or value was malformed. */
  get skipped(): number {
    return this.#skipped;
  }

  stop(): void {
    this.#watch?.stop();
  }
}
