import { createLogger } from '@switchboard/logger/logger';
import { runService } from '@switchboard/runtime/service';
import { loadConfig } from './config.js';
import { startOsPush } from './start-os-push.js';

const log = createLogger({ name: 'os-push' });

await runService({
  name: 'os-push',
  log,
  async start() {
    const config = loadConfig(process.env);
    log.level = config.logLevel;
    return startOsPush(config, log);
  },
});
