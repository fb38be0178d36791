/** The Socket.IO side of the contract: event maps, meta, connect errors. */

/** Second argument of every delivered message. */
export type MessageMeta = { id: string; sentAt: number };

/** Messages arrive under their own event name, so the map is open. */
export type ServerToClientEvents = {
  [event: string]: (data: unknown, meta: MessageMeta, ack?: () => void) => void;
};

/** Clients never publish through Switchboard. */
export type ClientToServerEvents = Record<string, never>;

export type InterServerEvents = Record<string, never>;

/** What the edge keeps per socket after authentication. */
export type SocketData = { userId: string };

/**
 * `connect_error` messages: `unauthorized` is terminal; the others ask to retry later
 * (`unavailable`: the node could not record the connection in presence in time).
 */
export const ConnectErrors = {
  unauthorized: 'unauthorized',
  overloaded: 'overloaded',
  draining: 'draining',
  unavailable: 'unavailable',
} as const;
export type ConnectError = (typeof ConnectErrors)[keyof typeof ConnectErrors];
