/**
 * DeliveryRouter — the push API's core. It resolves recipients to nodes with one KV read
 * each (pipelined), sends one NATS request per owning node with all of that node's
 * recipients, and decides per recipient: delivered, fallback (durably queued) or dropped.
 *
 * A dead node answers at once with "no responders"; a slow one is cut off after
 * `nodeTimeoutMs` (or `ackTimeoutMs + ackGraceMs` when an ack was asked). Either way its
 * recipients are treated as undelivered.
 */
import type { NatsConnection } from '@nats-io/transport-node';
import { recordStatus } from '@switchboard/nats/status-stream';
import type { PresenceReader } from '@switchboard/presence-registry/presence-reader';
import { NodeReply } from '@switchboard/protocol/delivery';
import type {
  FallbackNotification,
  RecipientResult,
  SendMessageRequest,
  UndeliveredReason,
} from '@switchboard/protocol/message';
import { nodeSubject } from '@switchboard/protocol/subjects';
import type { Logger } from 'pino';
import type { FallbackQueue } from './fallback-queue.js';
import type { RouterMetrics } from './metrics.js';

export type DeliveryRouterOptions = {
  nc: NatsConnection;
  presence: PresenceReader;
  fallback: FallbackQueue;
  log: Logger;
  nodeTimeoutMs: number;
  ackGraceMs: number;
  /** Concurrent fallback publishes of one multicast (default 256). */
  fallbackConcurrency?: number;
  metrics?: RouterMetrics;
};

export type OutgoingMessage = Omit<SendMessageRequest, 'to' | 'id'> & { id: string; to: string[] };

type Reached = { connections: number; acked: number };

const encoder = new TextEncoder();
/** NATS' default max_payload, when the server did not say. */
const DEFAULT_MAX_PAYLOAD = 1024 * 1024;
const ENVELOPE_SLACK_BYTES = 16 * 1024;
const REPLY_BYTES_PER_USER = 48;
/** A generous bound of one recipient in a send record (id, outcome, node ids). */
const STATUS_BYTES_PER_RECIPIENT = 1024;

/** The message's data does not fit in one NATS message: refused before anything is sent. */
export class MessageTooLargeError extends Error {
  constructor(bytes: number, maxPayload: number) {
    super(
      `the message is ${bytes} bytes serialized; NATS carries at most ${maxPayload - ENVELOPE_SLACK_BYTES} for data here`,
    );
    this.name = 'MessageTooLargeError';
  }
}

/**
 * Splits `users` into lists that fit in `budget` bytes (at least one user each), counting
 * `perUser` extra bytes for each (the node's reply repeats every id with its counts).
 */
export function chunkByBytes(users: string[], budget: number, perUser = 0): string[][] {
  const chunks: string[][] = [];
  let current: string[] = [];
  let size = 2;
  for (const u of users) {
    const bytes = Buffer.byteLength(JSON.stringify(u)) + 1 + perUser;
    if (current.length > 0 && size + bytes > budget) {
      chunks.push(current);
      current = [];
      size = 2;
    }
    current.push(u);
    size += bytes;
  }
  if (current.length > 0) chunks.push(current);
  return chunks;
}

export class DeliveryRouter {
  readonly #o: DeliveryRouterOptions;

  constructor(options: DeliveryRouterOptions) {
    this.#o = options;
  }

