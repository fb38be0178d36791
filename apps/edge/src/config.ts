/** Edge configuration from the environment; a bad value stops the node naming the variable. */
import { hostname } from 'node:os';
import {
  commaList,
  durationMs,
  type Env,
  isProduction,
  leaseTtlMs,
  type NatsSettings,
  readEnv,
  type ServiceConfig,
  secret,
  serviceSettings,
  serviceShape,
} from '@switchboard/config';
import { DEFAULT_USER_ENTRY_TTL_MS } from '@switchboard/presence-registry';
import { NODE_ID_PATTERN } from '@switchboard/protocol';
import { z } from 'zod';

export type EdgeConfig = ServiceConfig & {
  nodeId: string;
  /** Address clients reach this node at, written into the lease. */
  publicUrl: string;
  nats: NatsSettings;
  auth: {
    jwtSecret?: string;
    publicKeyPem?: string;
    jwksUrl?: string;
    issuer?: string;
    audience?: string;
  };
  leaseTtlMs: number;
  /** max_age of `presence-users`; this node rewrites its entries within half of it. */
  userEntryTtlMs: number;
  maxConnections: number;
  /** New connections admitted per second (0: no limit). */
  maxConnectsPerSecond: number;
  /** Handshakes with a JWT-shaped token taken per client address per second (0: no limit). */
  maxConnectsPerIpPerSecond: number;
  /** Take the client address from the first `X-Forwarded-For` entry (behind a proxy). */
  trustProxy: boolean;
  /** Connections one user may hold across the cluster (0: no limit). */
  maxConnectionsPerUser: number;
  /** Bytes queued to one socket past which it is disconnected as a slow consumer. */
  maxBufferedBytes: number;
  /** Acked deliveries (per user) this node waits on at once; past it, deliveries are refused. */
  maxInflightAcks: number;
  /** How long before its token's expiry a socket is told to refresh (`$expiring`). */
  tokenExpiryWarningMs: number;
  corsOrigins: string[] | '*';
};

const defaultNodeId = () => `${hostname()}`.replace(/[^A-Za-z0-9_-]/g, '-').slice(0, 48);

/** Client token verifiers: one of these is required (checked in {@link loadConfig}). */
const ONE_AUTH_REQUIRED =
  '– (one of `AUTH_JWT_SECRET`, `AUTH_PUBLIC_KEY`, `AUTH_JWKS_URL` is required)';

/** Shortest `AUTH_JWT_SECRET` (HS256 wants at least 256 bits). */
const JWT_SECRET_MIN_LENGTH = 32;

/**
 * Every variable the edge reads, with what `docs/configuration.md` says of it. A function of
 * `NODE_ENV=production` only because development secrets are refused there.
 */
