/** LocalSockets — this node's index userId → connected sockets. No I/O. */

export class LocalSockets<S extends { id: string }> {
  readonly #byUser = new Map<string, Set<S>>();
  #count = 0;

  /** Adds a socket; returns the user's connection count on this node afterwards. */
  add(userId: string, socket: S): number {
    let set = this.#byUser.get(userId);
    if (!set) {
      set = new Set();
      this.#byUser.set(userId, set);
    }
    if (!set.has(socket)) {
      set.add(socket);
      this.#count++;
    }
    return set.size;
  }

  /** Removes a socket; returns the user's connection count on this node afterwards. */
  remove(userId: string, socket: S): number {
    const set = this.#byUser.get(userId);
    if (!set?.delete(socket)) return set?.size ?? 0;
    this.#count--;
    if (set.size === 0) this.#byUser.delete(userId);
    return set.size;
  }

  /** The user's sockets on this node (empty when none). */
  get(userId: string): ReadonlySet<S> {
    return this.#byUser.get(userId) ?? EMPTY;
  }

  get connections(): number {
    return this.#count;
  }

  get users(): number {
    return this.#byUser.size;
  }

  /** Each user with its connection count on this node. */
  *counts(): IterableIterator<[string, number]> {
    for (const [userId, set] of this.#byUser) yield [userId, set.size];
  }
}

const EMPTY: ReadonlySet<never> = new Set();
