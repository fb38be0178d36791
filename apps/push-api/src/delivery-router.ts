/**
 * DeliveryRouter — the push API's core. It resolves recipients to nodes (from the
 * in-memory presence mirror when it can vouch, else one KV read each, pipelined), sends one
 * NATS request per owning node with all of that node's recipients, and decides per
 * recipient: delivered, fallback (durably queued) or dropped.
 *
 * The node's reply is the truth: a recipient the mirror routed that no node reached is
 * read again from KV, and delivered to any live node the mirror did not know yet, before
 * it is called offline. A dead node answers at once with "no responders"; a slow one is
 * cut off after `nodeTimeoutMs` (or `ackTimeoutMs + ackGraceMs` when an ack was asked).
 * Either way its recipients are treated as undelivered.
 *
 * Per single-recipient send, on the hot path: one NATS request and its reply; no
 * presence read (mirror), no status write of its own (records are batched).
 */

import { recordStatus } from '@switchboard/message-status';
import type {
  FallbackNotification,
  PresenceView,
  RecipientResult,
  SendRecord,
  UndeliveredReason,
} from '@switchboard/protocol';
import {
  decodeNodeReply,
  deliveryHead,
  deliveryOverheadBytes,
  deliveryText,
  encodeDelivery,
  nodeSubject,
} from '@switchboard/protocol';
import { runPool } from '@switchboard/runtime';
import type { Logger } from 'pino';
import type { RouterMetrics } from './metrics.js';
import { NodeBatcher } from './node-batcher.js';
import type {
  FallbackHandOff,
  NatsLink,
  NodeRequests,
  OutgoingMessage,
  PresenceCache,
  PresenceLookup,
  StatusSink,
} from './ports.js';

export type { OutgoingMessage, StatusSink } from './ports.js';

export type DeliveryRouterOptions = {
  /** The NATS connection: the server's max_payload, and the send records written at once. */
  nc: NatsLink;
  /** Request/reply to the nodes (no error allocated per successful request). */
  requests: NodeRequests;
  presence: PresenceLookup;
  /** In-memory presence; without it every recipient is read from KV. */
  mirror?: PresenceCache;
  fallback: FallbackHandOff;
  /**
   * Send records of plain deliveries, batched; without it each is published on its own.
   * Sends with fallbacks are always recorded one by one.
   */
  status?: StatusSink;
  log: Logger;
  nodeTimeoutMs: number;
  ackGraceMs: number;
  /**
   * One deadline per send, beyond its ack wait: OS push hand-offs not done by then are
   * answered per recipient (`fallback-failed` when tried, `deadline` when not reached).
   * Default 15 s.
   */
  sendTimeoutMs?: number;
  /** Concurrent fallback publishes of one multicast (default 256). */
  fallbackConcurrency?: number;
  metrics?: RouterMetrics;
};

type Reached = { connections: number; acked: number };
type Delivered = { reached: Map<string, Reached>; unreachable: Set<string> };

