/**
 * What the push API and the edge nodes exchange on `push.v1.node.<nodeId>`: a compact,
 * versioned encoding with one encoder and one decoder, used by both ends. No schema
 * library on this hop: it is internal, on the per-message path, and both ends are ours.
 *
 * Request (v1): `<header JSON>\n<data JSON>`
 *   header: `{"v":1,"id":"…","event":"…","sentAt":<ms>,["ack":<ms>,]"u":["<userId>",…]}`
 *   data:   the message's `data` as the sender's JSON text, passed through untouched: the
 *           edge never parses it for a plain delivery, it splices it into the one
 *           Socket.IO packet it writes to every socket.
 * Reply (v1): `{"v":1,"n":"<nodeId>","e":"<epoch>","c":[<connections>,…][,"a":[<acked>,…]]}`
 *   `c` and `a` are per user, in the order of the request's `u`.
 * Batch (v1): several requests joined by `\n` (`<header>\n<data>\n<header>\n<data>…`;
 *   JSON text never holds a raw newline), without ack; the reply is
 *   `{"v":1,"n","e","b":[[<connections>,…],…]}`, one list per request, in order. The push
 *   API sends one when several messages for one node are ready in the same event-loop
 *   turn: one NATS message and one reply for all of them.
 * An empty request is a probe (see EdgeNode): the reply is `{"nodeId","epoch"}`.
 *
 * Upgrades: edges also accept the format before v1 (one JSON object with `userIds` and
 * `data`, answered with `{nodeId, epoch, results: {<userId>: {connections, acked?}}}`),
 * so a rolling deploy upgrades the edges first, then the push APIs.
 */
import { z } from 'zod';

export const DELIVERY_VERSION = 1;

/** The request does not follow the wire format. */
export class DeliveryDecodeError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'DeliveryDecodeError';
  }
}

/** One message for the listed users on one node; ack is asked when `ackTimeoutMs` is set. */
export type Delivery = {
  id: string;
  event: string;
  sentAt: number;
  ackTimeoutMs?: number;
  userIds: string[];
  /** The message's data as JSON text. */
  dataJson: string;
};

/** Per user: connections the message was emitted to, and how many acked (ack asked). */
export type UserDelivery = { connections: number; acked?: number };

export type NodeReply = {
  nodeId: string;
  epoch: string;
  /** Per user of the request, in its order. */
  connections: number[];
  acked?: number[];
};

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const NEWLINE = 0x0a;

/**
 * The part of a request shared by every node it goes to: everything but the recipients.
 * Pair with {@link encodeDelivery}.
 */
export function deliveryHead(m: {
  id: string;
  event: string;
  sentAt: number;
  ackTimeoutMs?: number;
}): string {
  const ack = m.ackTimeoutMs === undefined ? '' : `,"ack":${m.ackTimeoutMs}`;
  return `{"v":${DELIVERY_VERSION},"id":${JSON.stringify(m.id)},"event":${JSON.stringify(m.event)},"sentAt":${m.sentAt}${ack},"u":`;
}

/** The request bytes for `userIds`; `dataJson` is `JSON.stringify(data ?? null)`. */
export function encodeDelivery(
  head: string,
  userIds: readonly string[],
  dataJson: string,
): Uint8Array {
  return encoder.encode(deliveryText(head, userIds, dataJson));
}

/** The request as text; requests for one node join into a batch with `\n`. */
export function deliveryText(head: string, userIds: readonly string[], dataJson: string): string {
  return `${head}${JSON.stringify(userIds)}}\n${dataJson}`;
}

/** Bytes of a request beyond its head and data: the recipients' JSON and the separators. */
export function deliveryOverheadBytes(userIds: readonly string[]): number {
  return Buffer.byteLength(JSON.stringify(userIds)) + 2;
}

