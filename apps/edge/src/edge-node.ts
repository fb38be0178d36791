/**
 * EdgeNode — one Socket.IO node. It authenticates clients on connect, keeps its local
 * index, registers users in presence, holds its lease, and serves `push.v1.node.<nodeId>`
 * (request/reply) and `push.v1.broadcast`.
 *
 * Routable at connect: a handshake completes (the client sees `connect`) only once the
 * user's presence entry counting this connection is stored, so a message sent right
 * after `connect` finds the user. Writes coalesce per user (at most one in flight), so a
 * storm still costs at most one KV write per user per round trip.
 *
 * One process per node id: before serving, the node asks its own subject (an empty
 * request is a probe every edge answers) and refuses to start when a live process
 * answers; the lease's compare-and-set settles a start-up race.
 *
 * Defaults: lease TTL 10 s (heartbeat every TTL / 3); acked deliveries are bounded by the
 * envelope's `ackTimeoutMs`; a handshake waits at most `REGISTER_TIMEOUT_MS` for presence.
 */
import { randomUUID } from 'node:crypto';
import { createServer, type Server as HttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Msg, NatsConnection, Subscription } from '@nats-io/transport-node';
import { listenHttp, natsConnectedGauge, probeHandler } from '@switchboard/http';
import { ConnectionHealth, isNoResponders } from '@switchboard/nats';
import type { PresenceBuckets } from '@switchboard/presence-registry';
import { NodeIdConflictError, NodeLease, UserRegistrar } from '@switchboard/presence-registry';
import {
  BroadcastEnvelope,
  type ClientToServerEvents,
  type CloseReason,
  CloseReasons,
  ConnectErrors,
  ControlEvents,
  decodeDeliveries,
  encodeBatchReply,
  encodeLegacyNodeReply,
  encodeNodeReply,
  type InterServerEvents,
  Limits,
  type NodeReply,
  nodeSubject,
  type RefreshResult,
  type ServerToClientEvents,
  type SocketData,
  Subjects,
} from '@switchboard/protocol';
import type { Logger } from 'pino';
import { Counter, Gauge, type Registry } from 'prom-client';
import { Server, type Socket } from 'socket.io';
import { Admission } from './admission.js';
import type { EdgeConfig } from './config.js';
import { deliverNow, deliverWithAck, type Emitter, OutboundLimit } from './delivery.js';
import { IpAdmission } from './ip-admission.js';
import { LocalSockets } from './local-sockets.js';
import { TokenExpiry } from './token-expiry.js';
import {
  ExpiredTokenError,
  InvalidTokenError,
  looksLikeJwt,
  type TokenVerifier,
  type VerifiedToken,
} from './token-verifier.js';

type EdgeSocket = Socket<ClientToServerEvents, ServerToClientEvents, InterServerEvents, SocketData>;

export type EdgeNodeOptions = {
  config: EdgeConfig;
  nc: NatsConnection;
  buckets: PresenceBuckets;
  verifier: TokenVerifier;
  log: Logger;
  registry: Registry;
};

/** Longest wait for closed clients' disconnect handlers during a drain. */
const DRAIN_DISCONNECT_TIMEOUT_MS = 5_000;
/** Longest a handshake waits for the user's presence write before `connect_error` unavailable. */
const REGISTER_TIMEOUT_MS = 5_000;
/** How long a slow consumer's connection may linger after its close was sent. */
const SLOW_CONSUMER_TERMINATE_MS = 1_000;
/** How long a start-up probe of the node subject waits for a live holder to answer. */
const PROBE_TIMEOUT_MS = 1_000;

