/** @switchboard/nats: generic NATS plumbing: one connection per process, stream and bucket creation, a request multiplexer, and errors read by type and JetStream code. */
export * from './connection.js';
export * from './errors.js';
export * from './provision.js';
export * from './request-mux.js';
