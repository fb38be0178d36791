import { runApp } from '@switchboard/runtime';
import { loadConfig } from './config.js';

// The app is loaded only to start it: `--check-config` reads the configuration alone.
await runApp({
  name: 'push-api',
  loadConfig,
  start: async (...args) => (await import('./start-push-api.js')).startPushApi(...args),
});
