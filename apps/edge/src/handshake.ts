/**
 * Handshake — who may connect, and for how long. It owns the checks a Socket.IO handshake
 * goes through, cheapest first (draining, the JWT shape, the node's connection cap and the
 * client address's rate, the token's signature, the node's admission rate), the
 * `connect_error` code of each refusal, then the step that makes the client routable at
 * `connect`: the socket joins the hub's index and the handshake waits until the user's
 * presence entry counting it is stored (and is not over the per-user cap). Once connected,
 * it watches the token's expiry (`$expiring`, then a close with reason `expired`) and
 * answers `$refresh`.
 *
 * It talks to the hub (the index, closing) and the presence writer (the user's count)
 * through the few members it uses, so its decisions are testable with in-memory fakes.
 */
import {
  CloseReasons,
  ConnectErrors,
  ControlEvents,
  type RefreshResult,
} from '@switchboard/protocol';
import type { Logger } from 'pino';
import { Admission } from './admission.js';
import type { EdgeConfig } from './config.js';
import { IpAdmission } from './ip-admission.js';
import type { EdgeMetrics } from './metrics.js';
import type { PresenceWriter } from './presence-writer.js';
import { type EdgeSocket, emitControl, type SocketGate, type SocketHub } from './socket-hub.js';
import { TokenExpiry, type TokenExpiryOptions } from './token-expiry.js';
import {
  ExpiredTokenError,
  InvalidTokenError,
  looksLikeJwt,
  type TokenVerifier,
  type VerifiedToken,
} from './token-verifier.js';

/** What the handshake uses of the hub. */
export type HandshakeHub = Pick<SocketHub, 'connections' | 'add' | 'remove' | 'close'>;
/** What the handshake uses of the presence writer. */
export type HandshakePresence = Pick<PresenceWriter, 'set' | 'whenWritten' | 'overUserCap'>;

export type HandshakeOptions = {
  config: Pick<
    EdgeConfig,
    | 'maxConnections'
    | 'maxConnectsPerSecond'
    | 'maxConnectsPerIpPerSecond'
    | 'trustProxy'
    | 'tokenExpiryWarningMs'
  >;
  verifier: Pick<TokenVerifier, 'verify'>;
  hub: HandshakeHub;
  presence: HandshakePresence;
  metrics: EdgeMetrics;
  log: Logger;
  /** True once the node drains (or stopped serving): new clients are refused. */
  draining(): boolean;
  /** The expiry wheel's tick and clock (tests shorten and drive them). */
  expiry?: Pick<TokenExpiryOptions<EdgeSocket>, 'tickMs' | 'clock'>;
};

/** Longest a handshake waits for the user's presence write before `connect_error` unavailable. */
export const REGISTER_TIMEOUT_MS = 5_000;

export class Handshake implements SocketGate {
  readonly #o: HandshakeOptions;
  readonly #admission: Admission;
  readonly #ipAdmission: IpAdmission;
  readonly #expiry: TokenExpiry<EdgeSocket>;