export class EdgeNode {
  readonly nodeId: string;
  readonly #o: EdgeNodeOptions;
  readonly #http: HttpServer;
  readonly #io: Server<ClientToServerEvents, ServerToClientEvents, InterServerEvents, SocketData>;
  readonly #sockets = new LocalSockets<EdgeSocket>();
  readonly #lease: NodeLease;
  readonly #registrar: UserRegistrar;
  readonly #health: ConnectionHealth;
  readonly #subs: Subscription[] = [];
  readonly #metrics: ReturnType<typeof createMetrics>;
  #draining = false;
  #fenced = false;
  readonly #admission: Admission;
  readonly #ipAdmission: IpAdmission;
  readonly #expiry: TokenExpiry<EdgeSocket>;
  readonly #outbound: OutboundLimit<EdgeSocket>;
  /** Sockets this node is closing itself (slow consumer, expired token). */
  readonly #closing = new WeakSet<EdgeSocket>();
  /** Per-user acked deliveries waiting on devices now (bounded by `maxInflightAcks`). */
  #inflightAcks = 0;
  #fatal: (err: Error) => void = () => {};
  /** Resolves with the reason when this node had to stop serving on its own (node id taken). */
  readonly fatal = new Promise<Error>((resolve) => {
    this.#fatal = resolve;
  });

