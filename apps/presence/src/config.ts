/** Presence service configuration from the environment. */
import {
  apiKeys,
  type Env,
  isProduction,
  leaseTtlMs,
  readEnv,
  type ServiceConfig,
  serviceSettings,
  serviceShape,
} from '@switchboard/config';

export type PresenceConfig = ServiceConfig & {
  apiKeys: string[];
  leaseTtlMs: number;
};

/**
 * Every variable the presence service reads (all shared with other apps). A function of
 * `NODE_ENV=production` only because the development API key is refused there.
 */
export const presenceEnv = (production = false) => ({
  ...serviceShape(3001),
  API_KEYS: apiKeys(production),
  LEASE_TTL_MS: leaseTtlMs,
});

export function loadConfig(env: Env): PresenceConfig {
  const e = readEnv(presenceEnv(isProduction(env)), env);
  return {
    ...serviceSettings(e),
    apiKeys: e.API_KEYS,
    leaseTtlMs: e.LEASE_TTL_MS,
  };
}
