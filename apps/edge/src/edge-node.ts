/**
 * EdgeNode — one Socket.IO node, wired from its roles (Centrifuge's Node, Hub and Broker):
 *
 * - {@link SocketHub} (socket-hub.ts): the Socket.IO server, the local index of sockets,
 *   closing a socket on the node's account, slow consumers, the drain of clients;
 * - {@link Handshake} (handshake.ts): token, admission, `connect_error` codes, routable at
 *   `connect`, token expiry and `$refresh`;
 * - {@link NodeBus} (node-bus.ts): `push.v1.node.<nodeId>` (request/reply) and
 *   `push.v1.broadcast`, the start-up probe of the node subject;
 * - {@link PresenceWriter} (presence-writer.ts): the lease and the users' entries;
 * - {@link createEdgeMetrics} (metrics.ts): every series, shared by the roles.
 *
 * The node owns what is the process's as a whole: the HTTP server (probes, metrics, and
 * Socket.IO attached to it), whether it is draining, and the order roles start and stop in.
 *
 * One process per node id: before serving, the node asks its own subject (an empty
 * request is a probe every edge answers) and refuses to start when a live process
 * answers; the lease's compare-and-set settles a start-up race.
 *
 * Defaults: lease TTL 10 s (heartbeat every TTL / 3); acked deliveries are bounded by the
 * envelope's `ackTimeoutMs`; a handshake waits at most `REGISTER_TIMEOUT_MS` for presence.
 */
import { createServer, type Server as HttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { NatsConnection } from '@nats-io/transport-node';
import { listenHttp, probeHandler } from '@switchboard/http/probes';
import { ConnectionHealth } from '@switchboard/nats';
import type { PresenceBuckets } from '@switchboard/presence-registry';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { EdgeConfig } from './config.js';
import { Handshake } from './handshake.js';
import { createEdgeMetrics } from './metrics.js';
import { NodeBus } from './node-bus.js';
import { PresenceWriter } from './presence-writer.js';
import { SocketHub } from './socket-hub.js';
import type { TokenVerifier } from './token-verifier.js';

export type EdgeNodeOptions = {
  config: EdgeConfig;
  nc: NatsConnection;
  buckets: PresenceBuckets;
  verifier: TokenVerifier;
  log: Logger;
  registry: Registry;
};

/** Longest wait in a drain for closed clients' disconnect handlers, then for presence writes. */
const DRAIN_DISCONNECT_TIMEOUT_MS = 5_000;

export class EdgeNode {
  readonly nodeId: string;
  readonly #o: EdgeNodeOptions;
  readonly #http: HttpServer;
  readonly #health: ConnectionHealth;
  readonly #hub: SocketHub;
  readonly #presence: PresenceWriter;
  readonly #handshake: Handshake;
  readonly #bus: NodeBus;
  #draining = false;
  #fenced = false;
  #fatal: (err: Error) => void = () => {};
  /** Resolves with the reason when this node had to stop serving on its own (node id taken). */
  readonly fatal = new Promise<Error>((resolve) => {
    this.#fatal = resolve;
  });

  constructor(options: EdgeNodeOptions) {
    this.#o = options;
    const { config, nc, log } = options;
    const nodeId = config.nodeId;
    this.nodeId = nodeId;
    this.#health = new ConnectionHealth(nc);
    const metrics = createEdgeMetrics(options.registry, {
      connections: () => this.#hub.connections,
      users: () => this.#hub.users,
      natsConnected: () => this.#health.connected,
    });
    this.#http = createServer(
      probeHandler({
        // Every check reads true when good: `accepting` is false once the node drains.
        checks: { nats: () => this.#health.connected, accepting: () => !this.#draining },
        registry: options.registry,
        info: () => ({ nodeId: this.nodeId }),
      }),
    );
    this.#hub = new SocketHub({ http: this.#http, config, metrics, log });
    this.#presence = new PresenceWriter({
      buckets: options.buckets,
      nodeId,
      config,
      local: this.#hub.index,
      metrics,
      log,
      onConflict: (err) => this.#fence(err),
    });
    this.#handshake = new Handshake({
      config,
      verifier: options.verifier,
      hub: this.#hub,
      presence: this.#presence,
      metrics,
      log,
      draining: () => this.#draining,
    });
    this.#hub.admitThrough(this.#handshake);
    this.#bus = new NodeBus({
      nc,
      nodeId,
      config,
      hub: this.#hub,
      presence: this.#presence,
      metrics,
      log,
    });
  }

  /**
   * Starts the roles in order: the bus (probe of the node subject, refusing a node id a
   * live process serves; then the subscriptions), presence (the lease, then the users'
   * refresh), the handshake's expiry wheel, then the HTTP listener. By the time a client
   * can connect, the node is alive for readers and answers its subject, so no early
   * delivery finds no responder.
   */
  async start(hooks?: { beforeListen?(): Promise<void> }): Promise<void> {
    const { config, log } = this.#o;
    await this.#bus.start();
    try {
      await this.#presence.start();
    } catch (err) {
      this.#bus.stop();
      throw err;
    }
    this.#handshake.start();
    await hooks?.beforeListen?.();
    await listenHttp(this.#http, config.port, config.host);
    log.info({ nodeId: this.nodeId, epoch: this.epoch, port: this.port }, 'edge node ready');
  }

  /** Fresh per process start (and after a lease lapse): fences this run's presence entries. */
  get epoch(): string {
    return this.#presence.epoch;
  }

  /** The bound port (useful with PORT=0). */
  get port(): number {
    return (this.#http.address() as AddressInfo | null)?.port ?? this.#o.config.port;
  }

  get connections(): number {
    return this.#hub.connections;
  }

  /** Resolves when every presence change so far is written. */
  async flushPresence(): Promise<void> {
    await this.#presence.flush();
  }

  /**
   * Graceful drain, the roles stopped in reverse: mark the lease draining (readers stop
   * routing here), refuse new clients, close every client's transport (clients reconnect
   * elsewhere) and write their removal, unsubscribe, delete the lease, close the server.
   * The lease is marked first and deleted last: in between, the node still answers the
   * deliveries routed to it. Resolves when done.
   */
  async stop(): Promise<void> {
    if (this.#draining) return;
    this.#draining = true;
    await this.#presence.markDraining();
    this.#handshake.stop();
    this.#http.close();
    // Every disconnect handler must have recorded its removal before the final flush.
    await this.#hub.drain(DRAIN_DISCONNECT_TIMEOUT_MS);
    await this.#presence.drain(DRAIN_DISCONNECT_TIMEOUT_MS);
    this.#bus.stop();
    // Connections that did not close by now (a client that stopped reading) are cut, so
    // the HTTP server can close.
    this.#http.closeAllConnections();
    await this.#presence.release();
    await this.#hub.shutdown();
    this.#o.log.info({ nodeId: this.nodeId }, 'edge node drained');
  }

  /** Stops serving at once, without touching the lease (another process holds it). */
  #fence(err: Error): void {
    if (this.#fenced) return;
    this.#fenced = true;
    this.#draining = true;
    this.#o.log.error({ err }, 'edge node stops serving');
    this.#bus.stop();
    this.#presence.stopWrites();
    this.#hub.disconnectAll();
    this.#http.close();
    this.#fatal(err);
  }
}