/** NATS' default max_payload, when the server did not say. */
const DEFAULT_MAX_PAYLOAD = 1024 * 1024;
const ENVELOPE_SLACK_BYTES = 16 * 1024;
/** A bound of one user in a node's reply: `c` and `a` counts with their commas. */
const REPLY_BYTES_PER_USER = 16;
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
  readonly #batcher: NodeBatcher;

  constructor(options: DeliveryRouterOptions) {
    this.#o = options;
    this.#batcher = new NodeBatcher({
      requests: options.requests,
      timeoutMs: options.nodeTimeoutMs,
      maxBytes: () => (options.nc.info?.max_payload ?? DEFAULT_MAX_PAYLOAD) - ENVELOPE_SLACK_BYTES,
    });
  }

  /** Node requests sent and the deliveries they carried (batches carry several). */
  get batching(): { requests: number; deliveries: number } {
    return { requests: this.#batcher.requestsSent, deliveries: this.#batcher.deliveriesSent };
  }

  /**
   * Routes one message to its recipients; resolves with one result per distinct recipient,
   * in order. Rejects only before anything was sent (presence unreadable, message too
   * large): once deliveries start, every outcome is reported per recipient.
   */
  async send(message: OutgoingMessage): Promise<RecipientResult[]> {
    const sentAt = Date.now();
    // The data is serialized once; only the recipient list differs per request.
    const dataJson = JSON.stringify(message.data ?? null);
    const head = deliveryHead({
      id: message.id,
      event: message.event,
      sentAt,
      ...(message.ack ? { ackTimeoutMs: message.ackTimeoutMs } : {}),
    });
    const maxPayload = this.#o.nc.info?.max_payload ?? DEFAULT_MAX_PAYLOAD;
    const fixedBytes = Buffer.byteLength(head) + Buffer.byteLength(dataJson);
    // Room for the recipients here, and for the notification in a fallback message.
    if (fixedBytes + ENVELOPE_SLACK_BYTES > maxPayload)
      throw new MessageTooLargeError(fixedBytes, maxPayload);

    const recipients = message.to.length === 1 ? message.to : [...new Set(message.to)];
    const { byNode, mirrored } = await this.#route(recipients);
    const budget = maxPayload - fixedBytes - 2;
    const delivered = await this.#deliver(message, head, dataJson, byNode, budget);
    if (mirrored.length > 0)
      await this.#recheck(message, head, dataJson, byNode, mirrored, delivered, budget);
    const results = this.#outcomes(message, recipients, delivered);
    if (message.fallback) {
      const undelivered = results.flatMap((r, i) => (r.status === 'delivered' ? [] : [i]));
      if (undelivered.length > 0)
        await this.#enqueueFallbacks(
          message,
          message.fallback,
          sentAt,
          results,
          undelivered,
          sentAt + (this.#o.sendTimeoutMs ?? 15_000) + (message.ack ? message.ackTimeoutMs : 0),
        );
    }
    this.#record(message, sentAt, maxPayload, byNode, results);
    return results;
  }

  /**
   * Recipients grouped by live node: from the mirror where it vouches for a user with a
   * live node, else from KV. `mirrored`: the users routed by the mirror alone.
   */
  async #route(
    recipients: readonly string[],
  ): Promise<{ byNode: Map<string, string[]>; mirrored: string[] }> {
    const { mirror, presence } = this.#o;
    const byNode = new Map<string, string[]>();
    const mirrored: string[] = [];
    let misses: string[] | undefined;
    for (const userId of recipients) {
      const nodes = mirror?.nodes(userId);
      const alive = nodes === undefined ? undefined : presence.aliveNodeIds(nodes);
      if (alive === undefined || alive.length === 0) {
        if (misses) misses.push(userId);
        else misses = [userId];
        continue;
      }
      mirrored.push(userId);
      for (const nodeId of alive) addTo(byNode, nodeId, userId);
    }
    if (misses) {
      for (const view of await presence.lookupMany(misses)) {
        for (const node of view.nodes) addTo(byNode, node.nodeId, view.userId);
      }
    }
    return { byNode, mirrored };
  }

  /**
   * Sends one request per node (split only past max_payload) in parallel and sums what
   * the nodes answered. With acks, a recipient is settled by its first acking node: the
   * answer does not wait for a node whose devices stay silent once every recipient is
   * settled.
   */
  #deliver(
    message: OutgoingMessage,
    head: string,
    dataJson: string,
    byNode: Map<string, string[]>,
    budget: number,
    into?: Delivered,
  ): Promise<Delivered> {
    const out: Delivered = into ?? { reached: new Map(), unreachable: new Set() };
    const { reached, unreachable } = out;
    const timeout = message.ack ? message.ackTimeoutMs + this.#o.ackGraceMs : this.#o.nodeTimeoutMs;
    const requests: Array<[string, string[]]> = [];
    const nodesLeft = new Map<string, number>();
    for (const [nodeId, users] of byNode) {
      for (const u of users) nodesLeft.set(u, (nodesLeft.get(u) ?? 0) + 1);
      if (deliveryOverheadBytes(users) + users.length * REPLY_BYTES_PER_USER <= budget) {
        requests.push([nodeId, users]);
        continue;
      }
      // The reply carries counts per user: budget for it too.
      for (const chunk of chunkByBytes(users, budget, REPLY_BYTES_PER_USER))
        requests.push([nodeId, chunk]);
    }
    let unsettled = nodesLeft.size;
    return new Promise((resolve) => {
      const done = () => resolve(out);
      let outstanding = requests.length;
      if (outstanding === 0) return done();
      const settle = (userId: string) => {
        if (nodesLeft.get(userId) === 0) return;
        nodesLeft.set(userId, 0);
        if (--unsettled === 0) done();
      };
      for (const [nodeId, users] of requests) {
        // Plain deliveries share a NATS message with others for the same node; acked ones
        // wait on their devices and go alone.
        const answered: Promise<{ connections: number[]; acked?: number[] }> = message.ack
          ? this.#o.requests
              .request(nodeSubject(nodeId), encodeDelivery(head, users, dataJson), timeout)
              .then((msg) => decodeNodeReply(msg.data, users.length))
          : this.#batcher
              .send(nodeId, deliveryText(head, users, dataJson), users.length)
              .then((connections) => ({ connections }));
        answered
          .then((reply) => {
            this.#o.metrics?.nodeRequests.inc({ outcome: 'ok' });
            for (let i = 0; i < users.length; i++) {
              const userId = users[i]!;
              const sum = reached.get(userId);
              const acked = reply.acked?.[i] ?? 0;
              if (sum) {
                sum.connections += reply.connections[i]!;
                sum.acked += acked;
              } else reached.set(userId, { connections: reply.connections[i]!, acked });
              if (message.ack && (reached.get(userId)?.acked ?? 0) > 0) settle(userId);
            }
          })
          .catch((err: unknown) => {
            this.#o.metrics?.nodeRequests.inc({ outcome: 'failed' });
            this.#o.log.warn(
              { err, messageId: message.id, nodeId, users: users.length },
              'node did not take a delivery',
            );
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

  /**
   * The mirror may be a moment behind: recipients it routed that no node reached (and
   * whose nodes all answered) are read from KV, and delivered to the live nodes not yet
   * asked, before anyone calls them offline.
   */
  async #recheck(
    message: OutgoingMessage,
    head: string,
    dataJson: string,
    byNode: Map<string, string[]>,
    mirrored: string[],
    delivered: Delivered,
    budget: number,
  ): Promise<void> {
    const missed = mirrored.filter(
      (u) => (delivered.reached.get(u)?.connections ?? 0) === 0 && !delivered.unreachable.has(u),
    );
    if (missed.length === 0) return;
    const asked = new Map<string, Set<string>>();
    const missedSet = new Set(missed);
    for (const [nodeId, users] of byNode) {
      for (const u of users) {
        if (!missedSet.has(u)) continue;
        const nodes = asked.get(u);
        if (nodes) nodes.add(nodeId);
        else asked.set(u, new Set([nodeId]));
      }
    }
    let views: PresenceView[];
    try {
      views = await this.#o.presence.lookupMany(missed);
    } catch (err) {
      this.#o.log.warn(
        { err, messageId: message.id, users: missed.length },
        'presence re-read failed',
      );
      for (const u of missed) delivered.unreachable.add(u);
      return;
    }
    const again = new Map<string, string[]>();
    for (const view of views) {
      for (const node of view.nodes) {
        if (!asked.get(view.userId)?.has(node.nodeId)) addTo(again, node.nodeId, view.userId);
      }
    }
    this.#o.metrics?.rechecks.inc(missed.length);
    if (again.size === 0) return;
    for (const [nodeId, users] of again) for (const u of users) addTo(byNode, nodeId, u);
    await this.#deliver(message, head, dataJson, again, budget, delivered);
  }

  /** Delivered (with the connections reached, or that acked), else dropped with a reason. */
  #outcomes(
    message: OutgoingMessage,
    recipients: readonly string[],
    d: Delivered,
  ): RecipientResult[] {
    return recipients.map((userId) => {
      const r = d.reached.get(userId);
      const count = message.ack ? (r?.acked ?? 0) : (r?.connections ?? 0);
      if (count > 0) return { userId, status: 'delivered', connections: count };
      const reason: UndeliveredReason =
        r && r.connections > 0
          ? 'ack-timeout'
          : d.unreachable.has(userId)
            ? 'node-unavailable'
            : 'offline';
      return { userId, status: 'dropped', reason };
    });
  }

  /** Metrics and the message's send record (split for huge multicasts). */
  #record(
    message: OutgoingMessage,
    sentAt: number,
    maxPayload: number,
    byNode: Map<string, string[]>,
    results: RecipientResult[],
  ): void {
    const metrics = this.#o.metrics;
    if (metrics) {
      if (results.length === 1) {
        const r = results[0]!;
        metrics.recipientsOf(r.status, r.reason).inc();
      } else {
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
      }
      const seconds = (Date.now() - sentAt) / 1000;
      metrics.sendSeconds.observe(seconds);
      if (message.ack) metrics.ackSeconds.observe(seconds);
    }
    const nodesOf = new Map<string, string[]>();
    for (const [nodeId, users] of byNode) {
      for (const u of users) {
        const list = nodesOf.get(u);
        if (list) list.push(nodeId);
        else nodesOf.set(u, [nodeId]);
      }
    }
    const records = results.map((r) => ({ ...r, nodes: nodesOf.get(r.userId) ?? [] }));
    const plain = results.every((r) => r.status !== 'fallback');
    const perRecord = Math.max(1, Math.floor((maxPayload - 4096) / STATUS_BYTES_PER_RECIPIENT));
    for (let i = 0; i < records.length; i += perRecord) {
      const record: SendRecord = {
        kind: 'send',
        id: message.id,
        ...(message.owner === undefined ? {} : { owner: message.owner }),
        event: message.event,
        acceptedAt: sentAt,
        finishedAt: Date.now(),
        ack: message.ack,
        recipients: records.slice(i, i + perRecord),
      };
      // Plain deliveries are batched; a send with fallbacks (already a JetStream write per
      // recipient) is recorded at once, so its record precedes what OS push records.
      if (this.#o.status && plain) this.#o.status.add(record);
      else recordStatus(this.#o.nc, record);
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
    deadline: number,
  ): Promise<void> {
    await runPool(indexes, this.#o.fallbackConcurrency ?? 256, async (i) => {
      const result = results[i]!;
      const reason = result.reason ?? 'offline';
      if (Date.now() >= deadline) {
        results[i] = { userId: result.userId, status: 'dropped', reason: 'deadline' };
        return;
      }
      try {
        await this.#o.fallback.enqueue(
          {
            id: message.id,
            ...(message.owner === undefined ? {} : { owner: message.owner }),
            userId: result.userId,
            event: message.event,
            data: message.data ?? null,
            sentAt,
            reason,
            notification,
          },
          deadline,
        );
        results[i] = { userId: result.userId, status: 'fallback', reason };
      } catch (err) {
        this.#o.log.error(
          { err, messageId: message.id, userId: result.userId },
          'fallback hand-off failed',
        );
        results[i] = { userId: result.userId, status: 'dropped', reason: 'fallback-failed' };
      }
    });
  }
}

function addTo(map: Map<string, string[]>, key: string, value: string): void {
  const list = map.get(key);
  if (list) list.push(value);
  else map.set(key, [value]);
}
