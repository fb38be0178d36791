import { createMetricsRegistry } from '@switchboard/http/health';
import { createLogger } from '@switchboard/logger/logger';
import { connectNats } from '@switchboard/nats/connection';
import { openPresenceBuckets } from '@switchboard/nats/provision';
import { runService } from '@switchboard/runtime/service';
import { loadConfig } from './config.js';
import { EdgeNode } from './edge-node.js';
import { TokenVerifier } from './token-verifier.js';

const log = createLogger({ name: 'edge' });

await runService({
  name: 'edge',
  log,
  async start() {
    const config = loadConfig(process.env);
    log.level = config.logLevel;
    const nc = await connectNats({ servers: config.natsServers, name: `edge-${config.nodeId}`, log });
    const buckets = await openPresenceBuckets(nc, { replicas: config.natsReplicas, leaseTtlMs: config.leaseTtlMs });
    const verifier = await TokenVerifier.create(config.auth);
    const node = new EdgeNode({ config, nc, buckets, verifier, log, registry: createMetricsRegistry('edge') });
    await node.start();
    return {
      async stop() {
        await node.stop();
        await nc.drain();
      },
    };
  },
});
