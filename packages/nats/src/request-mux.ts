/**
 * RequestMux — request/reply over one wildcard inbox subscription, for the per-message
 * path.
 *
 * nats.js' `request()` allocates an `Error` (with a captured stack) on every *successful*
 * request: `RequestOne.resolver()` calls `cancel()`, which always builds
 * `new RequestError("cancelled")` to reject an already-resolved promise. Under load that
 * was 10% of the push API's CPU. This mux does the same protocol work (a reply subject
 * under one inbox, "no responders" from the server's 503 status, a per-request timeout)
 * and allocates an error only when a request fails.
 */
import {
  createInbox,
  type Msg,
  type NatsConnection,
  NoRespondersError,
  type Subscription,
  TimeoutError,
} from '@nats-io/transport-node';

type Pending = {
  subject: string;
  resolve(msg: Msg): void;
  reject(err: Error): void;
  timer: NodeJS.Timeout;
};

export class RequestMux {
  readonly #nc: NatsConnection;
  readonly #prefix: string;
  readonly #sub: Subscription;
  readonly #pending = new Map<string, Pending>();
  #next = 0;

  constructor(nc: NatsConnection) {
    this.#nc = nc;
    this.#prefix = `${createInbox()}.`;
    this.#sub = nc.subscribe(`${this.#prefix}*`, {
      callback: (err, msg) => {
        if (err) return;
        this.#onReply(msg);
      },
    });
  }

  /**
   * Publishes `payload` on `subject` and resolves with the first reply; rejects with
   * `NoRespondersError` at once when nobody serves the subject, with `TimeoutError` after
   * `timeoutMs`, or with the publish error (closed connection, payload too large).
   */
  request(subject: string, payload: Uint8Array | string, timeoutMs: number): Promise<Msg> {
    return new Promise<Msg>((resolve, reject) => {
      const token = (this.#next++).toString(36);
      const timer = setTimeout(() => {
        if (this.#pending.delete(token)) reject(new TimeoutError());
      }, timeoutMs);
      this.#pending.set(token, { subject, resolve, reject, timer });
      try {
        this.#nc.publish(subject, payload, { reply: this.#prefix + token });
      } catch (err) {
        this.#pending.delete(token);
        clearTimeout(timer);
        reject(err as Error);
      }
    });
  }

  /** Requests waiting for a reply. */
  get pending(): number {
    return this.#pending.size;
  }

  /** Stops listening; requests still waiting are rejected. */
  close(): void {
    this.#sub.unsubscribe();
    for (const [token, p] of this.#pending) {
      this.#pending.delete(token);
      clearTimeout(p.timer);
      p.reject(new RequestMuxClosedError(p.subject));
    }
  }

  #onReply(msg: Msg): void {
    const token = msg.subject.slice(this.#prefix.length);
    const p = this.#pending.get(token);
    if (!p) return;
    this.#pending.delete(token);
    clearTimeout(p.timer);
    // The server answers a request nobody subscribes to with an empty 503 status message.
    if (msg.data.length === 0 && msg.headers?.code === 503) {
      p.reject(new NoRespondersError(p.subject));
      return;
    }
    p.resolve(msg);
  }
}

/** The multiplexer was closed (the app is stopping) before the request was answered. */
export class RequestMuxClosedError extends Error {
  constructor(readonly subject: string) {
    super(`request mux closed before ${subject} answered`);
    this.name = 'RequestMuxClosedError';
  }
}