  constructor(options: EdgeNodeOptions) {
    this.#o = options;
    const { config, buckets, log } = options;
    this.nodeId = config.nodeId;
    this.#admission = new Admission(config.maxConnectsPerSecond);
    this.#ipAdmission = new IpAdmission(config.maxConnectsPerIpPerSecond);
    this.#expiry = new TokenExpiry<EdgeSocket>({
      warningMs: config.tokenExpiryWarningMs,
      onWarn: (socket, expiresAt) => emitControl(socket, ControlEvents.expiring, { expiresAt }),
      onExpire: (socket) => this.#close(socket, CloseReasons.expired),
    });
    this.#outbound = new OutboundLimit<EdgeSocket>(config.maxBufferedBytes, (socket, queued) => {
      if (!this.#closing.has(socket))
        log.warn({ userId: socket.data.userId, queued }, 'slow consumer disconnected');
      this.#close(socket, CloseReasons.slowConsumer);
    });
    this.#health = new ConnectionHealth(options.nc);
    this.#metrics = createMetrics(
      options.registry,
      () => this.#sockets.connections,
      () => this.#sockets.users,
      () => this.#health.connected,
    );
    const epoch = randomUUID();
    this.#lease = new NodeLease({
      kv: buckets.nodes,
      nodeId: this.nodeId,
      epoch,
      url: config.publicUrl,
      leaseTtlMs: config.leaseTtlMs,
      connections: () => this.#sockets.connections,
      log,
      onHeartbeat: (ok) => this.#metrics.heartbeats.inc({ outcome: ok ? 'ok' : 'failed' }),
      onLapse: () => {
        this.#metrics.lapses.inc();
        // Our entries may be gone or judged dead: every local user is written again.
        const fresh = randomUUID();
        this.#registrar.setEpoch(fresh, this.#sockets.counts());
        return fresh;
      },
      onConflict: (holder) => this.#fence(new NodeIdConflictError(this.nodeId, holder)),
    });
    this.#registrar = new UserRegistrar({
      kv: buckets.users,
      nodeId: this.nodeId,
      epoch: this.epoch,
      log,
    });
    this.#http = createServer(
      probeHandler({
        // Every check reads true when good: `accepting` is false once the node drains.
        checks: { nats: () => this.#health.connected, accepting: () => !this.#draining },
        registry: options.registry,
        info: () => ({ nodeId: this.nodeId }),
      }),
    );
    this.#io = new Server(this.#http, {
      cors: { origin: config.corsOrigins === '*' ? '*' : config.corsOrigins },
      // Clients reconnect on their own; a short ping keeps dead TCP connections from lingering.
      pingInterval: 20_000,
      pingTimeout: 20_000,
      maxHttpBufferSize: 64 * 1024,
      serveClient: false,
    });
    this.#io.use((socket, next) => void this.#authenticate(socket, next));
    this.#io.on('connection', (socket) => this.#onConnection(socket));
  }

  /**
   * Probes the node subject (refusing a node id a live process serves), subscribes, takes
   * the lease, then listens: by the time a client can connect, the node is alive for
   * readers and answers its subject, so no early delivery finds no responder.
   */
  async start(hooks?: { beforeListen?(): Promise<void> }): Promise<void> {
    const { config, nc } = this.#o;
    await this.#probe();
    this.#subs.push(
      nc.subscribe(nodeSubject(this.nodeId), {
        callback: (err, msg) => (err ? this.#subError(err) : void this.#onDelivery(msg)),
      }),
      nc.subscribe(Subjects.broadcast, {
        callback: (err, msg) => (err ? this.#subError(err) : this.#onBroadcast(msg)),
      }),
    );
    await nc.flush();
    try {
      await this.#lease.start();
    } catch (err) {
      for (const sub of this.#subs) sub.unsubscribe();
      throw err;
    }
    // Entries are rewritten within half the bucket's max_age, so a live user never expires.
    this.#registrar.startRefresh(
      config.userEntryTtlMs / 2,
      (userId) => this.#sockets.get(userId).size,
    );
    this.#expiry.start();
    await hooks?.beforeListen?.();
    await listenHttp(this.#http, config.port, config.host);
    this.#o.log.info(
      { nodeId: this.nodeId, epoch: this.epoch, port: this.port },
      'edge node ready',
    );
  }

  /** Fresh per process start (and after a lease lapse): fences this run's presence entries. */
  get epoch(): string {
    return this.#lease.epoch;
  }

  /** The bound port (useful with PORT=0). */
  get port(): number {
    return (this.#http.address() as AddressInfo | null)?.port ?? this.#o.config.port;
  }

  get connections(): number {
    return this.#sockets.connections;
  }

  /** Resolves when every presence change so far is written. */
  async flushPresence(): Promise<void> {
    await this.#registrar.flush();
  }

  /**
   * Graceful drain: mark the lease draining, refuse new clients, close every client's
   * transport (clients reconnect elsewhere), write their removal, delete the lease,
   * stop serving. Resolves when done.
   */
  async stop(): Promise<void> {
    if (this.#draining) return;
    this.#draining = true;
    const { log } = this.#o;
    await this.#lease
      .markDraining()
      .catch((err: unknown) => log.warn({ err }, 'could not mark lease draining'));
    this.#registrar.stopRefresh();
    this.#expiry.stop();
    this.#http.close();
    for (const socket of this.#io.of('/').sockets.values()) {
      // Closing the transport (not socket.disconnect()) makes clients reconnect.
      socket.conn.close();
    }
    // Every disconnect handler must have recorded its removal before the final flush.
    const deadline = Date.now() + DRAIN_DISCONNECT_TIMEOUT_MS;
    while (this.#sockets.connections > 0 && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 10));
    if (!(await this.#registrar.flush(DRAIN_DISCONNECT_TIMEOUT_MS))) {
      log.warn(
        { pending: this.#registrar.pending },
        'drain: presence writes still pending; presence cleans up after the lease',
      );
    }
    this.#registrar.stop();
    for (const sub of this.#subs) sub.unsubscribe();
    // Connections that did not close by now (a client that stopped reading) are cut, so
    // the HTTP server can close.
    this.#http.closeAllConnections();
    await this.#lease.stop().catch((err: unknown) => log.warn({ err }, 'could not delete lease'));
    await new Promise<void>((resolve) => this.#io.close(() => resolve()));
    log.info({ nodeId: this.nodeId }, 'edge node drained');
  }

  /**
   * The handshake: admission, token, then presence. The socket joins the local index and
   * the handshake waits until the user's entry counting it is stored, so the client is
   * routable when it sees `connect` (a message emitted meanwhile is buffered by the client
   * until then). The socket leaves the index on disconnect, or when its transport closes
   * before the handshake completed.
   */
  async #authenticate(socket: EdgeSocket, next: (err?: Error) => void): Promise<void> {
    const { config, log, verifier } = this.#o;
    const refuse = (reason: string) => {
      this.#metrics.rejected.inc({ reason });
      next(new Error(reason));
    };
    if (this.#draining) return next(new Error(ConnectErrors.draining));
    const token: unknown = socket.handshake.auth?.token;
    // Junk is refused before it spends any budget: only JWT-shaped tokens cost a check.
    if (!looksLikeJwt(token)) return refuse(ConnectErrors.unauthorized);
    if (
      this.#sockets.connections >= config.maxConnections ||
      !this.#ipAdmission.tryAdmit(this.#clientAddress(socket))
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
      this.#registrar.set(userId, this.#sockets.remove(userId, socket));
    };
    socket.once('disconnect', leave);
    socket.conn.once('close', leave);
    this.#registrar.set(userId, this.#sockets.add(userId, socket));
    const written = await this.#registrar.whenWritten(userId, REGISTER_TIMEOUT_MS);
    if (!present) return;
    if (!written || this.#draining) {
      leave();
      return refuse(this.#draining ? ConnectErrors.draining : ConnectErrors.unavailable);
    }
    // The entry just stored (compare-and-set) holds every node's count for this user.
    const total = this.#registrar.storedConnections(userId) ?? 0;
    if (config.maxConnectionsPerUser > 0 && total > config.maxConnectionsPerUser) {
      leave();
      return refuse(ConnectErrors.tooManyConnections);
    }
    this.#metrics.accepted.inc();
    next();
  }

  /** A connected socket: its token is watched for expiry and may be refreshed. */
  #onConnection(socket: EdgeSocket): void {
    this.#expiry.track(socket, socket.data.expiresAt);
    socket.once('disconnect', () => this.#expiry.untrack(socket));
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
    try {
      const verified = await this.#o.verifier.verify(token);
      if (verified.userId !== socket.data.userId) {
        this.#metrics.refreshes.inc({ outcome: 'forbidden' });
        return { ok: false, error: 'forbidden' };
      }
      socket.data.expiresAt = verified.expiresAt;
      if (socket.connected) this.#expiry.track(socket, verified.expiresAt);
      this.#metrics.refreshes.inc({ outcome: 'ok' });
      return { ok: true, expiresAt: verified.expiresAt };
    } catch (err) {
      const error = err instanceof ExpiredTokenError ? 'expired' : 'unauthorized';
      this.#metrics.refreshes.inc({ outcome: error });
      return { ok: false, error };
    }
  }

  /** Closes a socket on the node's own account, telling the client why first. */
  #close(socket: EdgeSocket, reason: CloseReason): void {
    if (this.#closing.has(socket)) return;
    this.#closing.add(socket);
    this.#metrics.closed.inc({ reason });
    // Not in the middle of a delivery loop over this user's sockets.
    queueMicrotask(() => {
      emitControl(socket, ControlEvents.closing, { reason });
      socket.disconnect(true);
      // A client that does not read never answers the WebSocket close: drop the TCP
      // connection after a moment instead of holding it (and a drain) for ws's 30 s.
      if (reason === CloseReasons.slowConsumer) {
        const ws = (socket.conn as unknown as { transport?: { socket?: { terminate?(): void } } })
          .transport?.socket;
        setTimeout(() => ws?.terminate?.(), SLOW_CONSUMER_TERMINATE_MS).unref();
      }
    });
  }

  #clientAddress(socket: EdgeSocket): string {
    if (this.#o.config.trustProxy) {
      const forwarded = socket.handshake.headers['x-forwarded-for'];
      const first = (Array.isArray(forwarded) ? forwarded[0] : forwarded)?.split(',')[0]?.trim();
      if (first) return first;
    }
    return socket.handshake.address;
  }

  async #onDelivery(msg: Msg): Promise<void> {
    // An empty request is a start-up probe from a process that wants this node id.
    if (msg.data.length === 0) {
      msg.respond(JSON.stringify({ nodeId: this.nodeId, epoch: this.epoch }));
      return;
    }
    let decoded: ReturnType<typeof decodeDeliveries>;
    try {
      decoded = decodeDeliveries(msg.data);
    } catch (err) {
      this.#o.log.warn({ err, subject: msg.subject }, 'malformed delivery');
      msg.respond(JSON.stringify({ error: 'malformed delivery' }));
      return;
    }
    const sockets = this.#sockets as unknown as LocalSockets<Emitter>;
    const outbound = this.#outbound as unknown as OutboundLimit<Emitter>;
    let reply: string;
    let users = 0;
    try {
      if (decoded.batch) {
        // Batches carry plain deliveries only: written at once, answered together.
        const counts = decoded.deliveries.map((d) => {
          users += d.userIds.length;
          return deliverNow(sockets, d, outbound);
        });
        reply = encodeBatchReply(this.nodeId, this.epoch, counts);
      } else {
        const d = decoded.deliveries[0]!;
        users = d.userIds.length;
        let outcome: NodeReply;
        if (d.ackTimeoutMs === undefined) {
          outcome = {
            nodeId: this.nodeId,
            epoch: this.epoch,
            connections: deliverNow(sockets, d, outbound),
          };
        } else {
          // Waits on devices are bounded: past the cap the node refuses (the push API
          // reports node-unavailable and falls back), and no wait outlasts the API's bound.
          if (this.#inflightAcks + users > this.#o.config.maxInflightAcks) {
            this.#metrics.refused.inc({ reason: 'ack-capacity' });
            msg.respond(JSON.stringify({ error: 'overloaded: too many acked deliveries waiting' }));
            return;
          }
          const ackTimeoutMs = Math.min(
            Limits.maxAckTimeoutMs,
            Math.max(Limits.minAckTimeoutMs, d.ackTimeoutMs),
          );
          this.#inflightAcks += users;
          try {
            outcome = {
              nodeId: this.nodeId,
              epoch: this.epoch,
              ...(await deliverWithAck(sockets, { ...d, ackTimeoutMs }, outbound)),
            };
          } finally {
            this.#inflightAcks -= users;
          }
        }
        reply = d.legacy ? encodeLegacyNodeReply(d.userIds, outcome) : encodeNodeReply(outcome);
      }
    } catch (err) {
      // Socket.IO throws on reserved event names (the push API refuses them first); the
      // data of an acked delivery is parsed here.
      this.#o.log.error(
        { err, messageIds: decoded.deliveries.map((d) => d.id) },
        'delivery failed',
      );
      msg.respond(JSON.stringify({ error: 'delivery failed' }));
      return;
    }
    this.#metrics.deliveries.inc(users);
    try {
      msg.respond(reply);
    } catch (err) {
      // Over max_payload (or NATS gone): the push API times out and treats it as undelivered.
      this.#o.log.error(
        { err, users, messageIds: decoded.deliveries.map((d) => d.id) },
        'could not answer a delivery',
      );
    }
  }

  #onBroadcast(msg: Msg): void {
    try {
      const env = BroadcastEnvelope.parse(msg.json());
      this.#io.local.emit(env.event, env.data, { id: env.id, sentAt: env.sentAt });
      this.#metrics.broadcasts.inc();
    } catch (err) {
      this.#o.log.warn({ err }, 'malformed broadcast');
    }
  }

  /** Refuses to start when a live process answers on this node's subject. */
  async #probe(): Promise<void> {
    try {
      const reply = await this.#o.nc.request(nodeSubject(this.nodeId), new Uint8Array(0), {
        timeout: PROBE_TIMEOUT_MS,
      });
      let holder = '';
      try {
        holder = ` (epoch ${(reply.json() as { epoch?: string }).epoch})`;
      } catch {}
      throw new NodeIdConflictError(this.nodeId, null, {
        cause: new Error(`a live process answers on ${nodeSubject(this.nodeId)}${holder}`),
      });
    } catch (err) {
      if (err instanceof NodeIdConflictError) throw err;
      // No responders: nobody serves this node id. A timeout means someone holds the
      // subscription without answering: refuse rather than share it.
      if (isNoResponders(err)) return;
      throw new NodeIdConflictError(this.nodeId, null, { cause: err });
    }
  }

  /** Stops serving at once, without touching the lease (another process holds it). */
  #fence(err: Error): void {
    if (this.#fenced) return;
    this.#fenced = true;
    this.#draining = true;
    this.#o.log.error({ err }, 'edge node stops serving');
    for (const sub of this.#subs) sub.unsubscribe();
    this.#registrar.stop();
    for (const socket of this.#io.of('/').sockets.values()) socket.conn.close();
    this.#http.close();
    this.#fatal(err);
  }

  #subError(err: Error): void {
    this.#o.log.error({ err }, 'subscription error');
  }
}

/** Control events carry one payload, outside the message events' `(data, meta)` shape. */
function emitControl(socket: EdgeSocket, event: string, payload: object): void {
  (socket.emit as (event: string, ...args: unknown[]) => boolean)(event, payload);
}

function createMetrics(
  registry: Registry,
  connections: () => number,
  users: () => number,
  natsConnected: () => boolean,
) {
  natsConnectedGauge(registry, natsConnected);
  const metrics = {
    connections: new Gauge({
      name: 'switchboard_edge_connections',
      help: 'Connected sockets on this node',
      registers: [registry],
      collect() {
        this.set(connections());
      },
    }),
    users: new Gauge({
      name: 'switchboard_edge_users',
      help: 'Distinct users with at least one socket on this node',
      registers: [registry],
      collect() {
        this.set(users());
      },
    }),
    accepted: new Counter({
      name: 'switchboard_edge_connections_accepted_total',
      help: 'Handshakes completed (the client saw connect, routable)',
      registers: [registry],
    }),
    rejected: new Counter({
      name: 'switchboard_edge_connections_rejected_total',
      help: 'Connections refused at the handshake, by connect_error reason',
      labelNames: ['reason'],
      registers: [registry],
    }),
    closed: new Counter({
      name: 'switchboard_edge_connections_closed_total',
      help: 'Sockets the edge closed itself, by reason (expired, slow_consumer)',
      labelNames: ['reason'],
      registers: [registry],
    }),
    refreshes: new Counter({
      name: 'switchboard_edge_token_refreshes_total',
      help: 'Token refreshes by outcome (ok, expired, unauthorized, forbidden)',
      labelNames: ['outcome'],
      registers: [registry],
    }),
    refused: new Counter({
      name: 'switchboard_edge_deliveries_refused_total',
      help: 'Deliveries the edge refused whole, by reason (ack-capacity)',
      labelNames: ['reason'],
      registers: [registry],
    }),
    heartbeats: new Counter({
      name: 'switchboard_edge_lease_heartbeats_total',
      help: 'Lease heartbeats this edge wrote, by outcome (ok, failed)',
      labelNames: ['outcome'],
      registers: [registry],
    }),
    lapses: new Counter({
      name: 'switchboard_edge_lease_lapses_total',
      help: "Times this edge's lease lapsed and it continued under a new epoch",
      registers: [registry],
    }),
    deliveries: new Counter({
      name: 'switchboard_edge_deliveries_total',
      help: 'Per-user deliveries handled from the node subject',
      registers: [registry],
    }),
    broadcasts: new Counter({
      name: 'switchboard_edge_broadcasts_total',
      help: 'Broadcasts emitted to local sockets',
      registers: [registry],
    }),
  };
  // Every labelled series exists from the start (at 0), so rates and alerts see it.
  for (const reason of Object.values(ConnectErrors)) metrics.rejected.inc({ reason }, 0);
  for (const reason of Object.values(CloseReasons)) metrics.closed.inc({ reason }, 0);
  for (const outcome of ['ok', 'expired', 'unauthorized', 'forbidden'])
    metrics.refreshes.inc({ outcome }, 0);
  metrics.refused.inc({ reason: 'ack-capacity' }, 0);
  for (const outcome of ['ok', 'failed']) metrics.heartbeats.inc({ outcome }, 0);
  return metrics;
}
