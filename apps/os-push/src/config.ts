/** OS push worker configuration from the environment. */
import {
  commaList,
  logLevel,
  type NatsSettings,
  natsSettings,
  natsShape,
  port,
} from '@switchboard/config/fields';
import { type Env, readEnv } from '@switchboard/config/load';
import { z } from 'zod';

export type OsPushConfig = {
  port: number;
  host: string;
  nats: NatsSettings;
  webhookAllowedHosts: string[];
  logLevel: z.infer<typeof logLevel>;
};

export function loadConfig(env: Env): OsPushConfig {
  const e = readEnv(
    {
      PORT: port(3002),
      HOST: z.string().default('0.0.0.0'),
      ...natsShape,
      WEBHOOK_ALLOWED_HOSTS: commaList().optional(),
      LOG_LEVEL: logLevel,
    },
    env,
  );
  return {
    port: e.PORT,
    host: e.HOST,
    nats: natsSettings(e),
    webhookAllowedHosts: e.WEBHOOK_ALLOWED_HOSTS ?? [],
    logLevel: e.LOG_LEVEL,
  };
}
