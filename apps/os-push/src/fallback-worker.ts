/**
 * FallbackWorker — consumes `PUSH_FALLBACK` through the durable pull consumer `os-push`
 * (work queue: several workers share the load) and sends each message to every device of
 * its user through the device's provider.
 *
 * - A message is acked only when every device has a final result (accepted, token removed,
 *   or rejected for good); otherwise it is nak'ed with backoff, honouring `Retry-After`.
 * - Each device result is recorded in `PUSH_STATUS` before the ack; a redelivery skips the
 *   devices that already have a final result, so an accepted device is not sent twice.
 * - After `maxAttempts` deliveries the message goes to `PUSH_FALLBACK_DLQ` with the reason.
 */
import {
  AckPolicy,
  type ConsumerMessages,
  type JsMsg,
  jetstream,
  jetstreamManager,
} from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import type { DeviceRegistry } from '@switchboard/device-registry/device-registry';
import { readStatus, recordStatusDurably } from '@switchboard/nats/status-stream';
import type { Device, Platform } from '@switchboard/protocol/devices';
import { type DeadLetter, FallbackMessage } from '@switchboard/protocol/fallback';
import type { ProviderRecord } from '@switchboard/protocol/status';
import { dlqSubject, Streams } from '@switchboard/protocol/subjects';
import type { Logger } from 'pino';
import { Counter, type Registry } from 'prom-client';
import type { PushProvider, SendResult } from './providers/push-provider.js';

export const CONSUMER_NAME = 'os-push';
/** The longest `Retry-After` a provider can impose. */
const MAX_RETRY_AFTER_MS = 60 * 60 * 1000;

export type FallbackWorkerOptions = {
  nc: NatsConnection;
  devices: DeviceRegistry;
  providers: Record<Platform, PushProvider>;
  log: Logger;
  /** Deliveries of one message before it is dead-lettered (default 8). */
  maxAttempts?: number;
  /** First retry delay; doubles per attempt up to `retryMaxMs` (defaults 1 s, 5 min). */
  retryBaseMs?: number;
  retryMaxMs?: number;
  /** Messages processed at once (default 32). */
  concurrency?: number;
  /** How long a message may stay unacked before redelivery (default 60 s). */
  ackWaitMs?: number;
  /** Prometheus registry for the worker's counters. */
  registry?: Registry;
};

export type WorkerStats = { acked: number; retried: number; deadLettered: number; sends: number };

export class FallbackWorker {
  readonly #o: Required<
    Omit<FallbackWorkerOptions, 'nc' | 'devices' | 'providers' | 'log' | 'registry'>
  > &
    Pick<FallbackWorkerOptions, 'nc' | 'devices' | 'providers' | 'log'>;
  readonly #sends: Counter<'platform' | 'outcome'> | undefined;
  readonly #messagesDone: Counter<'outcome'> | undefined;
  readonly stats: WorkerStats = { acked: 0, retried: 0, deadLettered: 0, sends: 0 };
  #messages: ConsumerMessages | undefined;
  #loop: Promise<void> | undefined;
  readonly #inFlight = new Set<Promise<void>>();

