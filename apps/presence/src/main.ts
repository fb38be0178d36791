import { createLogger } from '@switchboard/logger/logger';
import { runService } from '@switchboard/runtime/service';
import { loadConfig } from './config.js';
import { startPresence } from './start-presence.js';

const log = createLogger({ name: 'presence' });

await runService({
  name: 'presence',
  log,
  async start() {
    const config = loadConfig(process.env);
    log.level = config.logLevel;
    return startPresence(config, log);
  },
});
