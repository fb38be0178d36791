export * from './pool.js';
export * from './service.js';
export * from './start.js';
export * from './startup-probe.js';
