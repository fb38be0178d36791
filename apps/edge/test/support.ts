/** An edge's configuration for in-process tests: every bound off unless a test sets it. */
import type { EdgeConfig } from '../src/config.js';

export function edgeTestConfig(
  natsUrl: string,
  secret: string,
  overrides: Partial<EdgeConfig> = {},
): EdgeConfig {
  return {
    port: 0,
    host: '127.0.0.1',
    nodeId: 'test-edge',
    publicUrl: 'http://127.0.0.1',
    nats: { servers: [natsUrl], replicas: 1 },
    auth: { jwtSecret: secret },
    leaseTtlMs: 3_000,
    userEntryTtlMs: 86_400_000,
    maxConnections: 1_000,
    maxConnectsPerSecond: 0,
    maxConnectsPerIpPerSecond: 0,
    trustProxy: false,
    maxConnectionsPerUser: 0,
    maxBufferedBytes: 4 * 1024 * 1024,
    maxInflightAcks: 10_000,
    tokenExpiryWarningMs: 30_000,
    corsOrigins: '*',
    logLevel: 'silent',
    ...overrides,
  };
}
