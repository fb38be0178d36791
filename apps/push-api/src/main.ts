import { createLogger } from '@switchboard/logger/logger';
import { runService } from '@switchboard/runtime/service';
import { loadConfig } from './config.js';
import { startPushApi } from './start-push-api.js';

const log = createLogger({ name: 'push-api' });

await runService({
  name: 'push-api',
  log,
  async start() {
    const config = loadConfig(process.env);
    log.level = config.logLevel;
    return startPushApi(config, log);
  },
});
