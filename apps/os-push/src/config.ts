/** OS push worker configuration from the environment. */
import { commaList, logLevel, natsReplicas, natsServers, port } from '@switchboard/config/fields';
import { type Env, readEnv } from '@switchboard/config/load';
import { z } from 'zod';

export type OsPushConfig = {
  port: number;
  host: string;
  natsServers: string[];
  natsReplicas: number;
  webhookAllowedHosts: string[];
  logLevel: z.infer<typeof logLevel>;
};

export function loadConfig(env: Env): OsPushConfig {
  const e = readEnv(
    {
      PORT: port(3002),
      HOST: z.string().default('0.0.0.0'),
      NATS_URL: natsServers,
      NATS_REPLICAS: natsReplicas,
      WEBHOOK_ALLOWED_HOSTS: commaList().optional(),
      LOG_LEVEL: logLevel,
    },
    env,
  );
  return {
    port: e.PORT,
    host: e.HOST,
    natsServers: e.NATS_URL,
    natsReplicas: e.NATS_REPLICAS,
    webhookAllowedHosts: e.WEBHOOK_ALLOWED_HOSTS ?? [],
    logLevel: e.LOG_LEVEL,
  };
}
