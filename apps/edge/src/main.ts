import { createLogger } from '@switchboard/logger/logger';
import { runService } from '@switchboard/runtime/service';
import { loadConfig } from './config.js';
import { startEdge } from './start-edge.js';

const log = createLogger({ name: 'edge' });

await runService({
  name: 'edge',
  log,
  async start() {
    const config = loadConfig(process.env);
    log.level = config.logLevel;
    return startEdge(config, log);
  },
});
