export * from './fields.js';
export * from './load.js';
export * from './reference.js';
