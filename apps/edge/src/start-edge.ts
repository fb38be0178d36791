/** Builds and starts one edge node from its config: what `main.ts` runs and tests reuse. */
import { createMetricsRegistry } from '@switchboard/http/probes';
import { openPresenceBuckets } from '@switchboard/presence-registry';
import { type Running, type StartContext, startOnNats } from '@switchboard/runtime';
import type { Logger } from 'pino';
import type { EdgeConfig } from './config.js';
import { EdgeNode } from './edge-node.js';
import { TokenVerifier } from './token-verifier.js';

export type RunningEdge = Running<{
  node: EdgeNode;
  stop(): Promise<void>;
  fatal: Promise<Error>;
}>;

export function startEdge(
  config: EdgeConfig,
  log: Logger,
  context?: StartContext,
): Promise<RunningEdge> {
  return startOnNats({ name: `edge-${config.nodeId}`, config, log, context }, async (nc) => {
    const buckets = await openPresenceBuckets(nc, {
      replicas: config.nats.replicas,
      leaseTtlMs: config.leaseTtlMs,
      userEntryTtlMs: config.userEntryTtlMs,
    });
    // The bucket may have been made by another app (or an earlier version) with another
    // max_age: entries are refreshed within half of what the bucket really keeps them.
    const stored = (await buckets.users.status()).ttl;
    const userEntryTtlMs =
      stored > 0 ? Math.min(stored, config.userEntryTtlMs) : config.userEntryTtlMs;
    if (userEntryTtlMs !== config.userEntryTtlMs)
      log.warn(
        { configured: config.userEntryTtlMs, bucket: stored },
        'presence-users keeps entries for less than USER_ENTRY_TTL_MS; refreshing within its max_age',
      );
    const verifier = await TokenVerifier.create(config.auth);
    const node = new EdgeNode({
      config: { ...config, userEntryTtlMs },
      nc,
      buckets,
      verifier,
      log,
      registry: createMetricsRegistry('edge'),
    });
    await node.start(context);
    return { node, fatal: node.fatal, stop: () => node.stop() };
  });
}
