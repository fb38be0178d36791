export * from './pool.js';
export * from './service.js';
export * from './startup-probe.js';
