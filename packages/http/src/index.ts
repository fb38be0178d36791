/** @switchboard/http: what every HTTP surface shares: the Fastify app (JSON errors, API-key auth, OpenAPI docs, load shedding), probes (/healthz, /readyz) and /metrics. */
export * from './api-error.js';
export * from './api-key-auth.js';
export * from './docs.js';
export * from './error-handler.js';
export * from './health.js';
export * from './http-app.js';
export * from './http-metrics.js';
export * from './json-body.js';
export * from './probes.js';
