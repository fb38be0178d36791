/**
 * @switchboard/http: what every HTTP surface shares: the Fastify app (JSON errors, API-key
 * auth, OpenAPI docs, load shedding), probes (/healthz, /readyz) and /metrics.
 * `@switchboard/http/probes` is the part without Fastify (probes for a plain Node server,
 * the metrics registry), for the apps that serve no API: loading Fastify and its plugins
 * cost the edge a third of its start-up.
 */
export * from './api-error.js';
export * from './api-key-auth.js';
export * from './docs.js';
export * from './error-handler.js';
export * from './health.js';
export * from './http-app.js';
export * from './http-metrics.js';
export * from './json-body.js';
export * from './metrics.js';
export * from './probes.js';