  /**
   * Routes one message to its recipients; resolves with one result per distinct recipient,
   * in order. Rejects only before anything was sent (presence unreadable, message too
   * large): once deliveries start, every outcome is reported per recipient.
   */
  async send(message: OutgoingMessage): Promise<RecipientResult[]> {
    const sentAt = Date.now();
    // The payload is serialized once; only the recipient list differs per request.
    const head = `{"id":${JSON.stringify(message.id)},"event":${JSON.stringify(message.event)},"sentAt":${sentAt},"data":${JSON.stringify(message.data ?? null)}${message.ack ? `,"ackTimeoutMs":${message.ackTimeoutMs}` : ''},"userIds":`;
    const maxPayload = this.#o.nc.info?.max_payload ?? DEFAULT_MAX_PAYLOAD;
    const headBytes = Buffer.byteLength(head);
    // Room for the recipients here, and for the notification in a fallback message.
    if (headBytes + ENVELOPE_SLACK_BYTES > maxPayload)
      throw new MessageTooLargeError(headBytes, maxPayload);

    const recipients = [...new Set(message.to)];
    const byNode = new Map<string, string[]>();
    for (const view of await this.#o.presence.lookupMany(recipients)) {
      for (const node of view.nodes) {
        const users = byNode.get(node.nodeId);
        if (users) users.push(view.userId);
        else byNode.set(node.nodeId, [view.userId]);
      }
    }
    // One request per node, split only when its recipient list would exceed max_payload;
    // the reply carries `"<id>":{"connections":n,"acked":n}` per user: budget for it too.
    const requests: Array<[string, string[]]> = [];
    for (const [nodeId, users] of byNode) {
      for (const chunk of chunkByBytes(users, maxPayload - headBytes - 1, REPLY_BYTES_PER_USER)) {
        requests.push([nodeId, chunk]);
      }
    }

    const { reached, unreachable } = await this.#deliver(message, head, byNode, requests);
    const results = this.#outcomes(message, recipients, reached, unreachable);
    if (message.fallback) {
      const undelivered = results.flatMap((r, i) => (r.status === 'delivered' ? [] : [i]));
      await this.#enqueueFallbacks(message, message.fallback, sentAt, results, undelivered);
    }
    this.#record(message, sentAt, maxPayload, byNode, results);
    return results;
  }