export const edgeEnv = (production = false) => ({
  ...serviceShape(3100),
  NODE_ID: z
    .string()
    .regex(NODE_ID_PATTERN, 'must be 1-64 characters of [A-Za-z0-9_-]')
    .optional()
    .meta({
      description:
        "this node's id, 1-64 characters of `[A-Za-z0-9_-]`; a second process started with the id of a live node exits 1",
      defaultText: 'host name (other characters as `-`, 48 at most) + `-` + `PORT`',
    }),
  PUBLIC_URL: z.url().optional().meta({
    description: 'the URL clients reach this node at, written into its lease',
    defaultText: '`http://<host name>:<PORT>`',
  }),
  AUTH_JWT_SECRET: secret(production, JWT_SECRET_MIN_LENGTH)
    .optional()
    .meta({
      description: `HS256 secret of client tokens, ${JWT_SECRET_MIN_LENGTH}+ characters (the \`npm start\` one is refused with \`NODE_ENV=production\`); used only when neither \`AUTH_JWKS_URL\` nor \`AUTH_PUBLIC_KEY\` is set`,
      defaultText: ONE_AUTH_REQUIRED,
    }),
  AUTH_PUBLIC_KEY: z
    .string()
    .includes('BEGIN PUBLIC KEY', { message: 'must be a PEM public key' })
    .optional()
    .meta({
      description:
        'PEM public key of client tokens (RS256, or ES256 for an EC key); used only when `AUTH_JWKS_URL` is not set',
      defaultText: ONE_AUTH_REQUIRED,
    }),
  AUTH_JWKS_URL: z.url().optional().meta({
    description:
      'JWKS URL of the keys of client tokens (RS256, ES256); when set, `AUTH_PUBLIC_KEY` and `AUTH_JWT_SECRET` are ignored',
    defaultText: ONE_AUTH_REQUIRED,
  }),
  AUTH_ISSUER: z
    .string()
    .optional()
    .meta({ description: 'the `iss` client tokens must carry; not checked when unset' }),
  AUTH_AUDIENCE: z
    .string()
    .optional()
    .meta({ description: 'the `aud` client tokens must carry; not checked when unset' }),
  LEASE_TTL_MS: leaseTtlMs,
  USER_ENTRY_TTL_MS: durationMs(DEFAULT_USER_ENTRY_TTL_MS, 60_000, 30 * 86_400_000).meta({
    description:
      "`max_age` of `presence-users` when an edge creates it; an edge rewrites a connected user's entry when it is 3/8 to 1/2 of this old (or of the bucket's own `max_age`, if the bucket already exists with a shorter one)",
  }),
  EDGE_MAX_CONNECTIONS: z.coerce.number().int().positive().default(100_000).meta({
    description:
      'connections this node holds at most; past it `connect_error` `overloaded` (admission limit)',
  }),
  EDGE_MAX_CONNECTS_PER_SECOND: z.coerce.number().int().nonnegative().default(0).meta({
    description:
      'new connections admitted per second (`0`: no limit); past it `connect_error` `overloaded` and clients retry with jittered backoff',
  }),
  EDGE_MAX_CONNECTS_PER_IP_PER_SECOND: z.coerce.number().int().nonnegative().default(0).meta({
    description:
      'handshakes with a JWT-shaped token taken per client address per second, burst twice that (`0`: no limit); set it where clients reach the edge directly or with `EDGE_TRUST_PROXY`',
  }),
  EDGE_TRUST_PROXY: z.enum(['true', 'false']).default('false').meta({
    description:
      'take the client address from the first `X-Forwarded-For` entry (behind a load balancer)',
  }),
  MAX_CONNECTIONS_PER_USER: z.coerce.number().int().nonnegative().default(20).meta({
    description:
      'connections one user may hold across the cluster (`0`: no limit); past it `connect_error` `too_many_connections`',
  }),
  EDGE_MAX_BUFFERED_BYTES: z.coerce
    .number()
    .int()
    .min(64 * 1024)
    .default(4 * 1024 * 1024)
    .meta({
      description:
        'bytes queued to one socket past which it is sent `$closing` `slow_consumer` and disconnected',
    }),
  EDGE_MAX_INFLIGHT_ACKS: z.coerce.number().int().positive().default(10_000).meta({
    description:
      'acked per-user deliveries this node waits on at once; past it deliveries are refused (`node-unavailable`)',
  }),
  TOKEN_EXPIRY_WARNING_MS: durationMs(30_000, 1_000, 3_600_000).meta({
    description: "how long before its token's `exp` a socket is sent `$expiring`",
  }),
  CORS_ORIGINS: commaList().optional().meta({
    description: 'comma-separated origins allowed to open Socket.IO connections',
    defaultText: '`*` (any origin)',
  }),
});

export function loadConfig(env: Env): EdgeConfig {
  const prod = isProduction(env);
  const e = readEnv(edgeEnv(prod), env);
  if (!e.AUTH_JWT_SECRET && !e.AUTH_PUBLIC_KEY && !e.AUTH_JWKS_URL) {
    // Same shape as every other config failure.
    readEnv({ AUTH_JWT_SECRET: secret(prod, JWT_SECRET_MIN_LENGTH) }, env);
  }
  const nodeId = e.NODE_ID ?? `${defaultNodeId()}-${e.PORT}`;
  return {
    ...serviceSettings(e),
    nodeId,
    publicUrl: e.PUBLIC_URL ?? `http://${hostname()}:${e.PORT}`,
    auth: {
      jwtSecret: e.AUTH_JWT_SECRET,
      publicKeyPem: e.AUTH_PUBLIC_KEY,
      jwksUrl: e.AUTH_JWKS_URL,
      issuer: e.AUTH_ISSUER,
      audience: e.AUTH_AUDIENCE,
    },
    leaseTtlMs: e.LEASE_TTL_MS,
    userEntryTtlMs: e.USER_ENTRY_TTL_MS,
    maxConnections: e.EDGE_MAX_CONNECTIONS,
    maxConnectsPerSecond: e.EDGE_MAX_CONNECTS_PER_SECOND,
    maxConnectsPerIpPerSecond: e.EDGE_MAX_CONNECTS_PER_IP_PER_SECOND,
    trustProxy: e.EDGE_TRUST_PROXY === 'true',
    maxConnectionsPerUser: e.MAX_CONNECTIONS_PER_USER,
    maxBufferedBytes: e.EDGE_MAX_BUFFERED_BYTES,
    maxInflightAcks: e.EDGE_MAX_INFLIGHT_ACKS,
    tokenExpiryWarningMs: e.TOKEN_EXPIRY_WARNING_MS,
    corsOrigins: e.CORS_ORIGINS ?? '*',
  };
}