  constructor(options: HandshakeOptions) {
    this.#o = options;
    const { config, hub } = options;
    this.#admission = new Admission(config.maxConnectsPerSecond);
    this.#ipAdmission = new IpAdmission(config.maxConnectsPerIpPerSecond);
    this.#expiry = new TokenExpiry<EdgeSocket>({
      ...options.expiry,
      warningMs: config.tokenExpiryWarningMs,
      onWarn: (socket, expiresAt) => emitControl(socket, ControlEvents.expiring, { expiresAt }),
      onExpire: (socket) => hub.close(socket, CloseReasons.expired),
    });
  }

  /** Starts the expiry wheel. */
  start(): void {
    this.#expiry.start();
  }

  /** Stops the expiry wheel: no socket is warned or closed for its token any more. */
  stop(): void {
    this.#expiry.stop();
  }

  /**
   * The handshake: admission, token, then presence. The socket joins the local index and
   * the handshake waits until the user's entry counting it is stored, so the client is
   * routable when it sees `connect` (a message emitted meanwhile is buffered by the client
   * until then). The socket leaves the index on disconnect, or when its transport closes
   * before the handshake completed.
   */
  async authenticate(socket: EdgeSocket, next: (err?: Error) => void): Promise<void> {
    const { config, verifier, hub, presence, metrics, log } = this.#o;
    const refuse = (reason: string) => {
      metrics.rejected.inc({ reason });
      next(new Error(reason));
    };
    if (this.#o.draining()) return next(new Error(ConnectErrors.draining));
    const token: unknown = socket.handshake.auth?.token;
    // Junk is refused before it spends any budget: only JWT-shaped tokens cost a check.
    if (!looksLikeJwt(token)) return refuse(ConnectErrors.unauthorized);
    if (
      hub.connections >= config.maxConnections ||
      !this.#ipAdmission.tryAdmit(clientAddress(socket, config.trustProxy))
    )
      return refuse(ConnectErrors.overloaded);
    let verified: VerifiedToken;
    try {
      verified = await verifier.verify(token);
    } catch (err) {
      if (err instanceof ExpiredTokenError) return refuse(ConnectErrors.expired);
      if (!(err instanceof InvalidTokenError)) log.error({ err }, 'token verification failed');
      return refuse(ConnectErrors.unauthorized);
    }
    // The node's admission rate is spent by verified clients only: a flood of bad tokens
    // cannot lock real users out.
    if (!this.#admission.tryAdmit()) return refuse(ConnectErrors.overloaded);
    if (socket.conn.readyState !== 'open') return;
    const { userId } = verified;
    socket.data.userId = userId;
    socket.data.expiresAt = verified.expiresAt;
    let present = true;
    const leave = () => {
      if (!present) return;
      present = false;
      presence.set(userId, hub.remove(userId, socket));
    };
    socket.once('disconnect', leave);
    socket.conn.once('close', leave);
    presence.set(userId, hub.add(userId, socket));
    const written = await presence.whenWritten(userId, REGISTER_TIMEOUT_MS);
    if (!present) return;
    const draining = this.#o.draining();
    if (!written || draining) {
      leave();
      return refuse(draining ? ConnectErrors.draining : ConnectErrors.unavailable);
    }
    // The entry just stored (compare-and-set) holds every node's count for this user.
    if (presence.overUserCap(userId)) {
      leave();
      return refuse(ConnectErrors.tooManyConnections);
    }
    metrics.accepted.inc();
    next();
  }

  /** A connected socket: its token is watched for expiry and may be refreshed. */
  connected(socket: EdgeSocket): void {
    const expiry = this.#expiry;
    expiry.track(socket, socket.data.expiresAt);
    socket.once('disconnect', () => expiry.untrack(socket));
    let refreshing = false;
    socket.on(ControlEvents.refresh, (token: unknown, ack: unknown) => {
      const answer = (result: RefreshResult) => {
        if (typeof ack === 'function') ack(result);
      };
      // One refresh at a time per socket: a client cannot queue signature checks.
      if (refreshing) return answer({ ok: false, error: 'unauthorized' });
      refreshing = true;
      this.#refresh(socket, token)
        .then(answer)
        .finally(() => {
          refreshing = false;
        });
    });
  }

  async #refresh(socket: EdgeSocket, token: unknown): Promise<RefreshResult> {
    const { metrics } = this.#o;
    try {
      const verified = await this.#o.verifier.verify(token);
      if (verified.userId !== socket.data.userId) {
        metrics.refreshes.inc({ outcome: 'forbidden' });
        return { ok: false, error: 'forbidden' };
      }
      socket.data.expiresAt = verified.expiresAt;
      if (socket.connected) this.#expiry.track(socket, verified.expiresAt);
      metrics.refreshes.inc({ outcome: 'ok' });
      return { ok: true, expiresAt: verified.expiresAt };
    } catch (err) {
      const error = err instanceof ExpiredTokenError ? 'expired' : 'unauthorized';
      metrics.refreshes.inc({ outcome: error });
      return { ok: false, error };
    }
  }
}

/**
 * The address a client's handshake is counted against: the first `X-Forwarded-For` entry
 * behind a trusted proxy, else the TCP peer.
 */
export function clientAddress(socket: Pick<EdgeSocket, 'handshake'>, trustProxy: boolean): string {
  if (trustProxy) {
    const forwarded = socket.handshake.headers['x-forwarded-for'];
    const first = (Array.isArray(forwarded) ? forwarded[0] : forwarded)?.split(',')[0]?.trim();
    if (first) return first;
  }
  return socket.handshake.address;
}
