export * from './fallback-queue.js';
export * from './streams.js';
