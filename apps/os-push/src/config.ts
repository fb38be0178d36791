/** OS push worker configuration from the environment. */
import { readFileSync } from 'node:fs';
import {
  ConfigError,
  durationMs,
  type Env,
  isProduction,
  type logLevel,
  readEnv,
  type ServiceConfig,
  secret,
  serviceSettings,
  serviceShape,
  webhookAllowedHosts,
} from '@switchboard/config';
import { z } from 'zod';
import {
  APNS_PRODUCTION_URL,
  APNS_SANDBOX_URL,
  type ApnsProviderOptions,
} from './providers/apns-provider.js';
import { FCM_BASE_URL, type ServiceAccount } from './providers/fcm-provider.js';

export type OsPushConfig = ServiceConfig & {
  apns?: Omit<ApnsProviderOptions, 'log' | 'requestTimeoutMs'>;
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

/** Said of each APNs variable that only counts once a key is given. */
const WITH_APNS_KEY = 'required with `APNS_KEY` or `APNS_KEY_FILE`';

/**
 * Every variable the OS push worker reads, with what `docs/configuration.md` says of it. A
 * platform's group only counts when its key is given (APNs, FCM), webhooks when
 * `WEBHOOK_ALLOWED_HOSTS` is set. A function of `NODE_ENV=production` only because
 * development secrets are refused there.
 */
export const osPushEnv = (production = false) => ({
  ...serviceShape(3002),
  APNS_KEY: z
    .string()
    .includes('PRIVATE KEY', { message: 'must be the .p8 key (PEM)' })
    .optional()
    .meta({
      description:
        'the APNs .p8 key (PEM) of the Apple developer account: enables APNs, with `APNS_KEY_ID` and `APNS_TEAM_ID`; wins over `APNS_KEY_FILE`',
    }),
  APNS_KEY_FILE: z.string().optional().meta({
    description:
      'path of the .p8 key, read at start when `APNS_KEY` is unset (its content is not checked to be a key)',
  }),
  APNS_KEY_ID: z
    .string()
    .regex(/^[A-Z0-9]{10}$/, 'is the 10-character key id')
    .optional()
    .meta({
      description: `the key's 10-character id (\`kid\`); ${WITH_APNS_KEY}, ignored without`,
    }),
  APNS_TEAM_ID: z
    .string()
    .regex(/^[A-Z0-9]{10}$/, 'is the 10-character team id')
    .optional()
    .meta({
      description: `the 10-character team id (\`iss\`); ${WITH_APNS_KEY}, ignored without`,
    }),
  APNS_TOPIC: z.string().optional().meta({
    description:
      "`apns-topic` (the app's bundle id) for devices without `appId`; a device with neither is rejected",
  }),
  APNS_BASE_URL: z
    .url()
    .optional()
    .meta({
      description: 'APNs endpoint for devices of production builds (tests, proxies)',
      defaultText: `\`${APNS_PRODUCTION_URL}\``,
    }),
  APNS_SANDBOX_BASE_URL: z
    .url()
    .optional()
    .meta({
      description: 'APNs endpoint for devices registered with `sandbox: true` (development builds)',
      defaultText: `\`${APNS_SANDBOX_URL}\``,
    }),
  FCM_SERVICE_ACCOUNT_JSON: z.string().optional().meta({
    description:
      'service-account key (JSON) of the Firebase project, with the Firebase Cloud Messaging API enabled: enables FCM (the project id comes from the key); wins over `FCM_SERVICE_ACCOUNT_FILE`',
  }),
  FCM_SERVICE_ACCOUNT_FILE: z.string().optional().meta({
    description:
      'path of that JSON key, read at start when `FCM_SERVICE_ACCOUNT_JSON` is unset (its errors are reported as `FCM_SERVICE_ACCOUNT_JSON`)',
  }),
  FCM_BASE_URL: z
    .url()
    .optional()
    .meta({ description: 'FCM endpoint (tests, proxies)', defaultText: `\`${FCM_BASE_URL}\`` }),
  WEBHOOK_ALLOWED_HOSTS: webhookAllowedHosts,
  WEBHOOK_SECRET: secret(production, 16).optional().meta({
    description:
      'HMAC-SHA256 key of `x-switchboard-signature`, 16+ characters; required when `WEBHOOK_ALLOWED_HOSTS` is set, ignored otherwise',
  }),
  WEBHOOK_TIMEOUT_MS: durationMs(5_000, 100, 60_000).meta({
    description: 'how long one webhook request may take, answer included',
  }),
  WEBHOOK_ALLOW_PRIVATE: z.enum(['true', 'false']).default('false').meta({
    description:
      '`true` lets webhooks reach loopback, link-local and private addresses (checked at connect time)',
  }),
  WEBHOOK_MAX_RESPONSE_BYTES: z.coerce
    .number()
    .int()
    .min(0)
    .max(16_777_216)
    .default(65_536)
    .meta({ description: "bytes of a webhook's answer read at most" }),
  OS_PUSH_UNCONFIGURED: z.enum(['reject', 'log']).default('reject').meta({
    description:
      'devices of a platform that is not configured: `reject` (final; the status says `provider-rejected`, `<platform> is not configured`) or `log` (print what would be sent; what `npm start` uses)',
  }),
  OS_PUSH_MAX_ATTEMPTS: z.coerce.number().int().min(1).max(100).default(8).meta({
    description:
      "deliveries of one message before it is moved to `PUSH_FALLBACK_DLQ`; the consumer's `max_deliver` is this + 2",
  }),
  OS_PUSH_RETRY_BASE_MS: durationMs(1_000, 1, 600_000).meta({
    description:
      "first retry delay (nak), doubling per attempt up to `OS_PUSH_RETRY_MAX_MS`, and at least the provider's `Retry-After`",
  }),
  OS_PUSH_RETRY_MAX_MS: durationMs(300_000, 1, 3_600_000).meta({
    description: 'longest retry delay (not checked against `OS_PUSH_RETRY_BASE_MS`)',
  }),
  OS_PUSH_CONCURRENCY: z.coerce
    .number()
    .int()
    .min(1)
    .max(1_000)
    .default(32)
    .meta({ description: 'messages one worker processes at once' }),
  OS_PUSH_ACK_WAIT_MS: durationMs(60_000, 1_000, 3_600_000).meta({
    description:
      "how long a message may stay unacked before the server redelivers it (the consumer's `ack_wait`)",
  }),
});

export function loadConfig(env: Env): OsPushConfig {
  const e = readEnv(osPushEnv(isProduction(env)), env);
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
    ...serviceSettings(e),
    ...(apns ? { apns } : {}),
    ...(fcm ? { fcm } : {}),
    ...(webhook ? { webhook } : {}),
    unconfigured: e.OS_PUSH_UNCONFIGURED,
    maxAttempts: e.OS_PUSH_MAX_ATTEMPTS,
    retryBaseMs: e.OS_PUSH_RETRY_BASE_MS,
    retryMaxMs: e.OS_PUSH_RETRY_MAX_MS,
    concurrency: e.OS_PUSH_CONCURRENCY,
    ackWaitMs: e.OS_PUSH_ACK_WAIT_MS,
  };
}

function readKey(variable: string, path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError([{ variable, message: `cannot be read: ${(err as Error).message}` }]);
  }
}
