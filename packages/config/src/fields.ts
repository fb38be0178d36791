/** Reusable field schemas for environment variables (strings in, typed values out). */
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
  .default('info');

/** A secret that must be long enough, and may not be a dev value in production. */
export const secret = (production: boolean, minLength = 16) =>
  z
    .string()
    .min(minLength, `must be at least ${minLength} characters`)
    .refine((s) => !(production && DEV_VALUES.has(s)), {
      message: 'is a development secret, refused with NODE_ENV=production',
    });

/** `API_KEYS`: comma-separated keys (several for rotation), each a secret. */
export const apiKeys = (production: boolean) => commaList(secret(production));

/** The NATS variables every app reads. */
export const natsShape = {
  NATS_URL: natsServers,
  NATS_REPLICAS: natsReplicas,
  NATS_USER: z.string().min(1).optional(),
  NATS_PASSWORD: z.string().min(1).optional(),
  NATS_TOKEN: z.string().min(1).optional(),
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
