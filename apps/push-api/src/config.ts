/** Push API configuration from the environment. */
import {
  apiKeys,
  commaList,
  durationMs,
  isProduction,
  logLevel,
  type NatsSettings,
  natsSettings,
  natsShape,
  port,
} from '@switchboard/config/fields';
import { type Env, readEnv } from '@switchboard/config/load';
import { z } from 'zod';

export type PushApiConfig = {
  port: number;
  host: string;
  nats: NatsSettings;
  apiKeys: string[];
  /** Largest request body; larger gets 413. */
  bodyLimitBytes: number;
  /** How long a node may take to answer a delivery without ack. */
  nodeTimeoutMs: number;
  /** Added to `ackTimeoutMs` for acked deliveries: the node's own answer time. */
  ackGraceMs: number;
  leaseTtlMs: number;
  /** Requests per minute per API key, per instance. */
  rateLimitPerMinute: number;
  /** A pending idempotency claim older than this belongs to a dead request and is taken over. */
  idempotencyPendingTimeoutMs: number;
  /** How long a fallback hand-off is retried while JetStream is unavailable. */
  fallbackRetryMs: number;
  /** One deadline per send beyond its ack wait (OS push hand-offs included). */
  sendTimeoutMs: number;
  /** Webhook devices are refused at registration unless they point here (when set). */
  webhooks?: { allowedHosts: string[]; requireHttps: boolean };
  logLevel: z.infer<typeof logLevel>;
};

export function loadConfig(env: Env): PushApiConfig {
  const e = readEnv(
    {
      PORT: port(3000),
      HOST: z.string().default('0.0.0.0'),
      ...natsShape,
      API_KEYS: apiKeys(isProduction(env)),
      BODY_LIMIT_BYTES: z.coerce
        .number()
        .int()
        .min(1024)
        .max(64 * 1024 * 1024)
        .default(1024 * 1024),
      NODE_TIMEOUT_MS: durationMs(1_000, 10, 60_000),
      ACK_GRACE_MS: durationMs(1_000, 0, 60_000),
      LEASE_TTL_MS: durationMs(10_000, 1_000, 300_000),
      RATE_LIMIT_PER_MINUTE: z.coerce.number().int().positive().default(60_000),
      IDEMPOTENCY_PENDING_TIMEOUT_MS: durationMs(90_000, 1_000, 3_600_000),
      FALLBACK_RETRY_MS: durationMs(10_000, 0, 600_000),
      SEND_TIMEOUT_MS: durationMs(15_000, 1_000, 600_000),
      WEBHOOK_ALLOWED_HOSTS: commaList().optional(),
      LOG_LEVEL: logLevel,
    },
    env,
  );
  return {
    port: e.PORT,
    host: e.HOST,
    nats: natsSettings(e),
    apiKeys: e.API_KEYS,
    bodyLimitBytes: e.BODY_LIMIT_BYTES,
    nodeTimeoutMs: e.NODE_TIMEOUT_MS,
    ackGraceMs: e.ACK_GRACE_MS,
    leaseTtlMs: e.LEASE_TTL_MS,
    rateLimitPerMinute: e.RATE_LIMIT_PER_MINUTE,
    idempotencyPendingTimeoutMs: e.IDEMPOTENCY_PENDING_TIMEOUT_MS,
    fallbackRetryMs: e.FALLBACK_RETRY_MS,
    sendTimeoutMs: e.SEND_TIMEOUT_MS,
    ...(e.WEBHOOK_ALLOWED_HOSTS
      ? {
          webhooks: {
            allowedHosts: e.WEBHOOK_ALLOWED_HOSTS,
            requireHttps: isProduction(env),
          },
        }
      : {}),
    logLevel: e.LOG_LEVEL,
  };
}
