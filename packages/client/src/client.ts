/**
 * The Switchboard client: one Socket.IO connection to an edge, driven by its own reconnect
 * policy so that every attempt gets a fresh token from `getToken()`.
 */
import { io, type Socket } from 'socket.io-client';
import { type BackoffOptions, backoffDelay, resolveBackoff } from './backoff.js';
import {
  type CloseReason,
  CloseReasons,
  ConnectErrors,
  ControlEvents,
  type MessageMeta,
  type RefreshResult,
} from './protocol.js';
import { RecentIds } from './recent-ids.js';
import { tokenExpiresAt } from './token.js';

/**
 * - `connecting`: trying to connect (or waiting to retry) and not connected yet since
 *   `connect()` (or `createClient`).
 * - `connected`: a socket is open on `url`; messages arrive.
 * - `reconnecting`: the connection was lost (or refused again); waiting `delayMs`, then
 *   trying with a fresh token.
 * - `disconnected`: not connected and not trying: before `connect()` with
 *   `autoConnect: false`, or after `close()`.
 * - `failed`: gave up: `maxUnauthorized` consecutive `unauthorized` refusals. Terminal
 *   until `connect()` is called again (after the application has a valid login again).
 */
export type ConnectionState =
  | 'connecting'
  | 'connected'
  | 'reconnecting'
  | 'disconnected'
  | 'failed';

/** What `onState` listeners get: on every state change and on every scheduled retry. */
export type StateChange = {
  state: ConnectionState;
  /** The edge connected to (`connected`), or the one the next attempt goes to. */
  url?: string;
  /** Consecutive failed attempts (or lost connections) since the last stable connection. */
  attempt?: number;
  /** When a retry is scheduled: the wait before it, in ms. */
  delayMs?: number;
  /**
   * Why: the `connect_error` message (`unauthorized`, `expired`, `overloaded`, `draining`,
   * …, or socket.io-client's own such as `timeout`, `websocket error`), the `$closing`
   * reason (`expired`, `slow_consumer`), the disconnect reason (`transport close`, …),
   * `token_error` when `getToken` threw, `closed` after `close()`.
   */
  reason?: string;
};

/** What `onRefresh` listeners get: the edge's answer to `$refresh`, or why none came. */
export type RefreshOutcome =
  | RefreshResult
  | { ok: false; error: 'timeout' | 'token_error' | 'disconnected' };

/**
 * A message handler. `ack()` confirms the message to the sender (when it asked for one):
 * with `autoAck` (the default) the client calls it when the handler returns or its promise
 * resolves (calling it earlier is allowed); with `autoAck: false` only an explicit call
 * acks.
 */
export type MessageHandler<D = unknown> = (data: D, meta: MessageMeta, ack: Ack) => unknown;

/** Confirms a message; `requested` says whether the sender asked for an ack at all. */
export type Ack = (() => void) & { readonly requested: boolean };

/** A handler for every message event: like {@link MessageHandler} with the event first. */
export type AnyMessageHandler = (
  event: string,
  data: unknown,
  meta: MessageMeta,
  ack: Ack,
) => unknown;

/** The application's events: event name → type of `data`. */
export type EventMap = Record<string, unknown>;

export type ClientOptions = {
  /**
   * The edge URL (normally the load balancer's), or several edges: each new attempt after
   * a failure or a lost connection goes to the next one in turn.
   */
  url: string | readonly string[];
  /** A client token (JWT, `sub` = user id); called before every connect attempt and refresh. */
  getToken: () => string | Promise<string>;
  /** Ack when handlers return (default true); `false`: handlers call `ack()` themselves. */
  autoAck?: boolean;
  /** How many recent message ids are remembered to drop duplicates (default 1000; 0: off). */
  dedupe?: number;
  /** Backoff between attempts; see `backoffDelay`. */
  reconnect?: BackoffOptions & {
    /** A connection that stays up this long resets the attempt count (default 10,000 ms). */
    stableAfterMs?: number;
  };
  /** Consecutive `unauthorized` refusals before the state becomes `failed` (default 3). */
  maxUnauthorized?: number;
  /**
   * Refresh the token this long before its `exp` (default 60,000 ms), or halfway through
   * its remaining lifetime when that is later (short-lived tokens).
   */
  refreshBeforeMs?: number;
  /** How long a `$refresh` waits for the edge's answer (default 10,000 ms). */
  refreshTimeoutMs?: number;
  /** How long one connect attempt may take (default 10,000 ms). */
  connectTimeoutMs?: number;
  /** Socket.IO transports (default socket.io-client's: long-polling, then upgrade). */
  transports?: ('polling' | 'websocket' | 'webtransport')[];
  /** Connect at once (default true); otherwise call `connect()`. */
  autoConnect?: boolean;
  /** Errors thrown by handlers and listeners (default `console.error`). */
  onError?: (err: unknown) => void;
};

