/**
 * IpAdmission — handshakes taken per client address per second (a token bucket each), so
 * one source cannot spend the node's signature checks. Buckets of addresses not seen for
 * a while are dropped, and the table is capped: past `maxAddresses` distinct addresses in
 * one sweep interval, new addresses are refused until the next sweep (a spoofed-address
 * flood cannot grow memory).
 */
import { Admission } from './admission.js';

export class IpAdmission {
  readonly #perSecond: number;
  readonly #burst: number;
  readonly #maxAddresses: number;
  readonly #buckets = new Map<string, { bucket: Admission; seen: number }>();
  #sweptAt: number;

  /** `perSecond` 0 admits everything. */
  constructor(perSecond: number, options: { burst?: number; maxAddresses?: number } = {}) {
    this.#perSecond = perSecond;
    this.#burst = options.burst ?? Math.max(1, perSecond * 2);
    this.#maxAddresses = options.maxAddresses ?? 100_000;
    this.#sweptAt = Date.now();
  }

  get addresses(): number {
    return this.#buckets.size;
  }

  /** Takes one handshake for `address` if its rate allows. */
  tryAdmit(address: string, now = Date.now()): boolean {
    if (this.#perSecond <= 0) return true;
    // A bucket idle for 10 s is full again: forgetting it changes nothing.
    if (now - this.#sweptAt >= 10_000) this.#sweep(now);
    let entry = this.#buckets.get(address);
    if (!entry) {
      if (this.#buckets.size >= this.#maxAddresses) return false;
      entry = { bucket: new Admission(this.#perSecond, this.#burst, now), seen: now };
      this.#buckets.set(address, entry);
    }
    entry.seen = now;
    return entry.bucket.tryAdmit(now);
  }

  #sweep(now: number): void {
    this.#sweptAt = now;
    const idle = Math.max(10_000, (this.#burst / this.#perSecond) * 1000);
    for (const [address, entry] of this.#buckets)
      if (now - entry.seen >= idle) this.#buckets.delete(address);
  }
}
