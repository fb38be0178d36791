/** Presence service configuration from the environment. */
import {
  apiKeys,
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

export type PresenceConfig = {
  port: number;
  host: string;
  nats: NatsSettings;
  apiKeys: string[];
  leaseTtlMs: number;
  logLevel: z.infer<typeof logLevel>;
};

export function loadConfig(env: Env): PresenceConfig {
  const e = readEnv(
    {
      PORT: port(3001),
      HOST: z.string().default('0.0.0.0'),
      ...natsShape,
      API_KEYS: apiKeys(isProduction(env)),
      LEASE_TTL_MS: durationMs(10_000, 1_000, 300_000),
      LOG_LEVEL: logLevel,
    },
    env,
  );
  return {
    port: e.PORT,
    host: e.HOST,
    nats: natsSettings(e),
    apiKeys: e.API_KEYS,
    leaseTtlMs: e.LEASE_TTL_MS,
    logLevel: e.LOG_LEVEL,
  };
}
