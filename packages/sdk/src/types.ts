/**
 * The shapes the push API and the presence API take and answer, declared here so the SDK
 * has no runtime dependency. They mirror `@switchboard/protocol` (message.ts, devices.ts,
 * presence.ts, status.ts); the SDK's tests run against the real services, which is what
 * keeps the two in step.
 */

/**
 * A user id: 1 to 256 bytes of well-formed UTF-8 (no lone surrogates), no control
 * characters. The SDK does not check it; the API answers 400 `validation_failed`.
 */
export type UserId = string;

/** What OS push shows when the message cannot be delivered in real time. */
export type FallbackNotification = {
  /** At most 256 characters. */
  title?: string;
  /** At most 4,096 characters. */
  body?: string;
  /** String values only; `aps` is reserved. */
  data?: Record<string, string>;
  /** `apns-collapse-id` / FCM `collapse_key`: at most 64 bytes, no control characters. */
  collapseKey?: string;
  /** 0 to 2,419,200 (28 days). */
  ttlSeconds?: number;
  priority?: 'high' | 'normal';
};

/** The fields of a message, shared by {@link SendMessage} and {@link MulticastMessage}. */
export type MessageFields = {
  /**
   * The Socket.IO event the client receives: 1-100 characters of `[A-Za-z0-9._:/-]`, starting
   * with a letter or digit, and not a name Socket.IO reserves (`connect`, `error`, …).
   */
  event: string;
  /** Any JSON value; the client receives it as the event's first argument. */
  data?: unknown;
  /**
   * Wait for each device to confirm (Socket.IO ack). A recipient whose devices do not
   * confirm within `ackTimeoutMs` counts as not delivered (`ack-timeout`).
   */
  ack?: boolean;
  /** 100 to 60,000 ms; the API's default is 5,000. Used only with `ack`. */
  ackTimeoutMs?: number;
  /** When given, recipients not delivered in real time are handed to OS push with this. */
  fallback?: FallbackNotification;
  /**
   * The message id (1-128 characters of `[A-Za-z0-9._:-]`); the API makes a UUIDv7 when
   * absent. When given, it is also the idempotency key (unless `idempotencyKey` is set):
   * sending the same id again within 24 h returns the first answer and sends nothing.
   */
  id?: string;
};

/** A message to one user: `POST /v1/messages` with `to` a single user id. */
export type SendMessage = MessageFields & { to: UserId };

/** A message to several users: `POST /v1/messages` with `to` an array (1 to 10,000 ids). */
export type MulticastMessage = MessageFields & { to: UserId[] };

/** A message to every connected user: `POST /v1/broadcast`. No ack, no fallback. */
export type BroadcastMessage = {
  event: string;
  data?: unknown;
  /** The broadcast's id (the API makes one when absent). It does NOT deduplicate. */
  id?: string;
};

/** What happened to one recipient. */
export type RecipientStatus = 'delivered' | 'fallback' | 'dropped';

/**
 * Why a recipient was not delivered in real time: `offline`, `ack-timeout`,
 * `node-unavailable` (then `fallback` or `dropped`), or, for `dropped`, its OS push hand-off
 * failed (`fallback-failed`) or was not reached before the send's deadline (`deadline`).
 */
export type UndeliveredReason =
  | 'offline'
  | 'ack-timeout'
  | 'node-unavailable'
  | 'fallback-failed'
  | 'deadline';

export type RecipientResult = {
  userId: UserId;
  /**
   * `delivered`: emitted to `connections` sockets (with `ack`: that many confirmed);
   * `fallback`: not delivered in real time and stored for OS push; `dropped`: not
   * delivered and no `fallback` given, or the OS push hand-off failed.
   */
  status: RecipientStatus;
  /** Connections reached (delivered) or that confirmed (with `ack`). */
  connections?: number;
  /** Set when `status` is not `delivered`. */
  reason?: UndeliveredReason;
};

/** The answer to a send or multicast: the message id and one result per recipient. */
export type SendResult = { id: string; results: RecipientResult[] };

/** The answer to a broadcast. */
export type BroadcastResult = { id: string };

/** A user's presence (`GET /v1/presence/:userId`). */
export type Presence = {
  userId: UserId;
  online: boolean;
  connections: number;
  nodes: { nodeId: string; connections: number; since: number }[];
  /** Epoch ms of the last disconnect that left the user with no connection. */
  lastSeen?: number;
};

/** `POST /v1/presence/query`: each queried user (duplicates once) to its summary. */
export type PresenceQueryResult = {
  users: Record<UserId, { online: boolean; connections: number }>;
};

export type Platform = 'apns' | 'fcm' | 'webhook';

/** A device to register for OS push (`PUT /v1/users/:userId/devices/:deviceId`). */
export type DeviceRegistration = {
  platform: Platform;
  /** The APNs hex token, the FCM registration token, or the webhook URL. */
  token: string;
  /** The APNs topic (bundle id) or FCM app id; defaults come from the provider config. */
  appId?: string;
  /** APNs development environment (apns only). */
  sandbox?: boolean;
};

/** A registered device. */
export type Device = {
  deviceId: string;
  platform: Platform;
  token: string;
  appId?: string;
  sandbox?: boolean;
  /** Epoch ms. */
  updatedAt: number;
};

/** `GET /v1/users/:userId/devices`. */
export type DeviceList = { userId: UserId; devices: Device[] };

export type TimelineStep =
  | 'accepted'
  | 'routed'
  | 'delivered'
  | 'acked'
  | 'dropped'
  | 'queued-for-fallback'
  | 'provider-accepted'
  | 'provider-rejected'
  | 'provider-retry'
  | 'device-removed'
  | 'no-devices'
  | 'dead-lettered';

export type TimelineEntry = {
  /** Epoch ms. */
  at: number;
  step: TimelineStep;
  detail?: string;
  nodeId?: string;
  deviceId?: string;
  platform?: string;
};

/** `GET /v1/messages/:id`: what happened to a message, per recipient (kept 24 h). */
export type MessageStatus = {
  id: string;
  event: string;
  recipients: { userId: UserId; status: RecipientStatus; timeline: TimelineEntry[] }[];
};

/** The `code` of every error body the APIs answer. */
export type ErrorCode =
  | 'bad_request'
  | 'validation_failed'
  | 'unauthorized'
  | 'not_found'
  | 'conflict'
  | 'payload_too_large'
  | 'unsupported_media_type'
  | 'rate_limited'
  | 'unavailable'
  | 'internal_error';
