/**
 * FallbackWorker — consumes `PUSH_FALLBACK` through the durable pull consumer `os-push`
 * (work queue: several workers share the load) and sends each message to every device of
 * its user through the device's provider.
 *
 * - A message is acked only when every device has a final result (accepted, token removed,
 *   or rejected for good); otherwise it is nak'ed with backoff, honouring `Retry-After`.
 *   Every failure path (a provider's retry, an error of our own) backs off the same way.
 * - Before a nak, the devices' results so far go to {@link DeliveryProgress}; a redelivery
 *   reads them (one KV get) and skips the devices already settled.
 * - Each device result is also recorded in `PUSH_STATUS` for `GET /v1/messages/:id`. That
 *   record is best effort: one that cannot be stored is logged and counted, and changes
 *   nothing about the delivery (it used to fail the message, which was then sent forever).
 * - After `maxAttempts` deliveries the message goes to `PUSH_FALLBACK_DLQ` with the reason.
 *   A delivery past `maxAttempts` (the dead letter failed) only dead-letters, never sends.
 *   The consumer's `max_deliver` (`maxAttempts + DEAD_LETTER_EXTRA_DELIVERIES`) is the
 *   backstop for a worker that dies on a message: the server's max-deliveries advisory is
 *   handled by one worker, which dead-letters the message from the stream or logs and counts it.
 */
import {
  AckPolicy,
  type Consumer,
  type ConsumerMessages,
  type JsMsg,
  jetstream,
  jetstreamManager,
} from '@nats-io/jetstream';
import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import type { DeviceRegistry } from '@switchboard/device-registry';
import { recordStatusDurably } from '@switchboard/message-status';
import { isConsumerNotFound } from '@switchboard/nats';
import type { Device, Platform, ProviderRecord } from '@switchboard/protocol';
import { type DeadLetter, dlqSubject, FallbackMessage, Streams } from '@switchboard/protocol';
import type { Logger } from 'pino';
import { Counter, type Registry } from 'prom-client';
import {
  type DeliveryProgress,
  type DeviceOutcome,
  emptyProgress,
  isSettled,
  type Progress,
} from './delivery-progress.js';
import type { OsPushMetrics } from './metrics.js';
import type { PushProvider, SendResult } from './providers/push-provider.js';

export const CONSUMER_NAME = 'os-push';
/** The longest `Retry-After` a provider can impose. */
const MAX_RETRY_AFTER_MS = 60 * 60 * 1000;
/**
 * Deliveries the server makes past `maxAttempts` before it gives up (`max_deliver`): room
 * for a dead letter that failed to be retried, with backoff, before the advisory path.
 */
export const DEAD_LETTER_EXTRA_DELIVERIES = 2;
/** The server's advisory when a message of our consumer reached `max_deliver`. */
export const MAX_DELIVERIES_ADVISORY = `$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.${Streams.fallback}.${CONSUMER_NAME}`;
/** How long one pull waits for messages before the worker pulls again. */
const PULL_EXPIRES_MS = 10_000;
/** The pause before pulling again after a pull failed (NATS away, consumer being recreated). */
const PULL_RETRY_MS = 1_000;
/** At most one warning per stage and interval for repeated failures: the log must not become the overload. */
const FAILURE_WARN_INTERVAL_MS = 10_000;

/** Where a failure happened, as counted by `switchboard_os_push_failures_total{stage}`. */
export const FAILURE_STAGES = [
  'status-write',
  'progress-read',
  'progress-write',
  'device-remove',
  'dead-letter',
  'malformed',
  'processing',
  'pull',
] as const;
export type FailureStage = (typeof FAILURE_STAGES)[number];

export type FallbackWorkerOptions = {
  nc: NatsConnection;
  devices: DeviceRegistry;
  /** Per-device results of messages being retried. */
  progress: DeliveryProgress;
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
  /** Status records and provider call times (metrics.ts). */
  metrics?: Pick<OsPushMetrics, 'statusRecords' | 'sendSeconds'>;
};

