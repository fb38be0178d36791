/**
 * FallbackWorker — consumes `PUSH_FALLBACK` through the durable pull consumer `os-push`
 * (work-queue: several workers share the load) and hands each message to a sender.
 * A message is acked only after the sender succeeded; a failure is nak'ed with a delay
 * and redelivered.
 */
import { AckPolicy, type ConsumerMessages, jetstream, jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { FallbackMessage } from '@switchboard/protocol/fallback';
import { Streams } from '@switchboard/protocol/subjects';
import type { Logger } from 'pino';

export const CONSUMER_NAME = 'os-push';

/** Sends one message to the user's devices; throws to have it retried. */
export type FallbackSender = (message: FallbackMessage) => Promise<void>;

export type FallbackWorkerOptions = {
  nc: NatsConnection;
  send: FallbackSender;
  log: Logger;
  /** Redelivery delay after a failure. */
  retryDelayMs?: number;
};

export class FallbackWorker {
  readonly #o: FallbackWorkerOptions;
  #messages: ConsumerMessages | undefined;
  #done: Promise<void> | undefined;

  constructor(options: FallbackWorkerOptions) {
    this.#o = options;
  }

  /** Creates the durable consumer if needed and starts consuming. */
  async start(): Promise<void> {
    const jsm = await jetstreamManager(this.#o.nc);
    await jsm.consumers.add(Streams.fallback, {
      durable_name: CONSUMER_NAME,
      ack_policy: AckPolicy.Explicit,
      ack_wait: 60_000_000_000,
      max_deliver: 10,
    });
    const consumer = await jetstream(this.#o.nc).consumers.get(Streams.fallback, CONSUMER_NAME);
    const messages = await consumer.consume({ max_messages: 64 });
    this.#messages = messages;
    this.#done = (async () => {
      for await (const m of messages) {
        let message: FallbackMessage;
        try {
          message = FallbackMessage.parse(m.json());
        } catch (err) {
          this.#o.log.error({ err, seq: m.seq }, 'malformed fallback message, terminated');
          m.term('malformed');
          continue;
        }
        try {
          await this.#o.send(message);
          m.ack();
        } catch (err) {
          this.#o.log.warn(
            { err, id: message.id, userId: message.userId },
            'fallback send failed, will retry',
          );
          m.nak(this.#o.retryDelayMs ?? 5_000);
        }
      }
    })();
  }

  async stop(): Promise<void> {
    await this.#messages?.close();
    await this.#done;
  }
}
