/** Builds and starts one edge node from its config: what `main.ts` runs and tests reuse. */
import type { NatsConnection } from '@nats-io/transport-node';
import { createMetricsRegistry } from '@switchboard/http/health';
import { connectNats } from '@switchboard/nats/connection';
import { openPresenceBuckets } from '@switchboard/nats/provision';
import type { StartContext } from '@switchboard/runtime/service';
import type { Logger } from 'pino';
import type { EdgeConfig } from './config.js';
import { EdgeNode } from './edge-node.js';
import { TokenVerifier } from './token-verifier.js';

export type RunningEdge = {
  node: EdgeNode;
  nc: NatsConnection;
  stop(): Promise<void>;
  fatal: Promise<Error>;
};

export async function startEdge(
  config: EdgeConfig,
  log: Logger,
  context?: StartContext,
): Promise<RunningEdge> {
  const nc = await connectNats({
    ...config.nats,
    name: `edge-${config.nodeId}`,
    log,
    ...(context ? { onWaiting: context.waiting } : {}),
  });
  try {
    const buckets = await openPresenceBuckets(nc, {
      replicas: config.nats.replicas,
      leaseTtlMs: config.leaseTtlMs,
    });
    const verifier = await TokenVerifier.create(config.auth);
    const node = new EdgeNode({
      config,
      nc,
      buckets,
      verifier,
      log,
      registry: createMetricsRegistry('edge'),
    });
    await node.start(context);
    return {
      node,
      nc,
      fatal: node.fatal,
      async stop() {
        await node.stop();
        await nc.drain();
      },
    };
  } catch (err) {
    await nc.close();
    throw err;
  }
}
