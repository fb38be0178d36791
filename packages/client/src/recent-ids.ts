/**
 * RecentIds — the ids of the last `capacity` distinct messages handed to handlers, and
 * whether each was handled (acked). Insertion-ordered `Map`: O(1) per message, the oldest
 * id is forgotten when a new one would pass the capacity.
 */
type Entry = { done: boolean; waiters: (() => void)[] | undefined };

export class RecentIds {
  readonly #entries = new Map<string, Entry>();
  constructor(readonly capacity: number) {}

  get size(): number {
    return this.#entries.size;
  }

  /**
   * `undefined` when `id` is new (it is remembered from now on), else a function that
   * calls `then` once the first copy is handled (at once when it already is).
   */
  check(id: string): ((then: () => void) => void) | undefined {
    if (this.capacity <= 0) return undefined;
    const seen = this.#entries.get(id);
    if (seen)
      return (then) => {
        if (seen.done) then();
        else if (seen.waiters) seen.waiters.push(then);
        else seen.waiters = [then];
      };
    if (this.#entries.size >= this.capacity) {
      const oldest = this.#entries.keys().next().value as string;
      this.#entries.delete(oldest);
    }
    this.#entries.set(id, { done: false, waiters: undefined });
    return undefined;
  }

  /** The first copy of `id` was handled: duplicates waiting for it are acked. */
  done(id: string): void {
    const e = this.#entries.get(id);
    if (!e || e.done) return;
    e.done = true;
    const waiters = e.waiters;
    e.waiters = undefined;
    if (waiters) for (const w of waiters) w();
  }
}
