/** `createSwitchboard`: the service-side client of the push API and the presence API. */

import { DEFAULT_RETRIES, type RetryOptions } from './retry.js';
import { Transport } from './transport.js';
import type {
  BroadcastMessage,
  BroadcastResult,
  Device,
  DeviceList,
  DeviceRegistration,
  MessageStatus,
  MulticastMessage,
  Presence,
  PresenceQueryResult,
  SendMessage,
  SendResult,
  UserId,
} from './types.js';

/** Options of {@link createSwitchboard}. */
export type SwitchboardOptions = {
  /** The push API's base URL, e.g. `http://127.0.0.1:3000`. */
  apiUrl: string;
  /** An API key from the services' `API_KEYS`, sent as `Authorization: Bearer <key>`. */
  apiKey: string;
  /**
   * The presence API's base URL (the presence service listens on its own port, e.g.
   * `http://127.0.0.1:3001`). Without it, `presence.*` calls reject.
   */
  presenceUrl?: string;
  /**
   * How long one attempt may take, in ms, default 20,000: the push API answers a send
   * within its `SEND_TIMEOUT_MS` (15 s) plus the node timeouts. A send with `ack` gets its
   * `ackTimeoutMs` (default 5,000) on top, since the API answers only after the acks.
   */
  timeoutMs?: number;
  /** Retries of network errors, timeouts, 503 and 429; defaults `{ max: 3, minDelayMs: 200, maxDelayMs: 10_000 }`. */
  retries?: Partial<RetryOptions>;
  /** The `fetch` to use (default: the global one). */
  fetch?: typeof fetch;
};

/** Per-call options. */
export type CallOptions = {
  /** Aborts the call, retries and waits included; the call rejects with the signal's reason. */
  signal?: AbortSignal;
};

/** Per-call options of `send` and `multicast`. */
export type SendOptions = CallOptions & {
  /**
   * The `Idempotency-Key` (1-255 characters). Default: the message `id` when given, else a
   * fresh UUID per call. Every retry of one call sends the same key, so the API answers a
   * retry with the first response and never sends twice. Pass the key of an earlier call
   * (`err.idempotencyKey`) to learn its outcome without sending again (24 h).
   */
  idempotencyKey?: string;
};

/** The client {@link createSwitchboard} returns. */
export type Switchboard = {
  /**
   * Sends a message to one user (`POST /v1/messages`): delivered over Socket.IO to each of
   * the user's connections, else handed to OS push when `fallback` is given, else dropped.
   * Retried safely (see {@link SendOptions.idempotencyKey}).
   *
   * @returns the message id and the user's result (`results` has one entry).
   * @throws {SwitchboardError} the API refused it (400 `validation_failed`, 401, 413, …).
   * @throws {SwitchboardNetworkError} no answer after the retries: the outcome is unknown.
   */
  send(message: SendMessage, options?: SendOptions): Promise<SendResult>;
  /**
   * Sends one message to several users (1 to 10,000) in one request, with one result per
   * recipient. Same delivery, fallback and retry rules as {@link Switchboard.send}.
   */
  multicast(message: MulticastMessage, options?: SendOptions): Promise<SendResult>;
  /**
   * Sends a message to every connected user (`POST /v1/broadcast`): no ack, no fallback.
   * Idempotent like a send (the API keeps broadcast answers by `Idempotency-Key`): the
   * key (yours, the message `id`, or a fresh UUID per call) is kept across retries, so a
   * lost response is answered with the first one and the broadcast goes out once.
   */
  broadcast(message: BroadcastMessage, options?: SendOptions): Promise<BroadcastResult>;
  /** Presence, from the presence service (`presenceUrl`). */
  presence: {
    /** A user's presence: online, connections, nodes, last seen (`GET /v1/presence/:userId`). */
    get(userId: UserId, options?: CallOptions): Promise<Presence>;
    /** Presence of up to 1,000 users at once (`POST /v1/presence/query`). */
    query(userIds: UserId[], options?: CallOptions): Promise<PresenceQueryResult>;
  };
  /** The devices OS push reaches a user on. */
  devices: {
    /**
     * Registers or replaces a device (`PUT /v1/users/:userId/devices/:deviceId`; device
     * ids are 1-128 characters of `[A-Za-z0-9_-]`, at most 100 devices per user).
     * @throws {SwitchboardError} 400 for a token that does not fit the platform or a webhook
     * host that is not allowed; 409 `conflict` when the user already has 100 devices.
     */
    put(
      userId: UserId,
      deviceId: string,
      device: DeviceRegistration,
      options?: CallOptions,
    ): Promise<Device>;
    /**
     * Removes a device (`DELETE`).
     * @throws {SwitchboardError} 404 `not_found` when the user has no such device (also when
     * a retry of this call finds the device its lost first attempt removed).
     */
    delete(userId: UserId, deviceId: string, options?: CallOptions): Promise<void>;
    /** A user's devices (`GET /v1/users/:userId/devices`). */
    list(userId: UserId, options?: CallOptions): Promise<DeviceList>;
  };
  messages: {
    /**
     * What happened to a message, per recipient, as a timeline (`GET /v1/messages/:id`,
     * kept 24 h). Status is written shortly after the send (batched every 100 ms).
     * @throws {SwitchboardError} 404 `not_found` for an unknown (or not yet recorded) id.
     */
    status(id: string, options?: CallOptions): Promise<MessageStatus>;
  };
};

