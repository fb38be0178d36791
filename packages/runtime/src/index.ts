export * from './service.js';
export * from './startup-probe.js';