  /**
   * Sends the requests in parallel and sums what the nodes answered. With acks, a recipient
   * is settled by its first acking node: the answer does not wait for a node whose devices
   * stay silent once every recipient is settled.
   */
  #deliver(
    message: OutgoingMessage,
    head: string,
    byNode: Map<string, string[]>,
    requests: Array<[string, string[]]>,
  ): Promise<{ reached: Map<string, Reached>; unreachable: Set<string> }> {
    const reached = new Map<string, Reached>();
    const unreachable = new Set<string>();
    const timeout = message.ack ? message.ackTimeoutMs + this.#o.ackGraceMs : this.#o.nodeTimeoutMs;
    const nodesLeft = new Map<string, number>();
    for (const users of byNode.values()) {
      for (const u of users) nodesLeft.set(u, (nodesLeft.get(u) ?? 0) + 1);
    }
    let unsettled = nodesLeft.size;
    return new Promise((resolve) => {
      const done = () => resolve({ reached, unreachable });
      let outstanding = requests.length;
      if (outstanding === 0) return done();
      const settle = (userId: string) => {
        if (nodesLeft.get(userId) === 0) return;
        nodesLeft.set(userId, 0);
        if (--unsettled === 0) done();
      };
      for (const [nodeId, users] of requests) {
        this.#o.nc
          .request(nodeSubject(nodeId), encoder.encode(`${head}${JSON.stringify(users)}}`), {
            timeout,
          })
          .then((msg) => {
            const reply = NodeReply.parse(msg.json());
            this.#o.metrics?.nodeRequests.inc({ outcome: 'ok' });
            for (const [userId, r] of Object.entries(reply.results)) {
              const sum = reached.get(userId) ?? { connections: 0, acked: 0 };
              sum.connections += r.connections;
              sum.acked += r.acked ?? 0;
              reached.set(userId, sum);
              if (message.ack && sum.acked > 0) settle(userId);
            }
          })
          .catch((err: unknown) => {
            this.#o.metrics?.nodeRequests.inc({ outcome: 'failed' });
            this.#o.log.warn({ err, nodeId, users: users.length }, 'node did not take a delivery');
            for (const u of users) unreachable.add(u);
          })
          .finally(() => {
            for (const u of users) {
              const left = nodesLeft.get(u) ?? 0;
              if (left === 1) settle(u);
              else if (left > 1) nodesLeft.set(u, left - 1);
            }
            if (--outstanding === 0) done();
          });
      }
    });
  }

  /** Delivered (with the connections reached, or that acked), else dropped with a reason. */
  #outcomes(
    message: OutgoingMessage,
    recipients: string[],
    reached: Map<string, Reached>,
    unreachable: Set<string>,
  ): RecipientResult[] {
    return recipients.map((userId) => {
      const r = reached.get(userId);
      const count = message.ack ? (r?.acked ?? 0) : (r?.connections ?? 0);
      if (count > 0) return { userId, status: 'delivered', connections: count };
      const reason: UndeliveredReason =
        r && r.connections > 0
          ? 'ack-timeout'
          : unreachable.has(userId)
            ? 'node-unavailable'
            : 'offline';
      return { userId, status: 'dropped', reason };
    });
  }

  /** Metrics and the message's status records (split like deliveries, under max_payload). */
  #record(
    message: OutgoingMessage,
    sentAt: number,
    maxPayload: number,
    byNode: Map<string, string[]>,
    results: RecipientResult[],
  ): void {
    const metrics = this.#o.metrics;
    if (metrics) {
      // Counted per outcome, not per recipient: a 10,000-recipient multicast is a few incs.
      const counts = new Map<string, number>();
      for (const r of results) {
        const k = `${r.status}|${r.reason ?? ''}`;
        counts.set(k, (counts.get(k) ?? 0) + 1);
      }
      for (const [k, n] of counts) {
        const [status, reason] = k.split('|') as [string, string];
        metrics.recipients.inc({ status, reason }, n);
      }
      metrics.sendSeconds.observe((Date.now() - sentAt) / 1000);
    }
    const nodesOf = new Map<string, string[]>();
    for (const [nodeId, users] of byNode) {
      for (const u of users) nodesOf.set(u, [...(nodesOf.get(u) ?? []), nodeId]);
    }
    const records = results.map((r) => ({ ...r, nodes: nodesOf.get(r.userId) ?? [] }));
    const perRecord = Math.max(1, Math.floor((maxPayload - 4096) / STATUS_BYTES_PER_RECIPIENT));
    for (let i = 0; i < records.length; i += perRecord) {
      recordStatus(this.#o.nc, {
        kind: 'send',
        id: message.id,
        event: message.event,
        acceptedAt: sentAt,
        finishedAt: Date.now(),
        ack: message.ack,
        recipients: records.slice(i, i + perRecord),
      });
    }
  }

  /**
   * Hands the undelivered recipients to the fallback stream. A recipient whose hand-off
   * failed even after the queue's retries is reported `dropped` with `fallback-failed`:
   * by then others may have been delivered, so the request must not fail as a whole.
   */
  async #enqueueFallbacks(
    message: OutgoingMessage,
    notification: FallbackNotification,
    sentAt: number,
    results: RecipientResult[],
    indexes: number[],
  ): Promise<void> {
    let next = 0;
    const worker = async () => {
      while (next < indexes.length) {
        const i = indexes[next++]!;
        const result = results[i]!;
        const reason = result.reason ?? 'offline';
        try {
          await this.#o.fallback.enqueue({
            id: message.id,
            userId: result.userId,
            event: message.event,
            data: message.data ?? null,
            sentAt,
            reason,
            notification,
          });
          results[i] = { userId: result.userId, status: 'fallback', reason };
        } catch (err) {
          this.#o.log.error(
            { err, id: message.id, userId: result.userId },
            'fallback hand-off failed',
          );
          results[i] = { userId: result.userId, status: 'dropped', reason: 'fallback-failed' };
        }
      }
    };
    const n = Math.min(this.#o.fallbackConcurrency ?? 256, indexes.length);
    await Promise.all(Array.from({ length: n }, worker));
  }
}
