/**
 * NodeBus — this node's side of NATS (Centrifuge's broker for one node). It owns the
 * subscriptions to `push.v1.node.<nodeId>` (request/reply deliveries from the push API)
 * and `push.v1.broadcast`, the per-message path (decode → write to the hub's sockets →
 * encode and send the reply), the bound on acked deliveries waiting on devices at once,
 * and the start-up probe of the node subject that refuses a node id a live process serves.
 *
 * The per-message path is hot: the hub's index and outbound bound are read once here at
 * construction and handed to {@link deliverNow} directly, with no call through the hub.
 */
import type { Msg, NatsConnection, Subscription } from '@nats-io/transport-node';
import { isNoResponders } from '@switchboard/nats';
import { NodeIdConflictError } from '@switchboard/presence-registry';
import {
  BroadcastEnvelope,
  decodeDeliveries,
  encodeBatchReply,
  encodeLegacyNodeReply,
  encodeNodeReply,
  Limits,
  type NodeReply,
  nodeSubject,
  Subjects,
} from '@switchboard/protocol';
import type { Logger } from 'pino';
import type { EdgeConfig } from './config.js';
import { deliverNow, deliverWithAck, type Emitter, type OutboundLimit } from './delivery.js';
import type { LocalSockets } from './local-sockets.js';
import type { EdgeMetrics } from './metrics.js';
import type { SocketHub } from './socket-hub.js';

export type NodeBusOptions = {
  nc: NatsConnection;
  nodeId: string;
  config: Pick<EdgeConfig, 'maxInflightAcks'>;
  /** Where deliveries go: the index and outbound bound are read once, broadcasts go through it. */
  hub: Pick<SocketHub, 'index' | 'outbound' | 'broadcast'>;
  /** The epoch replies carry, read per reply: it rolls when the lease lapses. */
  presence: { readonly epoch: string };
  metrics: EdgeMetrics;
  log: Logger;
};

/** How long a start-up probe of the node subject waits for a live holder to answer. */
const PROBE_TIMEOUT_MS = 1_000;

export class NodeBus {
  readonly #nc: NatsConnection;
  readonly #nodeId: string;
  readonly #subject: string;
  readonly #maxInflightAcks: number;
  readonly #hub: NodeBusOptions['hub'];
  readonly #sockets: LocalSockets<Emitter>;
  readonly #outbound: OutboundLimit<Emitter>;
  readonly #presence: NodeBusOptions['presence'];
  readonly #metrics: EdgeMetrics;
  readonly #log: Logger;
  #subs: Subscription[] = [];
  /** Per-user acked deliveries waiting on devices now (bounded by `maxInflightAcks`). */
  #inflightAcks = 0;

  constructor(options: NodeBusOptions) {
    this.#nc = options.nc;
    this.#nodeId = options.nodeId;
    this.#subject = nodeSubject(options.nodeId);
    this.#maxInflightAcks = options.config.maxInflightAcks;
    this.#hub = options.hub;
    // Delivery only reads what `Emitter` names of a socket.
    this.#sockets = options.hub.index as unknown as LocalSockets<Emitter>;
    this.#outbound = options.hub.outbound as unknown as OutboundLimit<Emitter>;
    this.#presence = options.presence;
    this.#metrics = options.metrics;
    this.#log = options.log;
  }

