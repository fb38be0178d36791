import { runApp } from '@switchboard/runtime';
import { loadConfig } from './config.js';
import { startPresence } from './start-presence.js';

await runApp({ name: 'presence', loadConfig, start: startPresence });
