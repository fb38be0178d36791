/** @switchboard/fallback-queue: the durable hand-off to OS push: the PUSH_FALLBACK work queue and its dead-letter stream. */
export * from './fallback-queue.js';
export * from './streams.js';
