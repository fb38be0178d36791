/**
 * What the push API needs from the things around it, each declared here by its consumer
 * (the router, the routes) and no wider than that consumer uses. The real classes satisfy
 * them as they are (structural typing: `start-push-api.ts` passes them in unchanged), and
 * `test/unit/fakes.ts` has in-memory ones, so the router's outcome logic and the HTTP
 * layer are tested without a nats-server.
 *
 * An interface costs nothing at run time: the per-message path calls the same methods on
 * the same objects as before, with no adapter in between.
 */
import type {
  Device,
  DeviceRegistration,
  FallbackMessage,
  NodePresence,
  PresenceView,
  RecipientResult,
  SendMessageRequest,
  SendRecord,
  StatusRecord,
} from '@switchboard/protocol';
import type { Claim } from './idempotency-store.js';

// ---- The router's ports ---------------------------------------------------------------

/**
 * Presence lookup from KV, filtered by node leases (`PresenceReader`): where a user is
 * connected, and which of a user's node entries are alive.
 */
export interface PresenceLookup {
  /** One view per user, in order; rejects when presence cannot be read. */
  lookupMany(userIds: readonly string[]): Promise<PresenceView[]>;
  /** The ids of the nodes in `nodes` whose lease is alive with the same epoch. No I/O. */
  aliveNodeIds(nodes: Record<string, NodePresence>): string[];
}

/**
 * In-memory presence (`PresenceMirror`): a user's node entries (not yet filtered by
 * lease), or `undefined` when it cannot vouch for the answer (then the router reads KV).
 */
export interface PresenceCache {
  nodes(userId: string): Record<string, NodePresence> | undefined;
}

/**
 * Request/reply to the edge nodes on `push.v1.node.<nodeId>` (`RequestMux`): resolves
 * with the first reply; rejects at once when nobody serves the subject (no responders),
 * after `timeoutMs` without a reply, or when the publish fails.
 */
export interface NodeRequests {
  request(subject: string, payload: Uint8Array, timeoutMs: number): Promise<{ data: Uint8Array }>;
}

/**
 * The OS push hand-off (`FallbackQueue`): resolves once the message is stored durably;
 * rejects when it could not be, never later than `deadline` (ms since the epoch).
 */
export interface FallbackHandOff {
  enqueue(message: FallbackMessage, deadline?: number): Promise<void>;
}

/**
 * Where the send records of plain deliveries go (`StatusBatcher`): queued and written in
 * batches; never throws, never blocks.
 */
export interface StatusSink {
  add(record: SendRecord): void;
}

/**
 * What the router needs of the NATS connection itself (a `NatsConnection`): the server's
 * max_payload, which bounds every request and can change on reconnect, and a
 * fire-and-forget publish for the send records it writes at once.
 */
export interface NatsLink {
  readonly info?: { readonly max_payload: number } | undefined;
  publish(subject: string, payload: string): void;
}

// ---- The routes' ports -----------------------------------------------------------------

/** A message as the router takes it: the request's fields with the id and recipients settled. */
export type OutgoingMessage = Omit<SendMessageRequest, 'to' | 'id'> & {
  id: string;
  to: string[];
  /** The sending API key's id: its status records and fallback hand-offs carry it. */
  owner?: string;
};

/**
 * Routing a message (`DeliveryRouter`): one result per distinct recipient, in order.
 * Rejects only before anything was sent (`MessageTooLargeError`, presence unreadable).
 */
export interface MessageRouter {
  send(message: OutgoingMessage): Promise<RecipientResult[]>;
}

/**
 * Idempotency keys (`IdempotencyStore`): claims a key for a request, or says what the
 * first request with it answered; rejects with `IdempotencyUnavailableError` when the
 * store cannot be used.
 */
export interface IdempotencyClaims<R> {
  claim(key: string, fingerprint: string, waitTimeoutMs: number): Promise<Claim<R>>;
}

/**
 * What the broadcast route needs of NATS (a `NatsConnection`): one publish, flushed, and
 * the server's max_payload.
 */
export interface BroadcastLink {
  readonly info?: { readonly max_payload: number } | undefined;
  publish(subject: string, payload: string): void;
  flush(): Promise<void>;
}

/** A message's stored status records (`readStatus` of `@switchboard/message-status`). */
export type StatusRecords = (messageId: string) => Promise<StatusRecord[]>;

/**
 * The device registry (`DeviceRegistry`). `put` rejects with `TooManyDevicesError` past
 * the per-user bound; any other rejection means the registry is unavailable.
 */
export interface DeviceStore {
  put(userId: string, deviceId: string, registration: DeviceRegistration): Promise<Device>;
  /** False when there was no such device. */
  remove(userId: string, deviceId: string): Promise<boolean>;
  list(userId: string): Promise<Device[]>;
}
