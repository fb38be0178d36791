/** @switchboard/runtime: how an app runs: the process shell (signals, graceful stop, --check-config), the start-up probe, the start shell on one NATS connection, and a bounded worker pool. */
export * from './pool.js';
export * from './service.js';
export * from './start.js';
export * from './startup-probe.js';
