/**
 * Reusable field schemas for environment variables (strings in, typed values out). A
 * variable's `.meta({ description })` (and `defaultText` when loadConfig, not the schema,
 * supplies its default) is what `docs/configuration.md` says of it: the reference is
 * generated from these schemas (`scripts/config-reference.mjs`), so a variable an app reads
 * is documented by declaring it. `.meta()` must come last: `.optional()` and `.default()`
 * wrap the schema in a new one that does not carry it.
 */
import { z } from 'zod';

/** Development-only secrets that `npm start` uses; every app refuses them in production. */
export const DevSecrets = {
  apiKey: 'sb_dev_0000000000000000000000000000',
  jwtSecret: 'switchboard-dev-jwt-secret-do-not-use-in-production',
} as const;

const DEV_VALUES: ReadonlySet<string> = new Set(Object.values(DevSecrets));

export const isProduction = (env: Record<string, string | undefined>): boolean =>
  env.NODE_ENV === 'production';

/** A TCP port, with a default. */
export const port = (fallback: number) =>
  z.coerce.number().int().min(0).max(65_535).default(fallback);

/** A whole number of milliseconds within bounds, with a default. */
export const durationMs = (fallback: number, min = 1, max = 86_400_000) =>
  z.coerce.number().int().min(min).max(max).default(fallback);

/** Comma-separated list of non-empty items. */
export const commaList = (item: z.ZodString = z.string()) =>
  z
    .string()
    .transform((s) =>
      s
        .split(',')
        .map((x) => x.trim())
        .filter((x) => x.length > 0),
    )
    .pipe(z.array(item).min(1));

/** `NATS_URL`: comma-separated servers of one cluster. */
export const natsServers = commaList(
  z.string().regex(/^((nats|tls|ws|wss):\/\/)?[^\s,]+(:\d+)?$/, 'not a NATS server URL'),
).default(['nats://127.0.0.1:4222']);

/** `NATS_REPLICAS`: replicas of the buckets and streams an app creates. */
export const natsReplicas = z.coerce.number().int().min(1).max(5).default(1);

export const logLevel = z
  .enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'])
  .default('info')
  .meta({ description: 'pino log level (lines before the config is read are at `info`)' });

/**
 * `NODE_ENV`, read by {@link isProduction}; declared so that it is documented (any value is
 * accepted, as before: only `production` means anything).
 */
export const nodeEnv = z.string().optional().meta({
  description:
    '`production` refuses the development secrets of `npm start` (`API_KEYS`, `AUTH_JWT_SECRET`, `WEBHOOK_SECRET`) and lets webhooks use `https:` URLs only (push-api at registration, os-push at send); any other value changes nothing',
});

/**
 * `LOG_PRETTY`, read by `@switchboard/logger` from `process.env` before the config is loaded;
 * declared here only so that it is documented (any value is accepted).
 */
export const logPretty = z.string().optional().meta({
  description:
    '`1`: human-readable log lines (pino-pretty) instead of JSON lines, also when stdout is not a terminal',
  defaultText: 'on when stdout is a TTY',
});

/** `PORT` and `HOST`: where an app's HTTP server listens. */
export const listenShape = (defaultPort: number) => ({
  PORT: port(defaultPort).meta({
    description:
      'TCP port of the HTTP server (`0`: any free port): Socket.IO on the edge, the API on push-api and presence, probes and `/metrics` everywhere',
  }),
  HOST: z.string().default('0.0.0.0').meta({ description: 'address the HTTP server listens on' }),
});

/**
 * `LEASE_TTL_MS`: the node lease TTL, which the edges (writers) and the push API and presence
 * (readers) must agree on.
 */
export const leaseTtlMs = durationMs(10_000, 1_000, 300_000).meta({
  description:
    'node lease TTL: the `max_age` of `presence-nodes`, which an edge renews every TTL / 3; readers count a node alive while its lease is, and the presence leader lock lasts as long. Use one value in every app',
});