export type SwitchboardClient<E extends EventMap = EventMap> = {
  /** The current state. */
  readonly state: ConnectionState;
  /** The edge URL of the open connection, if any. */
  readonly url: string | undefined;
  /** Adds a handler for one message event; returns a function that removes it. */
  on<K extends keyof E & string>(event: K, handler: MessageHandler<E[K]>): () => void;
  off<K extends keyof E & string>(event: K, handler: MessageHandler<E[K]>): void;
  /** Adds a handler for every message event; returns a function that removes it. */
  onAny(handler: AnyMessageHandler): () => void;
  offAny(handler: AnyMessageHandler): void;
  /** Adds a state listener; returns a function that removes it. */
  onState(listener: (change: StateChange) => void): () => void;
  /** Adds a token refresh listener; returns a function that removes it. */
  onRefresh(listener: (outcome: RefreshOutcome) => void): () => void;
  /** Starts connecting (again): after `autoConnect: false`, `close()` or `failed`. */
  connect(): void;
  /** Closes the connection and stops every retry and timer; the state becomes `disconnected`. */
  close(): void;
};

const MAX_TIMER_MS = 2_147_483_647;

/** Creates a client; it connects at once unless `autoConnect` is false. */
export function createClient<E extends EventMap = EventMap>(
  options: ClientOptions,
): SwitchboardClient<E> {
  return new Client<E>(options);
}

class Client<E extends EventMap> implements SwitchboardClient<E> {
  readonly #o: ClientOptions;
  readonly #urls: readonly string[];
  readonly #backoff: ReturnType<typeof resolveBackoff>;
  readonly #stableAfterMs: number;
  readonly #recent: RecentIds;
  readonly #handlers = new Map<string, Set<MessageHandler<never>>>();
  readonly #any = new Set<AnyMessageHandler>();
  readonly #stateListeners = new Set<(change: StateChange) => void>();
  readonly #refreshListeners = new Set<(outcome: RefreshOutcome) => void>();
  #state: ConnectionState = 'disconnected';
  #socket: Socket | undefined;
  #url: string | undefined;
  /** Bumped by `close()` and every new attempt: a stale attempt's callbacks do nothing. */
  #generation = 0;
  #urlIndex = 0;
  #attempt = 0;
  #unauthorized = 0;
  #everConnected = false;
  /** `$closing` reason the edge gave for the current socket, before it disconnects it. */
  #closingReason: CloseReason | undefined;
  #retryTimer: ReturnType<typeof setTimeout> | undefined;
  #stableTimer: ReturnType<typeof setTimeout> | undefined;
  #refreshTimer: ReturnType<typeof setTimeout> | undefined;
  #refreshAt: number | undefined;
  #refreshing = false;
  #expiresAt: number | undefined;

