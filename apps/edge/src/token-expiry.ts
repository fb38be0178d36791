/**
 * TokenExpiry — when each socket's token runs out. A socket is warned once,
 * `warningMs` before its token expires (the client may then refresh it), and closed when
 * it expires. One timer per node, not per socket: sockets are bucketed by the second of
 * their next event and a 1 s tick takes the buckets that are due, so 100,000 sockets cost
 * one interval and a Map of Sets. Events fire up to one tick late.
 */
export type TokenExpiryOptions<S> = {
  warningMs: number;
  onWarn(socket: S, expiresAt: number): void;
  onExpire(socket: S): void;
  /** Tick period (default 1 s; tests shorten it). */
  tickMs?: number;
  clock?: () => number;
};

type Entry = { expiresAt: number; warned: boolean; slot: number };

export class TokenExpiry<S> {
  readonly #o: TokenExpiryOptions<S>;
  readonly #now: () => number;
  readonly #tick: number;
  readonly #entries = new Map<S, Entry>();
  readonly #slots = new Map<number, Set<S>>();
  #timer: NodeJS.Timeout | undefined;
  #swept: number;

  constructor(options: TokenExpiryOptions<S>) {
    this.#o = options;
    this.#now = options.clock ?? Date.now;
    this.#tick = options.tickMs ?? 1_000;
    this.#swept = Math.floor(this.#now() / this.#tick);
  }

  get size(): number {
    return this.#entries.size;
  }

  start(): void {
    if (this.#timer) return;
    this.#timer = setInterval(() => this.sweep(), this.#tick);
    this.#timer.unref();
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** Tracks `socket` until `expiresAt` (replacing what was tracked, as after a refresh). */
  track(socket: S, expiresAt: number): void {
    this.untrack(socket);
    const warned = expiresAt - this.#o.warningMs <= this.#now();
    const entry: Entry = { expiresAt, warned, slot: 0 };
    this.#entries.set(socket, entry);
    if (warned) this.#o.onWarn(socket, expiresAt);
    this.#place(socket, entry);
  }

  untrack(socket: S): void {
    const entry = this.#entries.get(socket);
    if (!entry) return;
    this.#entries.delete(socket);
    const slot = this.#slots.get(entry.slot);
    slot?.delete(socket);
    if (slot?.size === 0) this.#slots.delete(entry.slot);
  }

  /** Fires every event due by now (the interval calls this). */
  sweep(): void {
    const now = this.#now();
    const last = Math.floor(now / this.#tick);
    for (let slot = this.#swept; slot <= last; slot++) {
      const due = this.#slots.get(slot);
      if (!due) continue;
      this.#slots.delete(slot);
      for (const socket of due) {
        const entry = this.#entries.get(socket);
        if (!entry) continue;
        if (!entry.warned && entry.expiresAt - this.#o.warningMs <= now) {
          entry.warned = true;
          this.#o.onWarn(socket, entry.expiresAt);
        }
        if (entry.expiresAt <= now) {
          this.#entries.delete(socket);
          this.#o.onExpire(socket);
        } else this.#place(socket, entry);
      }
    }
    this.#swept = last;
  }

  #place(socket: S, entry: Entry): void {
    const at = entry.warned ? entry.expiresAt : entry.expiresAt - this.#o.warningMs;
    // Never into a slot already swept: the earliest is the current one.
    entry.slot = Math.max(this.#swept, Math.ceil(at / this.#tick));
    let slot = this.#slots.get(entry.slot);
    if (!slot) {
      slot = new Set();
      this.#slots.set(entry.slot, slot);
    }
    slot.add(socket);
  }
}
