/** @switchboard/config: environment variables as zod schemas: reading, validation errors naming the variable, the shapes every app shares, and the reference docs/configuration.md is generated from. */
export * from './fields.js';
export * from './load.js';
export * from './reference.js';
