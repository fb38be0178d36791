/**
 * SocketHub — this node's local sockets (Centrifuge's Hub). It owns the Socket.IO server
 * (attached to the node's HTTP server, with its options), the index userId → sockets
 * ({@link LocalSockets}), the bound on bytes queued to each socket (a slow consumer is
 * closed), closing a socket on the node's own account (`$closing` first), broadcast to
 * every local socket, and the drain of clients.
 *
 * It decides nothing about who may connect (the {@link SocketGate}, the handshake, does)
 * and writes no presence (the presence writer does): the gate adds and removes sockets.
 * The node bus reads {@link index} and {@link outbound} once and delivers through them
 * directly, so the per-message path goes through no method of the hub.
 */
import type { Server as HttpServer } from 'node:http';
import {
  type ClientToServerEvents,
  type CloseReason,
  CloseReasons,
  ControlEvents,
  type InterServerEvents,
  type MessageMeta,
  type ServerToClientEvents,
  type SocketData,
} from '@switchboard/protocol';
import type { Logger } from 'pino';
import { Server, type Socket } from 'socket.io';
import type { EdgeConfig } from './config.js';
import { OutboundLimit } from './delivery.js';
import { LocalSockets } from './local-sockets.js';
import type { EdgeMetrics } from './metrics.js';

export type EdgeSocket = Socket<
  ClientToServerEvents,
  ServerToClientEvents,
  InterServerEvents,
  SocketData
>;

/** Who lets sockets in: Socket.IO middleware, then the socket once it is connected. */
export type SocketGate = {
  authenticate(socket: EdgeSocket, next: (err?: Error) => void): Promise<void>;
  connected(socket: EdgeSocket): void;
};

export type SocketHubOptions = {
  /** The node's HTTP server; Socket.IO attaches to it (the node listens and closes it). */
  http: HttpServer;
  config: Pick<EdgeConfig, 'corsOrigins' | 'maxBufferedBytes'>;
  metrics: EdgeMetrics;
  log: Logger;
};

/** How long a slow consumer's connection may linger after its close was sent. */
const SLOW_CONSUMER_TERMINATE_MS = 1_000;

export class SocketHub {
  /** userId → this node's connected sockets. */
  readonly index = new LocalSockets<EdgeSocket>();
  /** Bytes queued per socket, bounded by `maxBufferedBytes`; past it the socket is closed. */
  readonly outbound: OutboundLimit<EdgeSocket>;
  readonly #io: Server<ClientToServerEvents, ServerToClientEvents, InterServerEvents, SocketData>;
  readonly #metrics: EdgeMetrics;
  /** Sockets this node is closing itself (slow consumer, expired token). */
  readonly #closing = new WeakSet<EdgeSocket>();

  constructor(options: SocketHubOptions) {
    const { config, log } = options;
    this.#metrics = options.metrics;
    this.outbound = new OutboundLimit<EdgeSocket>(config.maxBufferedBytes, (socket, queued) => {
      if (!this.#closing.has(socket))
        log.warn({ userId: socket.data.userId, queued }, 'slow consumer disconnected');
      this.close(socket, CloseReasons.slowConsumer);
    });
    this.#io = new Server(options.http, {
      cors: { origin: config.corsOrigins === '*' ? '*' : config.corsOrigins },
      // Clients reconnect on their own; a short ping keeps dead TCP connections from lingering.
      pingInterval: 20_000,
      pingTimeout: 20_000,
      maxHttpBufferSize: 64 * 1024,
      serveClient: false,
    });
  }

  /** Every handshake goes through `gate`; connected sockets are handed to it. */
  admitThrough(gate: SocketGate): void {
    this.#io.use((socket, next) => void gate.authenticate(socket, next));
    this.#io.on('connection', (socket) => gate.connected(socket));
  }

  get connections(): number {
    return this.index.connections;
  }

  get users(): number {
    return this.index.users;
  }

  /** Adds a socket to the index; returns the user's connection count on this node. */
  add(userId: string, socket: EdgeSocket): number {
    return this.index.add(userId, socket);
  }

  /** Removes a socket from the index; returns the user's connection count on this node. */
  remove(userId: string, socket: EdgeSocket): number {
    return this.index.remove(userId, socket);
  }

  /** Closes a socket on the node's own account, telling the client why first. */
  close(socket: EdgeSocket, reason: CloseReason): void {
    if (this.#closing.has(socket)) return;
    this.#closing.add(socket);
    this.#metrics.closed.inc({ reason });
    // Not in the middle of a delivery loop over this user's sockets.
    queueMicrotask(() => {
      emitControl(socket, ControlEvents.closing, { reason });
      socket.disconnect(true);
      // A client that does not read never answers the WebSocket close: drop the TCP
      // connection after a moment instead of holding it (and a drain) for ws's 30 s.
      if (reason === CloseReasons.slowConsumer) {
        const ws = (socket.conn as unknown as { transport?: { socket?: { terminate?(): void } } })
          .transport?.socket;
        setTimeout(() => ws?.terminate?.(), SLOW_CONSUMER_TERMINATE_MS).unref();
      }
    });
  }

  /** Emits to every socket on this node (not to other nodes: each gets the broadcast). */
  broadcast(event: string, data: unknown, meta: MessageMeta): void {
    this.#io.local.emit(event, data, meta);
  }

  /** Closes every client's transport: clients reconnect (elsewhere, once this node drains). */
  disconnectAll(): void {
    // Closing the transport (not socket.disconnect()) makes clients reconnect.
    for (const socket of this.#io.of('/').sockets.values()) socket.conn.close();
  }

  /**
   * Closes every client's transport and waits (at most `timeoutMs`) until each socket has
   * left the index, so every disconnect has recorded its removal. Resolves false on timeout.
   */
  async drain(timeoutMs: number): Promise<boolean> {
    this.disconnectAll();
    const deadline = Date.now() + timeoutMs;
    while (this.index.connections > 0 && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 10));
    return this.index.connections === 0;
  }

  /** Closes the Socket.IO server (and with it the HTTP server it is attached to). */
  shutdown(): Promise<void> {
    return new Promise<void>((resolve) => this.#io.close(() => resolve()));
  }
}

/** Control events carry one payload, outside the message events' `(data, meta)` shape. */
export function emitControl(socket: EdgeSocket, event: string, payload: object): void {
  (socket.emit as (event: string, ...args: unknown[]) => boolean)(event, payload);
}