  constructor(options: FallbackWorkerOptions) {
    if (options.registry) {
      this.#sends = new Counter({
        name: 'switchboard_os_push_sends_total',
        help: 'Provider sends by platform and outcome (accepted, invalid-token, retry, rejected)',
        labelNames: ['platform', 'outcome'],
        registers: [options.registry],
      });
      this.#messagesDone = new Counter({
        name: 'switchboard_os_push_messages_total',
        help: 'Fallback messages by how they ended: acked, retried (nak), dead-lettered',
        labelNames: ['outcome'],
        registers: [options.registry],
      });
    }
    this.#o = {
      maxAttempts: 8,
      retryBaseMs: 1_000,
      retryMaxMs: 300_000,
      concurrency: 32,
      ackWaitMs: 60_000,
      ...options,
    };
  }

  /** Creates (or updates) the durable consumer and starts consuming. */
  async start(): Promise<void> {
    const jsm = await jetstreamManager(this.#o.nc);
    const config = {
      ack_policy: AckPolicy.Explicit,
      ack_wait: this.#o.ackWaitMs * 1_000_000,
      // The worker dead-letters by itself; the server never drops a message.
      max_deliver: -1,
      max_ack_pending: 10_000,
    };
    try {
      await jsm.consumers.info(Streams.fallback, CONSUMER_NAME);
      await jsm.consumers.update(Streams.fallback, CONSUMER_NAME, config);
    } catch (err) {
      if (!/consumer not found/i.test((err as Error).message)) throw err;
      await jsm.consumers.add(Streams.fallback, { durable_name: CONSUMER_NAME, ...config });
    }
    const consumer = await jetstream(this.#o.nc).consumers.get(Streams.fallback, CONSUMER_NAME);
    const messages = await consumer.consume({ max_messages: this.#o.concurrency * 2 });
    this.#messages = messages;
    this.#loop = (async () => {
      for await (const m of messages) {
        while (this.#inFlight.size >= this.#o.concurrency) await Promise.race(this.#inFlight);
        const p: Promise<void> = this.#process(m)
          .catch((err: unknown) => {
            this.#o.log.error({ err, seq: m.seq }, 'fallback processing failed, will retry');
            m.nak(this.#o.retryBaseMs);
          })
          .finally(() => this.#inFlight.delete(p));
        this.#inFlight.add(p);
      }
    })();
  }

  #done(outcome: 'acked' | 'retried' | 'deadLettered'): void {
    this.stats[outcome]++;
    this.#messagesDone?.inc({ outcome });
  }

  /** Stops taking messages and waits for those in hand. */
  async stop(): Promise<void> {
    await this.#messages?.close();
    await this.#loop;
    await Promise.all(this.#inFlight);
  }

  async #process(m: JsMsg): Promise<void> {
    const parsed = FallbackMessage.safeParse(m.json());
    if (!parsed.success) {
      this.#o.log.error(
        { seq: m.seq, issues: parsed.error.issues },
        'malformed fallback message, terminated',
      );
      m.term('malformed');
      return;
    }
    const message = parsed.data;
    const attempt = m.info.deliveryCount;
    const record = (r: Omit<ProviderRecord, 'kind' | 'id' | 'userId' | 'at' | 'attempt'>) =>
      recordStatusDurably(this.#o.nc, {
        kind: 'provider',
        id: message.id,
        userId: message.userId,
        at: Date.now(),
        attempt,
        ...r,
      });

    const devices = await this.#o.devices.list(message.userId);
    if (devices.length === 0) {
      await record({ outcome: 'no-devices' });
      m.ack();
      this.#done('acked');
      return;
    }
    const settled = attempt > 1 ? await this.#settledDevices(message) : new Set<string>();
    const todo = devices.filter((d) => !settled.has(d.deviceId));
    const results = await Promise.all(
      todo.map(async (device) => {
        this.stats.sends++;
        const result = await this.#o.providers[device.platform].send(device, message);
        this.#sends?.inc({ platform: device.platform, outcome: result.outcome });
        await this.#recordResult(message.userId, device, result, record);
        return { device, result };
      }),
    );
    const retries = results.filter((r) => r.result.outcome === 'retry') as Array<{
      device: Device;
      result: Extract<SendResult, { outcome: 'retry' }>;
    }>;
    if (retries.length === 0) {
      m.ack();
      this.#done('acked');
      return;
    }
    if (attempt >= this.#o.maxAttempts) {
      await this.#deadLetter(message, attempt, retries);
      await record({ outcome: 'dead-lettered', detail: `gave up after ${attempt} attempts` });
      m.ack();
      this.#done('deadLettered');
      return;
    }
    const backoff = Math.min(this.#o.retryMaxMs, this.#o.retryBaseMs * 2 ** (attempt - 1));
    // A provider's Retry-After wins over our own (capped) backoff, up to an hour.
    const asked = Math.min(
      MAX_RETRY_AFTER_MS,
      Math.max(0, ...retries.map((r) => r.result.retryAfterMs ?? 0)),
    );
    m.nak(Math.max(backoff, asked));
    this.#done('retried');
  }

  async #recordResult(
    userId: string,
    device: Device,
    result: SendResult,
    record: (r: Omit<ProviderRecord, 'kind' | 'id' | 'userId' | 'at' | 'attempt'>) => Promise<void>,
  ): Promise<void> {
    const where = { deviceId: device.deviceId, platform: device.platform };
    switch (result.outcome) {
      case 'accepted':
        return record({
          outcome: 'accepted',
          ...where,
          ...(result.detail ? { detail: result.detail } : {}),
        });
      case 'rejected':
        return record({ outcome: 'rejected', ...where, detail: result.detail });
      case 'retry':
        return record({ outcome: 'retry', ...where, detail: result.detail });
      case 'invalid-token': {
        const removed = await this.#o.devices.removeIfToken(userId, device.deviceId, device.token);
        return record({
          outcome: 'device-removed',
          ...where,
          detail: removed ? result.detail : `${result.detail} (already replaced or removed)`,
        });
      }
    }
  }

  /** Devices of this message that already have a final result (from an earlier delivery). */
  async #settledDevices(message: FallbackMessage): Promise<Set<string>> {
    const records = await readStatus(this.#o.nc, message.id, message.userId);
    const done = new Set<string>();
    for (const r of records) {
      if (
        r.kind === 'provider' &&
        r.deviceId &&
        (r.outcome === 'accepted' || r.outcome === 'rejected' || r.outcome === 'device-removed')
      ) {
        done.add(r.deviceId);
      }
    }
    return done;
  }

  async #deadLetter(
    message: FallbackMessage,
    attempts: number,
    retries: Array<{ device: Device; result: Extract<SendResult, { outcome: 'retry' }> }>,
  ): Promise<void> {
    const letter: DeadLetter = {
      message,
      reason: `attempts exhausted (${attempts}): ${retries.map((r) => `${r.device.deviceId}: ${r.result.detail}`).join('; ')}`,
      attempts,
      failedAt: Date.now(),
      devices: retries.map((r) => ({
        deviceId: r.device.deviceId,
        platform: r.device.platform,
        detail: r.result.detail,
      })),
    };
    await jetstream(this.#o.nc).publish(dlqSubject(message.userId), JSON.stringify(letter), {
      msgID: `${message.id}:${message.userId}`,
    });
  }
}
