/** The Socket.IO side of the contract: event maps, meta, control events, connect errors. */

/** Second argument of every delivered message. */
export type MessageMeta = { id: string; sentAt: number };

/**
 * Control events between the edge and its clients. They start with `$`, which no message
 * event may (message events start with a letter or digit), so they never collide with an
 * application's events.
 */
export const ControlEvents = {
  /**
   * Client → edge: `(token: string, ack: (result: RefreshResult) => void)`. Replaces the
   * socket's token before it expires; the new token must name the same user (`sub`).
   */
  refresh: '$refresh',
  /**
   * Edge → client: `({ expiresAt })` (ms since the epoch), sent once, about
   * `TOKEN_EXPIRY_WARNING_MS` (default 30 s) before the socket's token expires. A client
   * that does not refresh by `expiresAt` is disconnected with reason `expired`.
   */
  expiring: '$expiring',
  /**
   * Edge → client: `({ reason: CloseReason })`, sent right before the edge disconnects the
   * socket itself (Socket.IO's `io server disconnect` on the client, which does not
   * reconnect on its own).
   */
  closing: '$closing',
} as const;

/** Why the edge closed a socket (the `$closing` event's `reason`). */
export const CloseReasons = {
  /** The token expired and was not refreshed: get a new token and reconnect. */
  expired: 'expired',
  /** The client read too slowly: more than `EDGE_MAX_BUFFERED_BYTES` were queued for it. */
  slowConsumer: 'slow_consumer',
} as const;
export type CloseReason = (typeof CloseReasons)[keyof typeof CloseReasons];

export type RefreshResult =
  | { ok: true; expiresAt: number }
  | { ok: false; error: 'unauthorized' | 'expired' | 'forbidden' };

/** Messages arrive under their own event name, so the map is open. */
export type ServerToClientEvents = {
  [event: string]: (data: unknown, meta: MessageMeta, ack?: () => void) => void;
};

/** Clients publish nothing through Switchboard; they only refresh their token. */
export type ClientToServerEvents = {
  [ControlEvents.refresh]: (token: string, ack: (result: RefreshResult) => void) => void;
};

export type InterServerEvents = Record<string, never>;

/** What the edge keeps per socket after authentication. */
export type SocketData = { userId: string; expiresAt: number };

/**
 * `connect_error` messages. `unauthorized` (bad signature, claims, user id) and `expired`
 * (the token's `exp` has passed: get a fresh token, then retry) need a new token; the
 * others ask to retry later with backoff: `overloaded` (the node's or this address's
 * connect rate, or its connection cap), `too_many_connections` (the user already holds
 * `MAX_CONNECTIONS_PER_USER` connections cluster-wide), `draining`, `unavailable` (the node
 * could not record the connection in presence in time).
 */
export const ConnectErrors = {
  unauthorized: 'unauthorized',
  expired: 'expired',
  overloaded: 'overloaded',
  tooManyConnections: 'too_many_connections',
  draining: 'draining',
  unavailable: 'unavailable',
} as const;
export type ConnectError = (typeof ConnectErrors)[keyof typeof ConnectErrors];
