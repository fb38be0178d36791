import { runApp } from '@switchboard/runtime';
import { loadConfig } from './config.js';
import { startOsPush } from './start-os-push.js';

await runApp({ name: 'os-push', loadConfig, start: startOsPush });
