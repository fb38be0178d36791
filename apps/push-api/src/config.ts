/** Push API configuration from the environment. */
import {
  apiKeys,
  durationMs,
  type Env,
  isProduction,
  leaseTtlMs,
  readEnv,
  type ServiceConfig,
  serviceSettings,
  serviceShape,
  webhookAllowedHosts,
} from '@switchboard/config';
import { z } from 'zod';

export type PushApiConfig = ServiceConfig & {
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
};

/**
 * Every variable the push API reads, with what `docs/configuration.md` says of it. A function
 * of `NODE_ENV=production` only because the development API key is refused there.
 */
export const pushApiEnv = (production = false) => ({
  ...serviceShape(3000),
  API_KEYS: apiKeys(production),
  BODY_LIMIT_BYTES: z.coerce
    .number()
    .int()
    .min(1024)
    .max(64 * 1024 * 1024)
    .default(1024 * 1024)
    .meta({ description: 'largest request body; larger bodies get 413 `payload_too_large`' }),
  NODE_TIMEOUT_MS: durationMs(1_000, 10, 60_000).meta({
    description: 'how long an edge may take to answer a delivery without ack',
  }),
  ACK_GRACE_MS: durationMs(1_000, 0, 60_000).meta({
    description: "added to a message's `ackTimeoutMs` for the edge's own answer",
  }),
  LEASE_TTL_MS: leaseTtlMs,
  RATE_LIMIT_PER_MINUTE: z.coerce.number().int().positive().default(60_000).meta({
    description:
      'requests per minute per API key, per push API instance; past it 429 `rate_limited` with `Retry-After` (`/healthz`, `/readyz`, `/metrics`, `/docs` are not counted)',
  }),
  IDEMPOTENCY_PENDING_TIMEOUT_MS: durationMs(90_000, 1_000, 3_600_000).meta({
    description:
      'a pending idempotency claim (`Idempotency-Key` or body `id`) older than this belongs to a dead request: a retry takes it over and sends',
  }),
  FALLBACK_RETRY_MS: durationMs(10_000, 0, 600_000).meta({
    description:
      "how long an OS push hand-off to `PUSH_FALLBACK` is retried while JetStream is unavailable (`0`: tried once), never past the send's deadline",
  }),
  SEND_TIMEOUT_MS: durationMs(15_000, 1_000, 600_000).meta({
    description:
      'one deadline per send beyond its `ackTimeoutMs` (OS push hand-offs included): recipients not done by then are `dropped`',
  }),
  WEBHOOK_ALLOWED_HOSTS: webhookAllowedHosts,
});

export function loadConfig(env: Env): PushApiConfig {
  const e = readEnv(pushApiEnv(isProduction(env)), env);
  return {
    ...serviceSettings(e),
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
  };
}
