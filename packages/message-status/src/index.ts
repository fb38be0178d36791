export * from './status-stream.js';
export * from './stream.js';
