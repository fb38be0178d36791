/**
 * FallbackQueue — hands undelivered messages to OS push through the durable
 * `PUSH_FALLBACK` stream. A message counts as handed over only once JetStream acked it;
 * the message id + user id is the stream's dedup id, so a retried publish is stored once.
 */
import { type JetStreamClient, jetstream } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import type { FallbackMessage } from '@switchboard/protocol/fallback';
import { fallbackSubject } from '@switchboard/protocol/subjects';

const encoder = new TextEncoder();

export type FallbackQueueOptions = {
  /** Per-publish timeout (default 5 s). */
  timeoutMs?: number;
  /** How long a publish is retried while JetStream does not ack, e.g. during a leader election (default 10 s). */
  retryMs?: number;
};

export class FallbackQueue {
  readonly #js: JetStreamClient;
  readonly #retryMs: number;

  constructor(nc: NatsConnection, options: FallbackQueueOptions = {}) {
    this.#js = jetstream(nc, { timeout: options.timeoutMs ?? 5_000 });
    this.#retryMs = options.retryMs ?? 10_000;
  }

  /**
   * Stores one recipient's message durably, retrying for up to `retryMs`; rejects when
   * JetStream never acked. Retries cannot store it twice: the dedup id is the same.
   */
  async enqueue(message: FallbackMessage): Promise<void> {
    const subject = fallbackSubject(message.userId);
    const payload = encoder.encode(JSON.stringify(message));
    const msgID = `${message.id}:${message.userId}`;
    const deadline = Date.now() + this.#retryMs;
    for (let attempt = 0; ; attempt++) {
      try {
        await this.#js.publish(subject, payload, { msgID });
        return;
      } catch (err) {
        if (Date.now() >= deadline) throw err;
        await new Promise((r) => setTimeout(r, Math.min(1_000, 50 * 2 ** attempt)));
      }
    }
  }
}