  /**
   * Probes the node subject (refusing a node id a live process serves), then subscribes
   * and flushes: once this resolves, the server routes the node's subjects here.
   */
  async start(): Promise<void> {
    await this.#probe();
    this.#subs.push(
      this.#nc.subscribe(this.#subject, {
        callback: (err, msg) => (err ? this.#subError(err) : void this.#onDelivery(msg)),
      }),
      this.#nc.subscribe(Subjects.broadcast, {
        callback: (err, msg) => (err ? this.#subError(err) : this.#onBroadcast(msg)),
      }),
    );
    await this.#nc.flush();
  }

  /** Unsubscribes: deliveries to this node find no responder from now on. */
  stop(): void {
    for (const sub of this.#subs) sub.unsubscribe();
    this.#subs = [];
  }

  async #onDelivery(msg: Msg): Promise<void> {
    // An empty request is a start-up probe from a process that wants this node id.
    if (msg.data.length === 0) {
      msg.respond(JSON.stringify({ nodeId: this.#nodeId, epoch: this.#presence.epoch }));
      return;
    }
    let decoded: ReturnType<typeof decodeDeliveries>;
    try {
      decoded = decodeDeliveries(msg.data);
    } catch (err) {
      this.#log.warn({ err, subject: msg.subject }, 'malformed delivery');
      msg.respond(JSON.stringify({ error: 'malformed delivery' }));
      return;
    }
    const sockets = this.#sockets;
    const outbound = this.#outbound;
    let reply: string;
    let users = 0;
    try {
      if (decoded.batch) {
        // Batches carry plain deliveries only: written at once, answered together.
        const counts = decoded.deliveries.map((d) => {
          users += d.userIds.length;
          return deliverNow(sockets, d, outbound);
        });
        reply = encodeBatchReply(this.#nodeId, this.#presence.epoch, counts);
      } else {
        const d = decoded.deliveries[0]!;
        users = d.userIds.length;
        let outcome: NodeReply;
        if (d.ackTimeoutMs === undefined) {
          outcome = {
            nodeId: this.#nodeId,
            epoch: this.#presence.epoch,
            connections: deliverNow(sockets, d, outbound),
          };
        } else {
          // Waits on devices are bounded: past the cap the node refuses (the push API
          // reports node-unavailable and falls back), and no wait outlasts the API's bound.
          if (this.#inflightAcks + users > this.#maxInflightAcks) {
            this.#metrics.refused.inc({ reason: 'ack-capacity' });
            msg.respond(JSON.stringify({ error: 'overloaded: too many acked deliveries waiting' }));
            return;
          }
          const ackTimeoutMs = Math.min(
            Limits.maxAckTimeoutMs,
            Math.max(Limits.minAckTimeoutMs, d.ackTimeoutMs),
          );
          this.#inflightAcks += users;
          try {
            outcome = {
              nodeId: this.#nodeId,
              epoch: this.#presence.epoch,
              ...(await deliverWithAck(sockets, { ...d, ackTimeoutMs }, outbound)),
            };
          } finally {
            this.#inflightAcks -= users;
          }
        }
        reply = d.legacy ? encodeLegacyNodeReply(d.userIds, outcome) : encodeNodeReply(outcome);
      }
    } catch (err) {
      // Socket.IO throws on reserved event names (the push API refuses them first); the
      // data of an acked delivery is parsed here.
      this.#log.error({ err, messageIds: decoded.deliveries.map((d) => d.id) }, 'delivery failed');
      msg.respond(JSON.stringify({ error: 'delivery failed' }));
      return;
    }
    this.#metrics.deliveries.inc(users);
    try {
      msg.respond(reply);
    } catch (err) {
      // Over max_payload (or NATS gone): the push API times out and treats it as undelivered.
      this.#log.error(
        { err, users, messageIds: decoded.deliveries.map((d) => d.id) },
        'could not answer a delivery',
      );
    }
  }

  #onBroadcast(msg: Msg): void {
    try {
      const env = BroadcastEnvelope.parse(msg.json());
      this.#hub.broadcast(env.event, env.data, { id: env.id, sentAt: env.sentAt });
      this.#metrics.broadcasts.inc();
    } catch (err) {
      this.#log.warn({ err }, 'malformed broadcast');
    }
  }

  /** Refuses to start when a live process answers on this node's subject. */
  async #probe(): Promise<void> {
    try {
      const reply = await this.#nc.request(this.#subject, new Uint8Array(0), {
        timeout: PROBE_TIMEOUT_MS,
      });
      let holder = '';
      try {
        holder = ` (epoch ${(reply.json() as { epoch?: string }).epoch})`;
      } catch {}
      throw new NodeIdConflictError(this.#nodeId, null, {
        cause: new Error(`a live process answers on ${this.#subject}${holder}`),
      });
    } catch (err) {
      if (err instanceof NodeIdConflictError) throw err;
      // No responders: nobody serves this node id. A timeout means someone holds the
      // subscription without answering: refuse rather than share it.
      if (isNoResponders(err)) return;
      throw new NodeIdConflictError(this.#nodeId, null, { cause: err });
    }
  }

  #subError(err: Error): void {
    this.#log.error({ err }, 'subscription error');
  }
}