/**
 * `WEBHOOK_ALLOWED_HOSTS`: where webhook devices may point. The push API checks it at
 * registration, OS push at send (where it also turns the webhook provider on).
 */
export const webhookAllowedHosts = commaList().optional().meta({
  description:
    'comma-separated `host` (port 443, or 80 for `http:`) or `host:port` entries webhooks may go to: the push API refuses other URLs at registration (400), OS push at send. On os-push it enables webhooks and requires `WEBHOOK_SECRET`; unset, webhook devices are accepted by the push API and refused (or logged, see `OS_PUSH_UNCONFIGURED`) by OS push',
});

/** A secret that must be long enough, and may not be a dev value in production. */
export const secret = (production: boolean, minLength = 16) =>
  z
    .string()
    .min(minLength, `must be at least ${minLength} characters`)
    .refine((s) => !(production && DEV_VALUES.has(s)), {
      message: 'is a development secret, refused with NODE_ENV=production',
    });

/** `API_KEYS`: comma-separated keys (several for rotation), each a secret. */
export const apiKeys = (production: boolean) =>
  commaList(secret(production)).meta({
    description:
      'comma-separated API keys (several for rotation), 16+ characters each; the development key of `npm start` is refused with `NODE_ENV=production`',
  });

/** The NATS variables every app reads. */
export const natsShape = {
  NATS_URL: natsServers.meta({
    description:
      'comma-separated servers of one NATS cluster (`nats://`, `tls://`, `ws://`, `wss://` or none)',
  }),
  NATS_REPLICAS: natsReplicas.meta({
    description: 'replicas of the buckets and streams an app creates (3 on a cluster)',
  }),
  NATS_USER: z.string().min(1).optional().meta({
    description:
      'NATS user, with `NATS_PASSWORD` (see `infra/nats/accounts.conf`); the password is not checked to be set',
  }),
  NATS_PASSWORD: z
    .string()
    .min(1)
    .optional()
    .meta({ description: 'password of `NATS_USER`; ignored without it' }),
  NATS_TOKEN: z.string().min(1).optional().meta({
    description:
      'NATS token, instead of `NATS_USER` / `NATS_PASSWORD` (with both set, both are sent)',
  }),
};

export type NatsSettings = {
  servers: string[];
  replicas: number;
  user?: string;
  pass?: string;
  token?: string;
};

/** Maps the parsed NATS variables to connection settings. */
export function natsSettings(e: {
  NATS_URL: string[];
  NATS_REPLICAS: number;
  NATS_USER?: string | undefined;
  NATS_PASSWORD?: string | undefined;
  NATS_TOKEN?: string | undefined;
}): NatsSettings {
  return {
    servers: e.NATS_URL,
    replicas: e.NATS_REPLICAS,
    ...(e.NATS_USER ? { user: e.NATS_USER, pass: e.NATS_PASSWORD } : {}),
    ...(e.NATS_TOKEN ? { token: e.NATS_TOKEN } : {}),
  };
}

/**
 * The variables every app reads: `NODE_ENV`, `PORT`/`HOST`, the NATS connection and the log
 * settings. An app's env shape is `{ ...serviceShape(port), ...its own }`.
 */
export const serviceShape = (defaultPort: number) => ({
  NODE_ENV: nodeEnv,
  ...listenShape(defaultPort),
  ...natsShape,
  LOG_LEVEL: logLevel,
  LOG_PRETTY: logPretty,
});

/** What every app's config holds besides its own settings. */
export type ServiceConfig = {
  port: number;
  host: string;
  nats: NatsSettings;
  logLevel: z.infer<typeof logLevel>;
};

/** Maps the parsed {@link serviceShape} variables to the {@link ServiceConfig} part. */
export function serviceSettings(
  e: Parameters<typeof natsSettings>[0] & {
    PORT: number;
    HOST: string;
    LOG_LEVEL: z.infer<typeof logLevel>;
  },
): ServiceConfig {
  return { port: e.PORT, host: e.HOST, nats: natsSettings(e), logLevel: e.LOG_LEVEL };
}
