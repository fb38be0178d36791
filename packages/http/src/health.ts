/**
 * `/healthz` (the process is alive), `/readyz` (its dependencies are usable) and
 * `/metrics` (Prometheus text). All public.
 */

import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import type { Registry } from 'prom-client';

export type HealthOptions = {
  /** Named checks; the app is ready when all return true. */
  checks: Record<string, () => boolean>;
  registry: Registry;
};

export const health = fp<HealthOptions>(
  async (app: FastifyInstance, opts) => {
    app.get('/healthz', { config: { public: true }, logLevel: 'warn' }, async () => ({
      status: 'ok',
    }));
    app.get('/readyz', { config: { public: true }, logLevel: 'warn' }, async (_req, reply) => {
      const checks: Record<string, boolean> = {};
      let ready = true;
      for (const [name, check] of Object.entries(opts.checks)) {
        checks[name] = check();
        ready &&= checks[name];
      }
      return reply.code(ready ? 200 : 503).send({ status: ready ? 'ready' : 'not ready', checks });
    });
    app.get('/metrics', { config: { public: true }, logLevel: 'warn' }, async (_req, reply) => {
      reply.header('content-type', opts.registry.contentType);
      return opts.registry.metrics();
    });
  },
  { name: 'switchboard-health' },
);
