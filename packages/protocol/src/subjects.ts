/**
 * NATS subjects, KV bucket names and stream names of protocol v1.
 * Every process builds names here, never by hand.
 */
import { encodeUserKey } from './user-key.js';

export const Subjects = {
  /** Prefix of every per-node delivery subject. */
  nodePrefix: 'push.v1.node',
  /** One publish reaches every edge node. */
  broadcast: 'push.v1.broadcast',
  /** Presence lookups for NATS-native services (request/reply). */
  presenceQuery: 'presence.v1.query',
  /** User-level online/offline transitions. */
  presenceEvents: 'presence.v1.events',
  /** Prefix of the fallback stream's subjects. */
  fallbackPrefix: 'push.v1.fallback',
  /** Prefix of the dead-letter stream's subjects. */
  dlqPrefix: 'push.v1.dlq',
  /** Prefix of the message status stream's per-message subjects. */
  statusPrefix: 'status.v1.message',
  /** Prefix of the status stream's batch subjects (`status.v1.batch.<second>`). */
  statusBatchPrefix: 'status.v1.batch',
} as const;

export const Buckets = {
  nodes: 'presence-nodes',
  users: 'presence-users',
  /** One key held by the presence replica that cleans up and emits events. */
  presenceLeader: 'presence-leader',
  devices: 'devices',
  idempotency: 'push-idempotency',
} as const;

export const Streams = {
  fallback: 'PUSH_FALLBACK',
  fallbackDlq: 'PUSH_FALLBACK_DLQ',
  status: 'PUSH_STATUS',
} as const;

/** Node ids are used as a subject token and a KV key: keep them to a safe alphabet. */
export const NODE_ID_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;

/** `push.v1.node.<nodeId>`: deliveries for the users connected to one node. */
export function nodeSubject(nodeId: string): string {
  return `${Subjects.nodePrefix}.${nodeId}`;
}

/** `push.v1.fallback.<userKey>`: the fallback stream subject of one user's messages. */
export function fallbackSubject(userId: string): string {
  return `${Subjects.fallbackPrefix}.${encodeUserKey(userId)}`;
}

/** `push.v1.dlq.<userKey>`: a fallback message that exhausted its attempts. */
export function dlqSubject(userId: string): string {
  return `${Subjects.dlqPrefix}.${encodeUserKey(userId)}`;
}

/** `status.v1.message.<idKey>.send`, or `status.v1.message.<idKey>.user.<userKey>` for one recipient. */
export function statusSubject(messageId: string, userId?: string): string {
  const base = `${Subjects.statusPrefix}.${encodeUserKey(messageId)}`;
  return userId === undefined ? `${base}.send` : `${base}.user.${encodeUserKey(userId)}`;
}

/**
 * `status.v1.batch.<second>`: the batches of send records whose message id (a UUIDv7)
 * carries a time in that Unix second, whichever process wrote them.
 */
export function statusBatchSubject(second: number): string {
  return `${Subjects.statusBatchPrefix}.${second}`;
}
