/** OS push worker configuration from the environment. */
import { readFileSync } from 'node:fs';
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
import { ConfigError, type Env, readEnv } from '@switchboard/config/load';
import { z } from 'zod';
import type { ServiceAccount } from './providers/fcm-provider.js';

export type OsPushConfig = {
  port: number;
  host: string;
  nats: NatsSettings;
  apns?: {
    keyPem: string;
    keyId: string;
    teamId: string;
    defaultTopic?: string;
    baseUrl?: string;
    sandboxBaseUrl?: string;
  };
  fcm?: { serviceAccount: ServiceAccount; baseUrl?: string };
  webhook?: {
    allowedHosts: string[];
    secret: string;
    timeoutMs: number;
    allowPrivate: boolean;
    requireHttps: boolean;
    maxResponseBytes: number;
  };
  /** What happens to devices of a platform that is not configured. */
  unconfigured: 'reject' | 'log';
  maxAttempts: number;
  retryBaseMs: number;
  retryMaxMs: number;
  concurrency: number;
  ackWaitMs: number;
  logLevel: z.infer<typeof logLevel>;
};

const ServiceAccountJson = z.object({
  project_id: z.string().min(1),
  client_email: z.string().min(1),
  private_key: z.string().includes('PRIVATE KEY'),
  token_uri: z.url(),
});

export function loadConfig(env: Env): OsPushConfig {
  const e = readEnv(
    {
      PORT: port(3002),
      HOST: z.string().default('0.0.0.0'),
      ...natsShape,
      APNS_KEY: z
        .string()
        .includes('PRIVATE KEY', { message: 'must be the .p8 key (PEM)' })
        .optional(),
      APNS_KEY_FILE: z.string().optional(),
      APNS_KEY_ID: z
        .string()
        .regex(/^[A-Z0-9]{10}$/, 'is the 10-character key id')
        .optional(),
      APNS_TEAM_ID: z
        .string()
        .regex(/^[A-Z0-9]{10}$/, 'is the 10-character team id')
        .optional(),
      APNS_TOPIC: z.string().optional(),
      APNS_BASE_URL: z.url().optional(),
      APNS_SANDBOX_BASE_URL: z.url().optional(),
      FCM_SERVICE_ACCOUNT_JSON: z.string().optional(),
      FCM_SERVICE_ACCOUNT_FILE: z.string().optional(),
      FCM_BASE_URL: z.url().optional(),
      WEBHOOK_ALLOWED_HOSTS: commaList().optional(),
      WEBHOOK_SECRET: secret(isProduction(env), 16).optional(),
      WEBHOOK_TIMEOUT_MS: durationMs(5_000, 100, 60_000),
      WEBHOOK_ALLOW_PRIVATE: z.enum(['true', 'false']).default('false'),
      WEBHOOK_MAX_RESPONSE_BYTES: z.coerce.number().int().min(0).max(16_777_216).default(65_536),
      OS_PUSH_UNCONFIGURED: z.enum(['reject', 'log']).default('reject'),
      OS_PUSH_MAX_ATTEMPTS: z.coerce.number().int().min(1).max(100).default(8),
      OS_PUSH_RETRY_BASE_MS: durationMs(1_000, 1, 600_000),
      OS_PUSH_RETRY_MAX_MS: durationMs(300_000, 1, 3_600_000),
      OS_PUSH_CONCURRENCY: z.coerce.number().int().min(1).max(1_000).default(32),
      OS_PUSH_ACK_WAIT_MS: durationMs(60_000, 1_000, 3_600_000),
      LOG_LEVEL: logLevel,
    },
    env,
  );
  const fail = (variable: string, message: string): never => {
    throw new ConfigError([{ variable, message }]);
  };
  let apns: OsPushConfig['apns'];
  const apnsKey =
    e.APNS_KEY ?? (e.APNS_KEY_FILE ? readKey('APNS_KEY_FILE', e.APNS_KEY_FILE) : undefined);
  if (apnsKey) {
    apns = {
      keyPem: apnsKey,
      keyId: e.APNS_KEY_ID ?? fail('APNS_KEY_ID', 'is required with an APNs key'),
      teamId: e.APNS_TEAM_ID ?? fail('APNS_TEAM_ID', 'is required with an APNs key'),
      ...(e.APNS_TOPIC ? { defaultTopic: e.APNS_TOPIC } : {}),
      ...(e.APNS_BASE_URL ? { baseUrl: e.APNS_BASE_URL } : {}),
      ...(e.APNS_SANDBOX_BASE_URL ? { sandboxBaseUrl: e.APNS_SANDBOX_BASE_URL } : {}),
    };
  }
  let fcm: OsPushConfig['fcm'];
  const saText =
    e.FCM_SERVICE_ACCOUNT_JSON ??
    (e.FCM_SERVICE_ACCOUNT_FILE
      ? readKey('FCM_SERVICE_ACCOUNT_FILE', e.FCM_SERVICE_ACCOUNT_FILE)
      : undefined);
  if (saText) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(saText);
    } catch {
      fail('FCM_SERVICE_ACCOUNT_JSON', 'is not JSON');
    }
    const sa = ServiceAccountJson.safeParse(parsed);
    if (!sa.success)
      fail(
        'FCM_SERVICE_ACCOUNT_JSON',
        `is not a service account key: ${sa.error.issues.map((i) => i.path.join('.')).join(', ')}`,
      );
    fcm = { serviceAccount: sa.data!, ...(e.FCM_BASE_URL ? { baseUrl: e.FCM_BASE_URL } : {}) };
  }
  let webhook: OsPushConfig['webhook'];
  if (e.WEBHOOK_ALLOWED_HOSTS) {
    webhook = {
      allowedHosts: e.WEBHOOK_ALLOWED_HOSTS,
      secret:
        e.WEBHOOK_SECRET ?? fail('WEBHOOK_SECRET', 'is required when WEBHOOK_ALLOWED_HOSTS is set'),
      timeoutMs: e.WEBHOOK_TIMEOUT_MS,
      allowPrivate: e.WEBHOOK_ALLOW_PRIVATE === 'true',
      // http: webhooks are for development only.
      requireHttps: isProduction(env),
      maxResponseBytes: e.WEBHOOK_MAX_RESPONSE_BYTES,
    };
  }
  return {
    port: e.PORT,
    host: e.HOST,
    nats: natsSettings(e),
    ...(apns ? { apns } : {}),
    ...(fcm ? { fcm } : {}),
    ...(webhook ? { webhook } : {}),
    unconfigured: e.OS_PUSH_UNCONFIGURED,
    maxAttempts: e.OS_PUSH_MAX_ATTEMPTS,
    retryBaseMs: e.OS_PUSH_RETRY_BASE_MS,
    retryMaxMs: e.OS_PUSH_RETRY_MAX_MS,
    concurrency: e.OS_PUSH_CONCURRENCY,
    ackWaitMs: e.OS_PUSH_ACK_WAIT_MS,
    logLevel: e.LOG_LEVEL,
  };
}

function readKey(variable: string, path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError([{ variable, message: `cannot be read: ${(err as Error).message}` }]);
  }
}