  constructor(options: ClientOptions) {
    this.#o = options;
    this.#urls = typeof options.url === 'string' ? [options.url] : [...options.url];
    if (this.#urls.length === 0) throw new RangeError('url: at least one edge URL is needed');
    if (typeof options.getToken !== 'function') throw new TypeError('getToken must be a function');
    this.#backoff = resolveBackoff(options.reconnect);
    this.#stableAfterMs = options.reconnect?.stableAfterMs ?? 10_000;
    this.#recent = new RecentIds(options.dedupe ?? 1000);
    if (options.autoConnect !== false) this.connect();
  }

  get state(): ConnectionState {
    return this.#state;
  }

  get url(): string | undefined {
    return this.#state === 'connected' ? this.#url : undefined;
  }

  on<K extends keyof E & string>(event: K, handler: MessageHandler<E[K]>): () => void {
    if (event.startsWith('$')) throw new RangeError('events starting with $ are control events');
    let set = this.#handlers.get(event);
    if (!set) {
      set = new Set();
      this.#handlers.set(event, set);
    }
    set.add(handler as MessageHandler<never>);
    return () => this.off(event, handler);
  }

  off<K extends keyof E & string>(event: K, handler: MessageHandler<E[K]>): void {
    const set = this.#handlers.get(event);
    set?.delete(handler as MessageHandler<never>);
    if (set?.size === 0) this.#handlers.delete(event);
  }

  onAny(handler: AnyMessageHandler): () => void {
    this.#any.add(handler);
    return () => this.offAny(handler);
  }

  offAny(handler: AnyMessageHandler): void {
    this.#any.delete(handler);
  }

  onState(listener: (change: StateChange) => void): () => void {
    this.#stateListeners.add(listener);
    return () => this.#stateListeners.delete(listener);
  }

  onRefresh(listener: (outcome: RefreshOutcome) => void): () => void {
    this.#refreshListeners.add(listener);
    return () => this.#refreshListeners.delete(listener);
  }

  connect(): void {
    if (this.#state !== 'disconnected' && this.#state !== 'failed') return;
    this.#attempt = 0;
    this.#unauthorized = 0;
    this.#everConnected = false;
    this.#emitState({ state: 'connecting', url: this.#nextUrl() });
    void this.#open();
  }

  close(): void {
    if (this.#state === 'disconnected') return;
    this.#stop();
    this.#emitState({ state: 'disconnected', reason: 'closed' });
  }

  // ── connecting ──────────────────────────────────────────────────────────────────────

  #nextUrl(): string {
    return this.#urls[this.#urlIndex % this.#urls.length]!;
  }

  /** One attempt: a fresh token, then a new socket on the next URL. */
  async #open(): Promise<void> {
    const generation = ++this.#generation;
    const url = this.#nextUrl();
    let token: string;
    try {
      token = await this.#o.getToken();
      if (typeof token !== 'string') throw new TypeError('getToken must return a string');
    } catch (err) {
      if (generation !== this.#generation) return;
      this.#report(err);
      this.#retry('token_error');
      return;
    }
    if (generation !== this.#generation) return;
    const socket = io(url, {
      forceNew: true,
      reconnection: false,
      autoConnect: false,
      auth: { token },
      timeout: this.#o.connectTimeoutMs ?? 10_000,
      ...(this.#o.transports ? { transports: this.#o.transports } : {}),
    });
    this.#socket = socket;
    this.#closingReason = undefined;
    socket.on('connect', () => {
      if (socket === this.#socket) this.#onConnect(url, token);
    });
    socket.on('connect_error', (err: Error) => {
      if (socket === this.#socket) this.#onConnectError(err);
    });
    socket.on('disconnect', (reason: string) => {
      if (socket === this.#socket) this.#onDisconnect(reason);
    });
    socket.on(ControlEvents.expiring, (payload: { expiresAt?: unknown } | undefined) => {
      if (socket !== this.#socket) return;
      const at = payload?.expiresAt;
      // Refresh halfway to the expiry the edge names, unless already planned earlier.
      this.#planRefresh(typeof at === 'number' ? at : Date.now());
    });
    socket.on(ControlEvents.closing, (payload: { reason?: unknown } | undefined) => {
      if (socket !== this.#socket) return;
      const reason = payload?.reason;
      if (reason === CloseReasons.expired || reason === CloseReasons.slowConsumer)
        this.#closingReason = reason;
    });
    socket.onAny((event: string, ...args: unknown[]) => {
      if (socket === this.#socket && !event.startsWith('$')) this.#onMessage(event, args);
    });
    socket.connect();
  }

  #onConnect(url: string, token: string): void {
    this.#url = url;
    this.#unauthorized = 0;
    this.#everConnected = true;
    clearTimeout(this.#stableTimer);
    this.#stableTimer = setTimeout(() => {
      this.#attempt = 0;
    }, this.#stableAfterMs);
    this.#expiresAt = tokenExpiresAt(token);
    this.#refreshAt = undefined;
    if (this.#expiresAt !== undefined) this.#planRefresh(this.#expiresAt);
    this.#emitState({ state: 'connected', url });
  }

  #onConnectError(err: Error): void {
    this.#dropSocket();
    const reason = err.message;
    if (reason === ConnectErrors.unauthorized) {
      this.#unauthorized++;
      const max = this.#o.maxUnauthorized ?? 3;
      if (this.#unauthorized >= max) {
        this.#stop();
        this.#emitState({ state: 'failed', attempt: this.#attempt, reason });
        return;
      }
    }
    // `expired` and `unauthorized` need a new token: every attempt fetches one anyway.
    this.#urlIndex++;
    this.#retry(reason);
  }

  #onDisconnect(reason: string): void {
    const closing = this.#closingReason;
    this.#dropSocket();
    clearTimeout(this.#stableTimer);
    // `expired`: a fresh token and a new connection; `slow_consumer`, a drain (transport
    // close) or a lost network: the same, with backoff. The next attempt goes to the next URL.
    this.#urlIndex++;
    this.#retry(closing ?? reason);
  }

  #retry(reason: string): void {
    this.#attempt++;
    const delayMs = backoffDelay(this.#attempt, this.#backoff);
    const generation = ++this.#generation;
    this.#emitState({
      state: this.#everConnected ? 'reconnecting' : 'connecting',
      url: this.#nextUrl(),
      attempt: this.#attempt,
      delayMs,
      reason,
    });
    if (generation !== this.#generation) return; // a listener closed the client
    this.#retryTimer = setTimeout(() => {
      if (generation === this.#generation) void this.#open();
    }, delayMs);
  }

  /** Forgets the current socket (its late events are ignored) and closes it. */
  #dropSocket(): void {
    const socket = this.#socket;
    this.#socket = undefined;
    this.#url = undefined;
    this.#closingReason = undefined;
    clearTimeout(this.#refreshTimer);
    this.#refreshTimer = undefined;
    this.#refreshAt = undefined;
    this.#refreshing = false;
    this.#expiresAt = undefined;
    socket?.removeAllListeners();
    socket?.offAny();
    socket?.close();
  }

  #stop(): void {
    this.#generation++;
    clearTimeout(this.#retryTimer);
    clearTimeout(this.#stableTimer);
    this.#dropSocket();
  }

  // ── tokens ──────────────────────────────────────────────────────────────────────────

  /**
   * Plans a refresh for a token expiring at `expiresAt`: `refreshBeforeMs` before it, or
   * halfway there when that is later; an earlier plan stands.
   */
  #planRefresh(expiresAt: number): void {
    if (this.#refreshing) return; // the refresh in flight plans the next one
    const now = Date.now();
    const remaining = expiresAt - now;
    const refreshBeforeMs = this.#o.refreshBeforeMs ?? 60_000;
    const delay = Math.max(0, remaining - refreshBeforeMs, remaining / 2);
    this.#schedule(now + delay);
  }

  #schedule(at: number): void {
    if (this.#refreshAt !== undefined && this.#refreshAt <= at) return;
    clearTimeout(this.#refreshTimer);
    this.#refreshAt = at;
    this.#refreshTimer = setTimeout(
      () => void this.#refresh(),
      Math.min(MAX_TIMER_MS, Math.max(0, at - Date.now())),
    );
  }

  async #refresh(): Promise<void> {
    const socket = this.#socket;
    this.#refreshTimer = undefined;
    this.#refreshAt = undefined;
    if (!socket?.connected || this.#refreshing) return;
    this.#refreshing = true;
    let outcome: RefreshOutcome;
    try {
      let token: string;
      try {
        token = await this.#o.getToken();
      } catch (err) {
        this.#report(err);
        throw new RefreshFailure('token_error');
      }
      if (socket !== this.#socket) throw new RefreshFailure('disconnected');
      try {
        outcome = (await socket
          .timeout(this.#o.refreshTimeoutMs ?? 10_000)
          .emitWithAck(ControlEvents.refresh, token)) as RefreshResult;
      } catch {
        throw new RefreshFailure(socket.connected ? 'timeout' : 'disconnected');
      }
    } catch (err) {
      outcome = { ok: false, error: err instanceof RefreshFailure ? err.error : 'token_error' };
    }
    if (socket !== this.#socket) return; // dropped meanwhile: the new socket has its own plan
    this.#refreshing = false;
    const before = this.#expiresAt;
    if (outcome.ok && (before === undefined || outcome.expiresAt > before)) {
      this.#expiresAt = outcome.expiresAt;
      this.#planRefresh(outcome.expiresAt);
    } else {
      // Refused, or the same token again (no later expiry): try again before the token
      // runs out, at most every second; if it runs out, the edge closes the socket with
      // `expired` and the client reconnects with a fresh token.
      const remaining = (this.#expiresAt ?? Date.now() + 20_000) - Date.now();
      this.#schedule(Date.now() + Math.min(30_000, Math.max(1_000, remaining / 4)));
    }
    for (const l of this.#refreshListeners) this.#safely(() => l(outcome));
  }

  // ── messages ────────────────────────────────────────────────────────────────────────

  #onMessage(event: string, args: unknown[]): void {
    const last = args[args.length - 1];
    const serverAck = typeof last === 'function' ? (last as () => void) : undefined;
    const data = args[0];
    const meta = isMeta(args[1]) ? args[1] : { id: '', sentAt: Number.NaN };
    const id = meta.id;
    if (id) {
      const duplicate = this.#recent.check(id);
      if (duplicate) {
        // Dropped; when the sender waits for an ack, it gets one once the first copy is handled.
        if (serverAck) duplicate(serverAck);
        return;
      }
    }
    let acked = false;
    const ack: Ack = Object.assign(
      () => {
        if (acked) return;
        acked = true;
        if (id) this.#recent.done(id);
        serverAck?.();
      },
      { requested: serverAck !== undefined },
    );
    const handlers = this.#handlers.get(event);
    const calls: (() => unknown)[] = [];
    if (handlers) for (const h of handlers) calls.push(() => h(data as never, meta, ack));
    for (const h of this.#any) calls.push(() => h(event, data, meta, ack));
    // Nobody listens: not acked, so the sender's fallback (OS push) takes over.
    if (calls.length === 0) return;
    const autoAck = this.#o.autoAck !== false;
    let failed = false;
    const pending: PromiseLike<unknown>[] = [];
    for (const call of calls) {
      try {
        const r = call();
        if (autoAck && isThenable(r)) pending.push(r);
        else if (isThenable(r)) Promise.resolve(r).catch((err: unknown) => this.#report(err));
      } catch (err) {
        failed = true;
        this.#report(err);
      }
    }
    if (!autoAck || failed) return;
    if (pending.length === 0) ack();
    else
      Promise.all(pending).then(ack, (err: unknown) => {
        // A handler that fails does not ack: the sender sees no ack and falls back.
        this.#report(err);
      });
  }

  // ── listeners ───────────────────────────────────────────────────────────────────────

  #emitState(change: StateChange): void {
    this.#state = change.state;
    for (const l of this.#stateListeners) this.#safely(() => l(change));
  }

  #safely(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.#report(err);
    }
  }

  #report(err: unknown): void {
    const onError = this.#o.onError;
    if (onError) {
      try {
        onError(err);
      } catch {}
      return;
    }
    console.error('[switchboard client]', err);
  }
}

class RefreshFailure extends Error {
  constructor(readonly error: 'timeout' | 'token_error' | 'disconnected') {
    super(error);
  }
}

function isMeta(v: unknown): v is MessageMeta {
  return typeof v === 'object' && v !== null && typeof (v as MessageMeta).id === 'string';
}

function isThenable(v: unknown): v is PromiseLike<unknown> {
  return (
    (typeof v === 'object' || typeof v === 'function') &&
    v !== null &&
    typeof (v as PromiseLike<unknown>).then === 'function'
  );
}
