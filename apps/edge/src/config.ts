/** Edge configuration from the environment; a bad value stops the node naming the variable. */
import { hostname } from 'node:os';
import {
  commaList,
  durationMs,
  isProduction,
  logLevel,
  type NatsSettings,
  natsSettings,
  natsShape,
  port,
  secret,
} from '@switchboard/config/fields';
import { type Env, readEnv } from '@switchboard/config/load';
import { DEFAULT_USER_ENTRY_TTL_MS } from '@switchboard/nats/provision';
import { NODE_ID_PATTERN } from '@switchboard/protocol/subjects';
import { z } from 'zod';

export type EdgeConfig = {
  port: number;
  host: string;
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
  logLevel: z.infer<typeof logLevel>;
};

const defaultNodeId = () => `${hostname()}`.replace(/[^A-Za-z0-9_-]/g, '-').slice(0, 48);

export function loadConfig(env: Env): EdgeConfig {
  const prod = isProduction(env);
  const e = readEnv(
    {
      PORT: port(3100),
      HOST: z.string().default('0.0.0.0'),
      NODE_ID: z
        .string()
        .regex(NODE_ID_PATTERN, 'must be 1-64 characters of [A-Za-z0-9_-]')
        .optional(),
      PUBLIC_URL: z.url().optional(),
      ...natsShape,
      AUTH_JWT_SECRET: secret(prod, 32).optional(),
      AUTH_PUBLIC_KEY: z
        .string()
        .includes('BEGIN PUBLIC KEY', { message: 'must be a PEM public key' })
        .optional(),
      AUTH_JWKS_URL: z.url().optional(),
      AUTH_ISSUER: z.string().optional(),
      AUTH_AUDIENCE: z.string().optional(),
      LEASE_TTL_MS: durationMs(10_000, 1_000, 300_000),
      USER_ENTRY_TTL_MS: durationMs(DEFAULT_USER_ENTRY_TTL_MS, 60_000, 30 * 86_400_000),
      EDGE_MAX_CONNECTIONS: z.coerce.number().int().positive().default(100_000),
      EDGE_MAX_CONNECTS_PER_SECOND: z.coerce.number().int().nonnegative().default(0),
      EDGE_MAX_CONNECTS_PER_IP_PER_SECOND: z.coerce.number().int().nonnegative().default(0),
      EDGE_TRUST_PROXY: z.enum(['true', 'false']).default('false'),
      MAX_CONNECTIONS_PER_USER: z.coerce.number().int().nonnegative().default(20),
      EDGE_MAX_BUFFERED_BYTES: z.coerce
        .number()
        .int()
        .min(64 * 1024)
        .default(4 * 1024 * 1024),
      EDGE_MAX_INFLIGHT_ACKS: z.coerce.number().int().positive().default(10_000),
      TOKEN_EXPIRY_WARNING_MS: durationMs(30_000, 1_000, 3_600_000),
      CORS_ORIGINS: commaList().optional(),
      LOG_LEVEL: logLevel,
    },
    env,
  );
  if (!e.AUTH_JWT_SECRET && !e.AUTH_PUBLIC_KEY && !e.AUTH_JWKS_URL) {
    // Same shape as every other config failure.
    readEnv({ AUTH_JWT_SECRET: secret(prod, 32) }, env);
  }
  const nodeId = e.NODE_ID ?? `${defaultNodeId()}-${e.PORT}`;
  return {
    port: e.PORT,
    host: e.HOST,
    nodeId,
    publicUrl: e.PUBLIC_URL ?? `http://${hostname()}:${e.PORT}`,
    nats: natsSettings(e),
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
    logLevel: e.LOG_LEVEL,
  };
}