export type WorkerStats = {
  acked: number;
  retried: number;
  deadLettered: number;
  sends: number;
  /** Failures by stage (also `switchboard_os_push_failures_total`). */
  failures: Partial<Record<FailureStage, number>>;
  /** Max-deliveries advisories handled: dead-lettered from the stream, or failed (logged). */
  maxDeliveries: { deadLettered: number; failed: number };
};

type Retry = { device: Device; result: Extract<SendResult, { outcome: 'retry' }> };
type RecordFn = (
  r: Omit<ProviderRecord, 'kind' | 'id' | 'userId' | 'at' | 'attempt'>,
) => Promise<void>;

export class FallbackWorker {
  readonly #o: Required<
    Omit<
      FallbackWorkerOptions,
      'nc' | 'devices' | 'providers' | 'log' | 'registry' | 'progress' | 'metrics'
    >
  > &
    Pick<FallbackWorkerOptions, 'nc' | 'devices' | 'providers' | 'log' | 'progress' | 'metrics'>;
  readonly #sends: Counter<'platform' | 'outcome'> | undefined;
  readonly #messagesDone: Counter<'outcome'> | undefined;
  readonly #failures: Counter<'stage'> | undefined;
  readonly #maxDeliveries: Counter<'outcome'> | undefined;
  readonly stats: WorkerStats = {
    acked: 0,
    retried: 0,
    deadLettered: 0,
    sends: 0,
    failures: {},
    maxDeliveries: { deadLettered: 0, failed: 0 },
  };
  #batch: ConsumerMessages | undefined;
  #stopping = false;
  #advisories: Subscription | undefined;
  #loop: Promise<void> | undefined;
  readonly #inFlight = new Set<Promise<void>>();
  readonly #lastWarnAt = new Map<FailureStage, number>();
  readonly #suppressed = new Map<FailureStage, number>();

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
      this.#failures = new Counter({
        name: 'switchboard_os_push_failures_total',
        help: 'Failures by stage: status-write, progress-read, progress-write, device-remove, dead-letter, malformed, processing, pull',
        labelNames: ['stage'],
        registers: [options.registry],
      });
      this.#maxDeliveries = new Counter({
        name: 'switchboard_os_push_max_deliveries_total',
        help: 'Messages the server stopped delivering (max_deliver): dead-lettered from the stream, or failed (logged with the stream sequence, kept in the stream)',
        labelNames: ['outcome'],
        registers: [options.registry],
      });
      // Present at 0 so alerts can use rate() from the start.
      this.#maxDeliveries.inc({ outcome: 'failed' }, 0);
      this.#maxDeliveries.inc({ outcome: 'dead-lettered' }, 0);
      for (const stage of FAILURE_STAGES) this.#failures.inc({ stage }, 0);
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

  /** The consumer's `max_deliver`: the server's backstop past the worker's own attempts. */
  get maxDeliver(): number {
    return this.#o.maxAttempts + DEAD_LETTER_EXTRA_DELIVERIES;
  }

  /** Creates (or updates) the durable consumer and starts consuming. */
  async start(): Promise<void> {
    const jsm = await jetstreamManager(this.#o.nc);
    const config = {
      ack_policy: AckPolicy.Explicit,
      ack_wait: this.#o.ackWaitMs * 1_000_000,
      max_deliver: this.maxDeliver,
      max_ack_pending: 10_000,
    };
    try {
      await jsm.consumers.info(Streams.fallback, CONSUMER_NAME);
      await jsm.consumers.update(Streams.fallback, CONSUMER_NAME, config);
    } catch (err) {
      if (!isConsumerNotFound(err)) throw err;
      await jsm.consumers.add(Streams.fallback, { durable_name: CONSUMER_NAME, ...config });
    }
    // One worker of the group handles each advisory (core NATS: a worker must be connected).
    this.#advisories = this.#o.nc.subscribe(MAX_DELIVERIES_ADVISORY, {
      queue: CONSUMER_NAME,
      callback: (err, msg) => {
        if (err) {
          this.#o.log.error({ err }, 'max-deliveries advisory subscription failed');
          return;
        }
        void this.#onMaxDeliveries(msg.data);
      },
    });
    const consumer = await jetstream(this.#o.nc).consumers.get(Streams.fallback, CONSUMER_NAME);
    this.#loop = this.#pullLoop(consumer);
  }

  /**
   * Pulls only as many messages as there are free processing slots, once at least half of
   * them are free. A message's ack wait runs from its delivery: one waiting in a client-side
   * buffer behind the worker's slots (what `consume()` does: it pulls again as messages
   * arrive, not as they are processed) would be redelivered to another worker and sent
   * twice whenever a backlog takes longer than `ackWaitMs` to work through. Pulling this
   * way also leaves a backlog's messages in the stream for the other workers.
   */
  async #pullLoop(consumer: Consumer): Promise<void> {
    const pullAt = Math.floor(this.#o.concurrency / 2);
    while (!this.#stopping) {
      while (this.#inFlight.size > pullAt) await Promise.race(this.#inFlight);
      if (this.#stopping) break;
      try {
        const batch = await consumer.fetch({
          max_messages: this.#o.concurrency - this.#inFlight.size,
          expires: PULL_EXPIRES_MS,
        });
        this.#batch = batch;
        for await (const m of batch) this.#dispatch(m);
      } catch (err) {
        if (this.#stopping) break;
        this.#fail('pull', { err }, 'pulling fallback messages failed, retrying');
        await new Promise((r) => setTimeout(r, PULL_RETRY_MS));
      } finally {
        this.#batch = undefined;
      }
    }
  }

  #dispatch(m: JsMsg): void {
    const p: Promise<void> = this.#process(m)
      .catch((err: unknown) => {
        // #process handles its own failures; this is a bug's last line, still bounded by max_deliver.
        this.#fail('processing', { err, seq: m.seq }, 'fallback processing failed');
        m.nak(this.#backoff(m.info.deliveryCount));
      })
      .finally(() => this.#inFlight.delete(p));
    this.#inFlight.add(p);
  }

  #done(outcome: 'acked' | 'retried' | 'deadLettered'): void {
    this.stats[outcome]++;
    this.#messagesDone?.inc({ outcome });
  }

  /** Logs (rate-limited per stage) and counts a failure; never throws. */
  #fail(stage: FailureStage, context: Record<string, unknown>, message: string): void {
    this.stats.failures[stage] = (this.stats.failures[stage] ?? 0) + 1;
    this.#failures?.inc({ stage });
    const now = Date.now();
    if (now - (this.#lastWarnAt.get(stage) ?? 0) < FAILURE_WARN_INTERVAL_MS) {
      this.#suppressed.set(stage, (this.#suppressed.get(stage) ?? 0) + 1);
      return;
    }
    const suppressed = this.#suppressed.get(stage) ?? 0;
    this.#lastWarnAt.set(stage, now);
    this.#suppressed.delete(stage);
    this.#o.log.error(
      { ...context, stage, ...(suppressed ? { suppressedSinceLastLog: suppressed } : {}) },
      message,
    );
  }

  /** Stops taking messages and waits for those in hand. */
  async stop(): Promise<void> {
    this.#stopping = true;
    this.#advisories?.unsubscribe();
    await this.#batch?.close();
    await this.#loop;
    await Promise.all(this.#inFlight);
  }

  #backoff(attempt: number): number {
    return Math.min(this.#o.retryMaxMs, this.#o.retryBaseMs * 2 ** (Math.max(1, attempt) - 1));
  }

  async #process(m: JsMsg): Promise<void> {
    const parsed = FallbackMessage.safeParse(m.json());
    if (!parsed.success) {
      // It cannot go to the DLQ (a dead letter holds a valid message): logged, counted, terminated.
      this.#fail(
        'malformed',
        { seq: m.seq, issues: parsed.error.issues },
        'malformed fallback message, terminated',
      );
      m.term('malformed');
      return;
    }
    const message = parsed.data;
    const attempt = m.info.deliveryCount;
    // Log fields: every line about a message carries messageId (see docs/operations.md).
    const context = { messageId: message.id, userId: message.userId, seq: m.seq, attempt };
    const record: RecordFn = async (r) => {
      try {
        await recordStatusDurably(this.#o.nc, {
          kind: 'provider',
          id: message.id,
          ...(message.owner === undefined ? {} : { owner: message.owner }),
          userId: message.userId,
          at: Date.now(),
          attempt,
          ...r,
        });
        this.#o.metrics?.statusRecords.inc({ outcome: 'written' });
      } catch (err) {
        this.#o.metrics?.statusRecords.inc({ outcome: 'failed' });
        this.#fail(
          'status-write',
          { err, ...context, outcome: r.outcome, deviceId: r.deviceId },
          'status record not stored: GET /v1/messages/:id will miss it',
        );
      }
    };

    let progress = emptyProgress();
    let hadProgress = false;
    try {
      if (attempt > 1) {
        try {
          progress = await this.#o.progress.read(progressId(message), message.userId);
          hadProgress = Object.keys(progress.devices).length > 0 || progress.error !== undefined;
        } catch (err) {
          this.#fail('progress-read', { err, ...context }, 'delivery progress not readable');
          // Without it a redelivery could send twice: past the attempts dead-letter, else retry later.
          if (attempt <= this.#o.maxAttempts) throw err;
        }
      }
      if (attempt > this.#o.maxAttempts) {
        // An earlier dead letter failed: finish the job without sending again.
        await this.#finishDeadLettered(m, message, attempt, progress, record, hadProgress);
        return;
      }
      const devices = await this.#o.devices.list(message.userId);
      if (devices.length === 0) {
        await record({ outcome: 'no-devices' });
        await this.#finish(m, message, progress, hadProgress, context);
        return;
      }
      const todo = devices.filter((d) => !isSettled(progress.devices[d.deviceId]));
      const results = await Promise.all(
        todo.map(async (device) => {
          const result = await this.#sendOne(device, message, record, context);
          progress.devices[device.deviceId] = outcomeOf(device, result);
          return { device, result };
        }),
      );
      delete progress.error;
      const retries = results.filter((r): r is Retry => r.result.outcome === 'retry');
      if (retries.length === 0) {
        await this.#finish(m, message, progress, hadProgress, context);
        return;
      }
      if (attempt >= this.#o.maxAttempts) {
        await this.#finishDeadLettered(m, message, attempt, progress, record, hadProgress);
        return;
      }
      await this.#saveProgress(message, progress, context);
      // A provider's Retry-After wins over our own (capped) backoff, up to an hour.
      const asked = Math.min(
        MAX_RETRY_AFTER_MS,
        Math.max(0, ...retries.map((r) => r.result.retryAfterMs ?? 0)),
      );
      m.nak(Math.max(this.#backoff(attempt), asked));
      this.#done('retried');
    } catch (err) {
      // Our own failure (device registry, progress, dead letter): the same backoff and bound.
      this.#fail('processing', { err, ...context }, 'fallback delivery failed, will retry');
      progress.error = (err as Error).message ?? String(err);
      await this.#saveProgress(message, progress, context);
      m.nak(this.#backoff(attempt));
      this.#done('retried');
    }
  }

  /** Sends to one device and records the result; never throws. */
  async #sendOne(
    device: Device,
    message: FallbackMessage,
    record: RecordFn,
    context: Record<string, unknown>,
  ): Promise<SendResult> {
    this.stats.sends++;
    let result: SendResult;
    const endTimer = this.#o.metrics?.sendSeconds.startTimer({ platform: device.platform });
    try {
      result = await this.#o.providers[device.platform].send(device, message);
    } catch (err) {
      // The provider contract says never; if one does, it is a retry like any failure.
      result = { outcome: 'retry', detail: `provider error: ${(err as Error).message}` };
    }
    endTimer?.();
    this.#sends?.inc({ platform: device.platform, outcome: result.outcome });
    const where = { deviceId: device.deviceId, platform: device.platform };
    switch (result.outcome) {
      case 'accepted':
        await record({
          outcome: 'accepted',
          ...where,
          ...(result.detail ? { detail: result.detail } : {}),
        });
        break;
      case 'rejected':
        await record({ outcome: 'rejected', ...where, detail: result.detail });
        break;
      case 'retry':
        await record({ outcome: 'retry', ...where, detail: result.detail });
        break;
      case 'invalid-token': {
        let removed: boolean | 'failed';
        try {
          removed = await this.#o.devices.removeIfToken(
            message.userId,
            device.deviceId,
            device.token,
          );
        } catch (err) {
          // The token is dead either way: final for this message; the next one tries again.
          this.#fail('device-remove', { err, ...context, ...where }, 'dead device not removed');
          removed = 'failed';
        }
        await record({
          outcome: 'device-removed',
          ...where,
          detail:
            removed === true
              ? result.detail
              : removed === false
                ? `${result.detail} (already replaced or removed)`
                : `${result.detail} (removal failed, retried on the next message)`,
        });
        break;
      }
    }
    return result;
  }

  /** Every device settled: dead-letters invalid notifications, acks, forgets the progress. */
  async #finish(
    m: JsMsg,
    message: FallbackMessage,
    progress: Progress,
    hadProgress: boolean,
    context: Record<string, unknown>,
  ): Promise<void> {
    const invalid = Object.entries(progress.devices).filter(([, o]) => o.invalid);
    if (invalid.length > 0) {
      await this.#deadLetter(
        message,
        m.info.deliveryCount,
        `invalid notification: ${invalid.map(([id, o]) => `${id}: ${o.detail}`).join('; ')}`,
        invalid,
      );
      m.ack();
      this.#done('deadLettered');
    } else {
      m.ack();
      this.#done('acked');
    }
    if (hadProgress) await this.#forgetProgress(message, context);
  }

  /** Attempts exhausted: the dead letter (throws when it cannot be stored), the status, the ack. */
  async #finishDeadLettered(
    m: JsMsg,
    message: FallbackMessage,
    attempt: number,
    progress: Progress,
    record: RecordFn,
    hadProgress: boolean,
  ): Promise<void> {
    const owed = Object.entries(progress.devices).filter(([, o]) => !isSettled(o) || o.invalid);
    const why = [
      ...owed.map(([id, o]) => `${id}: ${o.detail}`),
      ...(progress.error ? [`error: ${progress.error}`] : []),
    ];
    await this.#deadLetter(
      message,
      attempt,
      `attempts exhausted (${Math.min(attempt, this.#o.maxAttempts)}): ${why.join('; ') || 'unknown'}`,
      owed,
    );
    await record({ outcome: 'dead-lettered', detail: `gave up after ${attempt} attempts` });
    m.ack();
    this.#done('deadLettered');
    if (hadProgress)
      await this.#forgetProgress(message, { messageId: message.id, userId: message.userId });
  }

  async #saveProgress(
    message: FallbackMessage,
    progress: Progress,
    context: Record<string, unknown>,
  ): Promise<void> {
    try {
      await this.#o.progress.write(progressId(message), message.userId, progress);
    } catch (err) {
      // The retry still happens; its redelivery may send again to devices settled now.
      this.#fail('progress-write', { err, ...context }, 'delivery progress not stored');
    }
  }

  async #forgetProgress(message: FallbackMessage, context: Record<string, unknown>): Promise<void> {
    try {
      await this.#o.progress.remove(progressId(message), message.userId);
    } catch (err) {
      // Harmless: the entry expires with the bucket's max age.
      this.#fail('progress-write', { err, ...context }, 'delivery progress not removed');
    }
  }

  /** Publishes the dead letter (deduplicated per message and user); throws when not stored. */
  async #deadLetter(
    message: FallbackMessage,
    attempts: number,
    reason: string,
    devices: Array<[string, DeviceOutcome]>,
  ): Promise<void> {
    const letter: DeadLetter = {
      message,
      reason,
      attempts: Math.min(attempts, this.#o.maxAttempts),
      failedAt: Date.now(),
      devices: devices.map(([deviceId, o]) => ({
        deviceId,
        platform: o.platform,
        detail: o.detail,
      })),
    };
    try {
      await jetstream(this.#o.nc).publish(dlqSubject(message.userId), JSON.stringify(letter), {
        msgID: `${message.id}:${message.userId}`,
      });
    } catch (err) {
      this.#fail(
        'dead-letter',
        { err, messageId: message.id, userId: message.userId },
        'dead letter not stored',
      );
      throw err;
    }
  }

  /** The server gave up on a message (max_deliver): dead-letter it from the stream, or log and count it. */
  async #onMaxDeliveries(data: Uint8Array): Promise<void> {
    let seq: number | undefined;
    try {
      const advisory = JSON.parse(new TextDecoder().decode(data)) as {
        stream_seq?: number;
        deliveries?: number;
      };
      seq = advisory.stream_seq;
      if (typeof seq !== 'number') throw new Error('advisory without stream_seq');
      const jsm = await jetstreamManager(this.#o.nc);
      const stored = await jsm.streams.getMessage(Streams.fallback, { seq });
      if (!stored) throw new Error(`message ${seq} is no longer in ${Streams.fallback}`);
      const message = FallbackMessage.parse(stored.json());
      let progress = emptyProgress();
      try {
        progress = await this.#o.progress.read(progressId(message), message.userId);
      } catch {
        // The letter goes without device details.
      }
      const owed = Object.entries(progress.devices).filter(([, o]) => !isSettled(o));
      await this.#deadLetter(
        message,
        advisory.deliveries ?? this.maxDeliver,
        `max deliveries (${advisory.deliveries ?? this.maxDeliver}) reached: ${
          [
            ...owed.map(([id, o]) => `${id}: ${o.detail}`),
            ...(progress.error ? [`error: ${progress.error}`] : []),
          ].join('; ') || 'no result recorded'
        }`,
        owed,
      );
      await jsm.streams.deleteMessage(Streams.fallback, seq, false);
      this.stats.maxDeliveries.deadLettered++;
      this.#maxDeliveries?.inc({ outcome: 'dead-lettered' });
      this.#done('deadLettered');
      this.#o.log.warn(
        { seq, messageId: message.id, userId: message.userId },
        'max deliveries reached, dead-lettered',
      );
    } catch (err) {
      this.stats.maxDeliveries.failed++;
      this.#maxDeliveries?.inc({ outcome: 'failed' });
      // Not lost: the message stays in the stream under this sequence for an operator.
      this.#o.log.error(
        { err, seq, stream: Streams.fallback },
        'max deliveries reached and the message could not be dead-lettered: it stays in the stream',
      );
    }
  }
}

function outcomeOf(device: Device, result: SendResult): DeviceOutcome {
  const detail = 'detail' in result && result.detail ? result.detail : result.outcome;
  switch (result.outcome) {
    case 'accepted':
      return { platform: device.platform, outcome: 'accepted', detail };
    case 'invalid-token':
      return { platform: device.platform, outcome: 'device-removed', detail };
    case 'retry':
      return { platform: device.platform, outcome: 'retry', detail };
    case 'rejected':
      return {
        platform: device.platform,
        outcome: 'rejected',
        detail,
        ...(result.invalid ? { invalid: true } : {}),
      };
  }
}

/** Progress is per message of one API key: two keys may use the same message id. */
function progressId(message: FallbackMessage): string {
  return message.owner === undefined ? message.id : `${message.owner}:${message.id}`;
}
