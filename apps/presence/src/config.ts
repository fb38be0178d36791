/** Presence service configuration from the environment. */
import {
  apiKeys,
  type Env,
  isProduction,
  leaseTtlMs,
  listenShape,
  logLevel,
  logPretty,
  type NatsSettings,
  natsSettings,
  natsShape,
  nodeEnv,
  readEnv,
} from '@switchboard/config';
import type { z } from 'zod';

export type PresenceConfig = {
  port: number;
  host: string;
  nats: NatsSettings;
  apiKeys: string[];
  leaseTtlMs: number;
  logLevel: z.infer<typeof logLevel>;
};

/**
 * Every variable the presence service reads (all shared with other apps). A function of
 * `NODE_ENV=production` only because the development API key is refused there.
 */
export const presenceEnv = (production = false) => ({
  NODE_ENV: nodeEnv,
  ...listenShape(3001),
  ...natsShape,
  API_KEYS: apiKeys(production),
  LEASE_TTL_MS: leaseTtlMs,
  LOG_LEVEL: logLevel,
  LOG_PRETTY: logPretty,
});

export function loadConfig(env: Env): PresenceConfig {
  const e = readEnv(presenceEnv(isProduction(env)), env);
  return {
    port: e.PORT,
    host: e.HOST,
    nats: natsSettings(e),
    apiKeys: e.API_KEYS,
    leaseTtlMs: e.LEASE_TTL_MS,
    logLevel: e.LOG_LEVEL,
  };
}