/**
 * Parses a request or a batch (two or more `<header>\n<data>` pairs); throws
 * {@link DeliveryDecodeError}. A single request (or one in the format before v1) is a list
 * of one; `batch` tells how to answer.
 */
export function decodeDeliveries(bytes: Uint8Array): {
  deliveries: Array<Delivery & { legacy?: true }>;
  batch: boolean;
} {
  const first = bytes.indexOf(NEWLINE);
  const second = first < 0 ? -1 : bytes.indexOf(NEWLINE, first + 1);
  if (second < 0) return { deliveries: [decodeDelivery(bytes)], batch: false };
  const deliveries: Delivery[] = [];
  let start = 0;
  while (start < bytes.length) {
    const split = bytes.indexOf(NEWLINE, start);
    if (split < 0) throw new DeliveryDecodeError('batch: a header without data');
    const end = bytes.indexOf(NEWLINE, split + 1);
    const stop = end < 0 ? bytes.length : end;
    deliveries.push(decodeDelivery(bytes.subarray(start, stop)));
    start = stop + 1;
  }
  for (const d of deliveries) {
    if (d.ackTimeoutMs !== undefined) throw new DeliveryDecodeError('batch: ack is not batched');
  }
  return { deliveries, batch: true };
}

/** The reply to a batch: connections per user, one list per request, in order. */
export function encodeBatchReply(nodeId: string, epoch: string, counts: number[][]): string {
  return `{"v":${DELIVERY_VERSION},"n":${JSON.stringify(nodeId)},"e":${JSON.stringify(epoch)},"b":${JSON.stringify(counts)}}`;
}

/** Parses a batch reply for requests of `users[i]` recipients each. */
export function decodeBatchReply(bytes: Uint8Array, users: readonly number[]): number[][] {
  let r: Record<string, unknown>;
  try {
    r = JSON.parse(decoder.decode(bytes)) as Record<string, unknown>;
  } catch (err) {
    throw new DeliveryDecodeError('reply is not JSON', { cause: err });
  }
  const b = r?.b;
  if (r?.v !== DELIVERY_VERSION || !Array.isArray(b) || b.length !== users.length)
    throw new DeliveryDecodeError('batch reply needs one count list per request');
  b.forEach((c, i) => {
    if (!isCounts(c, users[i]!)) throw new DeliveryDecodeError('batch reply: wrong counts');
  });
  return b as number[][];
}

/**
 * Parses a request; throws {@link DeliveryDecodeError} naming what is wrong. `legacy` is
 * set on a request in the format before v1, which must be answered with
 * {@link encodeLegacyNodeReply}.
 */
export function decodeDelivery(bytes: Uint8Array): Delivery & { legacy?: true } {
  const split = bytes.indexOf(NEWLINE);
  if (split < 0) return decodeLegacyDelivery(bytes);
  let h: Record<string, unknown>;
  try {
    h = JSON.parse(decoder.decode(bytes.subarray(0, split))) as Record<string, unknown>;
  } catch (err) {
    throw new DeliveryDecodeError('header is not JSON', { cause: err });
  }
  if (h === null || typeof h !== 'object') throw new DeliveryDecodeError('header is not an object');
  if (h.v !== DELIVERY_VERSION) throw new DeliveryDecodeError(`unsupported version ${String(h.v)}`);
  const { id, event, sentAt, ack, u } = h;
  if (typeof id !== 'string' || typeof event !== 'string' || typeof sentAt !== 'number')
    throw new DeliveryDecodeError('id, event and sentAt are required');
  if (!Array.isArray(u) || u.length === 0 || !u.every((x) => typeof x === 'string'))
    throw new DeliveryDecodeError('u must be a non-empty list of user ids');
  if (ack !== undefined && (typeof ack !== 'number' || !(ack > 0)))
    throw new DeliveryDecodeError('ack must be a positive number of milliseconds');
  const dataJson = decoder.decode(bytes.subarray(split + 1));
  if (dataJson.length === 0) throw new DeliveryDecodeError('data is empty');
  const d: Delivery = { id, event, sentAt, userIds: u as string[], dataJson };
  if (ack !== undefined) d.ackTimeoutMs = ack as number;
  return d;
}

