export * from './connection.js';
export * from './errors.js';
export * from './provision.js';
export * from './request-mux.js';
