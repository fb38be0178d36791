/**
 * Admission — how many new connections a node takes per second (token bucket). Past the
 * rate, handshakes get `connect_error` `overloaded` and clients retry with their jittered
 * backoff, which spreads a reconnect storm instead of letting it pile up on one node.
 */
export class Admission {
  readonly #perSecond: number;
  readonly #burst: number;
  #tokens: number;
  #refilledAt: number;

  /** `perSecond` 0 admits everything. `burst` defaults to one second's worth. */
  constructor(perSecond: number, burst = perSecond, now = Date.now()) {
    this.#perSecond = perSecond;
    this.#burst = Math.max(1, burst);
    this.#tokens = this.#burst;
    this.#refilledAt = now;
  }

  /** Takes one admission if available. O(1). */
  tryAdmit(now = Date.now()): boolean {
    if (this.#perSecond <= 0) return true;
    this.#tokens = Math.min(
      this.#burst,
      this.#tokens + ((now - this.#refilledAt) / 1000) * this.#perSecond,
    );
    this.#refilledAt = now;
    if (this.#tokens < 1) return false;
    this.#tokens -= 1;
    return true;
  }
}
