/**
 * The OS push worker's metrics beside the worker's own counters (sends, messages,
 * failures, max deliveries: see fallback-worker.ts):
 * - the fallback queue and the dead letters, read from JetStream at scrape time (consumer
 *   `os-push` on `PUSH_FALLBACK`, stream `PUSH_FALLBACK_DLQ`). Every worker reports the same
 *   numbers: dashboards and alerts take `max` over workers. One read serves a whole scrape;
 *   when it fails (NATS away) the series are left out, never stale, and the failure is
 *   counted;
 * - status records written or failed, and how long each provider call takes;
 * - `switchboard_nats_connected`.
 */
import { type JetStreamManager, jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { natsConnectedGauge } from '@switchboard/http/probes';
import { Streams } from '@switchboard/protocol';
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

export type OsPushMetrics = ReturnType<typeof createOsPushMetrics>;

/** Longest wait for the JetStream reads of one scrape. */
const QUEUE_READ_TIMEOUT_MS = 2_000;
/** Scrapes closer than this share one read (several gauges, or scrapers, at once). */
const QUEUE_READ_REUSE_MS = 500;

export type QueueState = {
  /** Messages in `PUSH_FALLBACK` not delivered to any worker yet. */
  pending: number;
  /** Delivered to a worker and not acked yet: in hand, or waiting for a retry's backoff. */
  ackPending: number;
  /** Messages delivered more than once (retries) still unacked. */
  redelivered: number;
  /** Seconds the oldest message in `PUSH_FALLBACK` has waited (0 when empty). */
  oldestSeconds: number;
  /** Dead letters kept in `PUSH_FALLBACK_DLQ`. */
  deadLetters: number;
};

export type OsPushMetricsOptions = {
  registry: Registry;
  nc: NatsConnection;
  /** The durable consumer's name on `PUSH_FALLBACK`. */
  consumer: string;
  natsConnected: () => boolean;
};

export function createOsPushMetrics(options: OsPushMetricsOptions) {
  const { registry, nc } = options;
  const statusRecords = new Counter({
    name: 'switchboard_os_push_status_records_total',
    help: 'Per-device status records for GET /v1/messages/:id, by outcome (written, failed)',
    labelNames: ['outcome'],
    registers: [registry],
  });
  statusRecords.inc({ outcome: 'written' }, 0);
  statusRecords.inc({ outcome: 'failed' }, 0);
  const queueReadErrors = new Counter({
    name: 'switchboard_os_push_queue_read_errors_total',
    help: 'Scrapes whose JetStream read of the fallback queue or the dead letters failed (their series are left out)',
    registers: [registry],
  });

  let jsm: Promise<JetStreamManager> | undefined;
  let last: { at: number; state: Promise<QueueState | null> } | undefined;
  const read = async (): Promise<QueueState> => {
    jsm ??= jetstreamManager(nc, { timeout: QUEUE_READ_TIMEOUT_MS }).catch((err: unknown) => {
      jsm = undefined;
      throw err;
    });
    const m = await jsm;
    const [consumer, stream, dlq] = await Promise.all([
      m.consumers.info(Streams.fallback, options.consumer),
      m.streams.info(Streams.fallback),
      m.streams.info(Streams.fallbackDlq),
    ]);
    const first = stream.state.messages > 0 ? Date.parse(stream.state.first_ts) : Number.NaN;
    return {
      pending: consumer.num_pending,
      ackPending: consumer.num_ack_pending,
      redelivered: consumer.num_redelivered,
      oldestSeconds: Number.isFinite(first) ? Math.max(0, (Date.now() - first) / 1000) : 0,
      deadLetters: dlq.state.messages,
    };
  };
  /** The queue state for this scrape: one read shared by every gauge. */
  const queueState = (): Promise<QueueState | null> => {
    const now = Date.now();
    if (last && now - last.at < QUEUE_READ_REUSE_MS) return last.state;
    const state = read().catch(() => {
      queueReadErrors.inc();
      return null;
    });
    last = { at: now, state };
    return state;
  };

  new Gauge({
    name: 'switchboard_os_push_queue_messages',
    help: 'Fallback messages waiting in PUSH_FALLBACK for the os-push consumer, by state: pending (not delivered yet), ack_pending (with a worker or waiting for a retry), redelivered (retried, not done)',
    labelNames: ['state'],
    registers: [registry],
    async collect() {
      this.reset();
      const s = await queueState();
      if (!s) return;
      this.set({ state: 'pending' }, s.pending);
      this.set({ state: 'ack_pending' }, s.ackPending);
      this.set({ state: 'redelivered' }, s.redelivered);
    },
  });
  new Gauge({
    name: 'switchboard_os_push_queue_oldest_seconds',
    help: 'Age of the oldest message in PUSH_FALLBACK (0 when empty), by the NATS server timestamp against this host clock',
    registers: [registry],
    async collect() {
      this.reset();
      const s = await queueState();
      if (s) this.set(s.oldestSeconds);
    },
  });
  new Gauge({
    name: 'switchboard_os_push_dlq_messages',
    help: 'Dead letters kept in PUSH_FALLBACK_DLQ (30 days): messages OS push gave up on',
    registers: [registry],
    async collect() {
      this.reset();
      const s = await queueState();
      if (s) this.set(s.deadLetters);
    },
  });
  natsConnectedGauge(registry, options.natsConnected);

  return {
    statusRecords,
    sendSeconds: new Histogram({
      name: 'switchboard_os_push_send_seconds',
      help: 'Time of one provider call (one device), by platform',
      labelNames: ['platform'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: [registry],
    }),
    /** The queue state as the gauges report it (null when it cannot be read). */
    queueState,
  };
}
