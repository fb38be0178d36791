/**
 * FallbackQueue — hands undelivered messages to OS push through the durable
 * `PUSH_FALLBACK` stream. A message counts as handed over only once JetStream acked it;
 * the message id + user id is the stream's dedup id, so a retried publish is stored once.
 */
import { type JetStreamClient, jetstream } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import type { FallbackMessage } from '@switchboard/protocol';
import { fallbackSubject } from '@switchboard/protocol';

const encoder = new TextEncoder();

export type FallbackQueueOptions = {
  /** Per-publish timeout (default 5 s). */
  timeoutMs?: number;
  /** How long a publish is retried while JetStream does not ack, e.g. during a leader election (default 10 s). */
  retryMs?: number;
};

/** The send's deadline passed before JetStream acked a hand-off. */
export class FallbackDeadlineError extends Error {
  constructor() {
    super('the send deadline passed before the fallback hand-off was acked');
    this.name = 'FallbackDeadlineError';
  }
}

export class FallbackQueue {
  readonly #js: JetStreamClient;
  readonly #retryMs: number;
  readonly #timeoutMs: number;

  constructor(nc: NatsConnection, options: FallbackQueueOptions = {}) {
    this.#timeoutMs = options.timeoutMs ?? 5_000;
    this.#js = jetstream(nc, { timeout: this.#timeoutMs });
    this.#retryMs = options.retryMs ?? 10_000;
  }

  /**
   * Stores one recipient's message durably, retrying for up to `retryMs` and never past
   * `deadline` (ms since the epoch: no attempt outlasts it); rejects when JetStream never
   * acked. Retries cannot store it twice: the dedup id is the same.
   */
  async enqueue(message: FallbackMessage, deadline = Infinity): Promise<void> {
    const subject = fallbackSubject(message.userId);
    const payload = encoder.encode(JSON.stringify(message));
    // Two API keys may use the same message id: the owner keeps their hand-offs apart.
    const msgID = `${message.owner ?? ''}:${message.id}:${message.userId}`;
    const until = Math.min(deadline, Date.now() + this.#retryMs);
    for (let attempt = 0; ; attempt++) {
      const left = until - Date.now();
      try {
        if (left <= 0 && attempt > 0) throw new FallbackDeadlineError();
        await this.#js.publish(subject, payload, {
          msgID,
          timeout: Math.max(1, Math.min(this.#timeoutMs, left)),
        });
        return;
      } catch (err) {
        if (Date.now() >= until) throw err;
        await new Promise((r) =>
          setTimeout(r, Math.min(1_000, 50 * 2 ** attempt, Math.max(0, until - Date.now()))),
        );
      }
    }
  }
}
