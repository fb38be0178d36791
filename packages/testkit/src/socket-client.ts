/** Real socket.io-client connections for tests, with helpers to wait and collect. */
import { io, type Socket } from 'socket.io-client';

export type { Socket as ClientSocket };

export type Received = { event: string; data: unknown; meta: { id: string; sentAt: number } };

export type ConnectClientOptions = {
  token?: string;
  /** Reconnect automatically (default false: tests decide). */
  reconnection?: boolean;
  timeoutMs?: number;
  transports?: ('websocket' | 'polling')[];
};

/**
 * Opens a client and resolves once it is connected; rejects with the server's
 * `connect_error` (its message is the contract's reason, e.g. `unauthorized`).
 */
export function connectClient(url: string, options: ConnectClientOptions = {}): Promise<Socket> {
  const socket = io(url, {
    auth: options.token === undefined ? {} : { token: options.token },
    reconnection: options.reconnection ?? false,
    transports: options.transports ?? ['websocket'],
    timeout: options.timeoutMs ?? 5_000,
    forceNew: true,
  });
  return new Promise((resolve, reject) => {
    socket.once('connect', () => {
      socket.off('connect_error');
      resolve(socket);
    });
    socket.once('connect_error', (err) => {
      socket.close();
      // The edge's refusals reject as they are (the message is the contract's reason); a
      // transport error says only "websocket error": name the edge and the cause under it.
      const { description } = err as Error & { description?: unknown };
      if (description === undefined) return reject(err);
      const cause =
        (description as { message?: string; error?: { message?: string } }).error?.message ??
        (description as { message?: string }).message;
      reject(
        new Error(`connect to ${url}: ${err.message} (${cause ?? 'no cause given'})`, {
          cause: err,
        }),
      );
    });
  });
}

/** Records every message the socket receives (any event), acking when asked. */
export function collect(socket: Socket, options: { ack?: boolean } = {}): Received[] {
  const got: Received[] = [];
  socket.onAny((event: string, data: unknown, meta: Received['meta'], ack?: () => void) => {
    got.push({ event, data, meta });
    if (typeof ack === 'function' && options.ack !== false) ack();
  });
  return got;
}