const DEFAULT_TIMEOUT_MS = 20_000;
/** The API's default `ackTimeoutMs`. */
const DEFAULT_ACK_TIMEOUT_MS = 5_000;

/** `encodeURIComponent`, with a clear error for an id that has no UTF-8 (a lone surrogate). */
function segment(what: string, value: string): string {
  try {
    return encodeURIComponent(value);
  } catch {
    throw new TypeError(`${what} is not well-formed Unicode (it holds a lone surrogate)`);
  }
}

function baseUrl(what: string, url: string): string {
  try {
    new URL(url);
  } catch {
    throw new TypeError(`${what} is not a URL: ${url}`);
  }
  return url.replace(/\/+$/, '');
}

/**
 * Creates a client of the push API (and of the presence API when `presenceUrl` is given).
 *
 * @example
 * const sb = createSwitchboard({ apiUrl: 'http://127.0.0.1:3000', apiKey: process.env.SWITCHBOARD_API_KEY! });
 * const { id, results } = await sb.send({ to: '42', event: 'dm.new', data: { text: 'hi' } });
 */
export function createSwitchboard(options: SwitchboardOptions): Switchboard {
  if (!options.apiKey) throw new TypeError('apiKey is required');
  const api = baseUrl('apiUrl', options.apiUrl);
  const presenceBase =
    options.presenceUrl === undefined ? undefined : baseUrl('presenceUrl', options.presenceUrl);
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  if (!(timeoutMs > 0)) throw new TypeError('timeoutMs must be a number > 0');
  const retries: RetryOptions = { ...DEFAULT_RETRIES, ...options.retries };
  if (!(retries.max >= 0) || !(retries.minDelayMs >= 0) || !(retries.maxDelayMs >= 0))
    throw new TypeError('retries.max, minDelayMs and maxDelayMs must be numbers >= 0');
  const fetchImpl = options.fetch ?? globalThis.fetch;
  if (typeof fetchImpl !== 'function') throw new TypeError('no fetch: pass options.fetch');
  const transport = new Transport({ apiKey: options.apiKey, timeoutMs, retries, fetch: fetchImpl });

  const presenceUrl = (path: string) => {
    if (presenceBase === undefined)
      throw new TypeError('presence needs presenceUrl (the presence service has its own port)');
    return `${presenceBase}${path}`;
  };

  const postMessage = (message: SendMessage | MulticastMessage, o: SendOptions = {}) => {
    const idempotencyKey = o.idempotencyKey ?? message.id ?? globalThis.crypto.randomUUID();
    return transport.call<SendResult>({
      method: 'POST',
      url: `${api}/v1/messages`,
      body: message,
      idempotencyKey,
      policy: 'idempotent',
      // The API answers an acked send only once the acks came or ackTimeoutMs ran out.
      timeoutMs: message.ack
        ? timeoutMs + (message.ackTimeoutMs ?? DEFAULT_ACK_TIMEOUT_MS)
        : timeoutMs,
      signal: o.signal,
    });
  };

  return {
    send: (message, o) => postMessage(message, o),
    multicast: (message, o) => postMessage(message, o),
    broadcast: (message, o = {}) =>
      transport.call<BroadcastResult>({
        method: 'POST',
        url: `${api}/v1/broadcast`,
        body: message,
        idempotencyKey: o.idempotencyKey ?? message.id ?? globalThis.crypto.randomUUID(),
        policy: 'idempotent',
        signal: o.signal,
      }),
    presence: {
      get: async (userId, o = {}) =>
        transport.call<Presence>({
          method: 'GET',
          url: presenceUrl(`/v1/presence/${segment('userId', userId)}`),
          policy: 'idempotent',
          signal: o.signal,
        }),
      query: async (userIds, o = {}) =>
        transport.call<PresenceQueryResult>({
          method: 'POST',
          url: presenceUrl('/v1/presence/query'),
          body: { userIds },
          policy: 'idempotent',
          signal: o.signal,
        }),
    },
    devices: {
      put: async (userId, deviceId, device, o = {}) =>
        transport.call<Device>({
          method: 'PUT',
          url: `${api}/v1/users/${segment('userId', userId)}/devices/${segment('deviceId', deviceId)}`,
          body: device,
          policy: 'idempotent',
          signal: o.signal,
        }),
      delete: async (userId, deviceId, o = {}) => {
        await transport.call<null>({
          method: 'DELETE',
          url: `${api}/v1/users/${segment('userId', userId)}/devices/${segment('deviceId', deviceId)}`,
          policy: 'idempotent',
          signal: o.signal,
        });
      },
      list: async (userId, o = {}) =>
        transport.call<DeviceList>({
          method: 'GET',
          url: `${api}/v1/users/${segment('userId', userId)}/devices`,
          policy: 'idempotent',
          signal: o.signal,
        }),
    },
    messages: {
      status: async (id, o = {}) =>
        transport.call<MessageStatus>({
          method: 'GET',
          url: `${api}/v1/messages/${segment('id', id)}`,
          policy: 'idempotent',
          signal: o.signal,
        }),
    },
  };
}
