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

export class FallbackQueue {
  readonly #js: JetStreamClient;

  constructor(nc: NatsConnection, options: { timeoutMs?: number } = {}) {
    this.#js = jetstream(nc, { timeout: options.timeoutMs ?? 5_000 });
  }

  /** Stores one recipient's message durably; rejects when JetStream did not ack. */
  async enqueue(message: FallbackMessage): Promise<void> {
    await this.#js.publish(
      fallbackSubject(message.userId),
      encoder.encode(JSON.stringify(message)),
      {
        msgID: `${message.id}:${message.userId}`,
      },
    );
  }
}