function decodeLegacyDelivery(bytes: Uint8Array): Delivery & { legacy: true } {
  let e: Record<string, unknown>;
  try {
    e = JSON.parse(decoder.decode(bytes)) as Record<string, unknown>;
  } catch (err) {
    throw new DeliveryDecodeError('no data part, and not a JSON request either', { cause: err });
  }
  const { id, event, sentAt, userIds, ackTimeoutMs, data } = e ?? {};
  if (typeof id !== 'string' || typeof event !== 'string' || typeof sentAt !== 'number')
    throw new DeliveryDecodeError('id, event and sentAt are required');
  if (
    !Array.isArray(userIds) ||
    userIds.length === 0 ||
    !userIds.every((x) => typeof x === 'string')
  )
    throw new DeliveryDecodeError('userIds must be a non-empty list of user ids');
  const d: Delivery & { legacy: true } = {
    id,
    event,
    sentAt,
    userIds: userIds as string[],
    dataJson: JSON.stringify(data ?? null),
    legacy: true,
  };
  if (typeof ackTimeoutMs === 'number' && ackTimeoutMs > 0) d.ackTimeoutMs = ackTimeoutMs;
  return d;
}

/** The reply to a request in the format before v1. */
export function encodeLegacyNodeReply(userIds: readonly string[], r: NodeReply): string {
  const results: Record<string, UserDelivery> = {};
  userIds.forEach((u, i) => {
    results[u] =
      r.acked === undefined
        ? { connections: r.connections[i]! }
        : { connections: r.connections[i]!, acked: r.acked[i]! };
  });
  return JSON.stringify({ nodeId: r.nodeId, epoch: r.epoch, results });
}

/** The reply's JSON text. */
export function encodeNodeReply(r: NodeReply): string {
  const acked = r.acked ? `,"a":${JSON.stringify(r.acked)}` : '';
  return `{"v":${DELIVERY_VERSION},"n":${JSON.stringify(r.nodeId)},"e":${JSON.stringify(r.epoch)},"c":${JSON.stringify(r.connections)}${acked}}`;
}

const isCounts = (x: unknown, n: number): x is number[] =>
  Array.isArray(x) && x.length === n && x.every((c) => typeof c === 'number' && c >= 0);

/** Parses a reply to a request for `users` recipients; throws {@link DeliveryDecodeError}. */
export function decodeNodeReply(bytes: Uint8Array, users: number): NodeReply {
  let r: Record<string, unknown>;
  try {
    r = JSON.parse(decoder.decode(bytes)) as Record<string, unknown>;
  } catch (err) {
    throw new DeliveryDecodeError('reply is not JSON', { cause: err });
  }
  if (r === null || typeof r !== 'object' || r.v !== DELIVERY_VERSION)
    throw new DeliveryDecodeError(`unsupported reply ${JSON.stringify(r).slice(0, 200)}`);
  if (typeof r.n !== 'string' || typeof r.e !== 'string' || !isCounts(r.c, users))
    throw new DeliveryDecodeError('reply needs n, e and c with one count per user');
  if (r.a !== undefined && !isCounts(r.a, users))
    throw new DeliveryDecodeError('reply a needs one count per user');
  const reply: NodeReply = { nodeId: r.n, epoch: r.e, connections: r.c };
  if (r.a !== undefined) reply.acked = r.a as number[];
  return reply;
}

/** A message for every connected user, on `push.v1.broadcast` (not on the per-message path). */
export const BroadcastEnvelope = z.object({
  id: z.string(),
  event: z.string(),
  data: z.unknown(),
  sentAt: z.number(),
});
export type BroadcastEnvelope = z.infer<typeof BroadcastEnvelope>;
