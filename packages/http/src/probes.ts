/**
 * `@switchboard/http/probes`: `/healthz`, `/readyz` and `/metrics` for the apps that are not
 * Fastify apps (the edge, whose HTTP server belongs to Socket.IO, and the OS push worker),
 * with the same JSON as {@link health}; anything else is the JSON 404. With the metrics
 * registry, it is all such an app loads of this package: no Fastify.
 */
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';

export { createMetricsRegistry, natsConnectedGauge } from './metrics.js';

export type ProbeOptions = {
  /** Named checks; ready when all return true. */
  checks: Record<string, () => boolean>;
  registry: Registry;
  /** Extra fields of the /readyz body (node id, worker stats). */
  info?: () => Record<string, unknown>;
};

export function probeHandler(
  options: ProbeOptions,
): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    const json = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    };
    if (path === '/healthz') return json(200, { status: 'ok' });
    if (path === '/readyz') {
      const checks: Record<string, boolean> = {};
      for (const [name, check] of Object.entries(options.checks)) checks[name] = check();
      const ready = Object.values(checks).every(Boolean);
      return json(ready ? 200 : 503, {
        status: ready ? 'ready' : 'not ready',
        checks,
        ...options.info?.(),
      });
    }
    if (path === '/metrics') {
      void options.registry.metrics().then(
        (body) => res.writeHead(200, { 'content-type': options.registry.contentType }).end(body),
        () => json(500, { error: { code: 'internal_error', message: 'metrics unavailable' } }),
      );
      return;
    }
    json(404, { error: { code: 'not_found', message: `no route ${req.method} ${path}` } });
  };
}

/** Listens and resolves with the URL on 127.0.0.1 and the bound port (useful with port 0). */
export function listenHttp(server: Server, port: number, host: string): Promise<string> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
    });
  });
}
