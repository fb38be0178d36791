import { runApp } from '@switchboard/runtime';
import { loadConfig } from './config.js';
import { startEdge } from './start-edge.js';

await runApp({ name: 'edge', loadConfig, start: startEdge });
