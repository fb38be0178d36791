/**
 * Delivery — emits one NATS delivery to this node's local sockets and says per user how
 * many connections it reached (and, when an ack was asked, how many confirmed).
 *
 * Without ack (the common case) the Socket.IO packet is built once per delivery, with the
 * message's data spliced in as the sender's JSON text, and the same string is written to
 * every target socket's transport: no parse of the data, no encode per socket.
 */
import type { Delivery, MessageMeta } from '@switchboard/protocol';
import type { LocalSockets } from './local-sockets.js';

/** The part of an Engine.IO connection that delivery uses. */
export type Conn = {
  readyState: string;
  /** A Socket.IO packet written here reaches the client as emitted. */
  write(packet: string): unknown;
  /** Packets Engine.IO holds until the transport can take them (long-polling, a busy socket). */
  writeBuffer?: unknown[];
  /** The WebSocket transport's `ws` socket, whose `bufferedAmount` is what the kernel has not sent. */
  transport?: { socket?: { bufferedAmount?: number } };
};

/** The part of a Socket.IO socket that delivery uses. */
export type Emitter = {
  id: string;
  conn: Conn;
  timeout(ms: number): { emit(event: string, ...args: unknown[]): boolean };
};

/**
 * OutboundLimit — bytes queued to one client, bounded. What Engine.IO holds (counted from
 * our own writes since its buffer was last empty) plus what the WebSocket has not handed to
 * the kernel; a write that would pass `maxBytes` is not made and `onSlow` is called (the
 * edge disconnects the socket as a slow consumer). O(1) per write.
 */
export class OutboundLimit<S extends { conn: object } = Emitter> {
  readonly #held = new WeakMap<Conn, number>();
  constructor(
    readonly maxBytes: number,
    readonly onSlow: (socket: S, queued: number) => void,
  ) {}

  /** True when a write of `bytes` to `socket` fits (and records it); else calls `onSlow`. */
  admit(socket: S, bytes: number): boolean {
    const conn = socket.conn as Conn;
    const held = (conn.writeBuffer?.length ?? 0) > 0 ? (this.#held.get(conn) ?? 0) : 0;
    const queued = held + (conn.transport?.socket?.bufferedAmount ?? 0);
    if (queued + bytes > this.maxBytes) {
      this.onSlow(socket, queued);
      return false;
    }
    this.#held.set(conn, held + bytes);
    return true;
  }
}

/**
 * The Socket.IO v5 protocol EVENT packet for the default namespace (`2` + the JSON array
 * of event and arguments), exactly what `socket.emit(event, data, meta)` would encode.
 */
export function eventPacket(d: Delivery): string {
  return `2[${JSON.stringify(d.event)},${d.dataJson},{"id":${JSON.stringify(d.id)},"sentAt":${d.sentAt}}]`;
}

/**
 * Writes without waiting; returns the connections reached per user, in `userIds` order. A
 * socket past its outbound limit is not written to and does not count as reached.
 */
export function deliverNow(
  sockets: LocalSockets<Emitter>,
  d: Delivery,
  limit?: OutboundLimit,
): number[] {
  const packet = eventPacket(d);
  const reached = new Array<number>(d.userIds.length);
  for (let i = 0; i < d.userIds.length; i++) {
    let n = 0;
    for (const s of sockets.get(d.userIds[i]!)) {
      if (s.conn.readyState !== 'open') continue;
      if (limit && !limit.admit(s, packet.length)) continue;
      s.conn.write(packet);
      n++;
    }
    reached[i] = n;
  }
  return reached;
}

/**
 * Emits with an acknowledgement per socket. A user resolves at its first ack, or when
 * every socket has failed or timed out; the whole call takes at most `ackTimeoutMs`.
 */
export async function deliverWithAck(
  sockets: LocalSockets<Emitter>,
  d: Delivery & { ackTimeoutMs: number },
  limit?: OutboundLimit,
): Promise<{ connections: number[]; acked: number[] }> {
  const meta: MessageMeta = { id: d.id, sentAt: d.sentAt };
  const data: unknown = JSON.parse(d.dataJson);
  const connections = new Array<number>(d.userIds.length).fill(0);
  const acked = new Array<number>(d.userIds.length).fill(0);
  await Promise.all(
    d.userIds.map(
      (userId, i) =>
        new Promise<void>((resolve) => {
          const targets = [...sockets.get(userId)].filter(
            (s) => !limit || limit.admit(s, d.dataJson.length + d.event.length + 64),
          );
          connections[i] = targets.length;
          if (targets.length === 0) return resolve();
          let pending = targets.length;
          for (const s of targets) {
            s.timeout(d.ackTimeoutMs).emit(d.event, data, meta, (err: unknown) => {
              if (!err) acked[i]! += 1;
              pending--;
              if (!err || pending === 0) resolve();
            });
          }
        }),
    ),
  );
  return { connections, acked };
}
