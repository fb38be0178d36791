export * from './device-registry.js';
