import { runApp } from '@switchboard/runtime';
import { loadConfig } from './config.js';
import { startPushApi } from './start-push-api.js';

await runApp({ name: 'push-api', loadConfig, start: startPushApi });
