/**
 * The Socket.IO contract the client speaks, copied from `@switchboard/protocol/socket`
 * (which is private and pulls in zod): the client depends on socket.io-client only. A test
 * checks these stay equal to the protocol's.
 */

/** Second argument of every delivered message. */
export type MessageMeta = { id: string; sentAt: number };

/** Control events between the edge and its clients (they start with `$`). */
export const ControlEvents = {
  /** Client → edge: `(token, ack(RefreshResult))`, replaces the socket's token. */
  refresh: '$refresh',
  /** Edge → client: `({ expiresAt })`, the token runs out at `expiresAt` (ms). */
  expiring: '$expiring',
  /** Edge → client: `({ reason })`, sent right before the edge disconnects the socket. */
  closing: '$closing',
} as const;

/** Why the edge closed a socket (the `$closing` event's `reason`). */
export const CloseReasons = {
  expired: 'expired',
  slowConsumer: 'slow_consumer',
} as const;
export type CloseReason = (typeof CloseReasons)[keyof typeof CloseReasons];

/** The edge's answer to `$refresh`. */
export type RefreshResult =
  | { ok: true; expiresAt: number }
  | { ok: false; error: 'unauthorized' | 'expired' | 'forbidden' };

/** `connect_error` messages the edge sends. */
export const ConnectErrors = {
  unauthorized: 'unauthorized',
  expired: 'expired',
  overloaded: 'overloaded',
  tooManyConnections: 'too_many_connections',
  draining: 'draining',
  unavailable: 'unavailable',
} as const;
export type ConnectError = (typeof ConnectErrors)[keyof typeof ConnectErrors];
