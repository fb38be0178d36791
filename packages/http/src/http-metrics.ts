/**
 * HTTP request metrics for every Fastify app: `switchboard_http_requests_total` and
 * `switchboard_http_request_duration_seconds`, labelled by the route pattern (never the
 * raw URL: a user id in a path must not become a label value), the method and the status
 * code. Requests no route matched count under `route="unmatched"`.
 *
 * On the send path: the labelled children are looked up once per (method, route, code) and
 * kept, so a request costs one Map lookup, one increment and one observation.
 */
import type { FastifyInstance } from 'fastify';
import { Counter, Histogram, type Registry } from 'prom-client';

const BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

type Child = { count: { inc(): void }; duration: { observe(v: number): void } };

export function registerHttpMetrics(app: FastifyInstance, registry: Registry): void {
  const requests = new Counter({
    name: 'switchboard_http_requests_total',
    help: 'HTTP requests answered, by method, route pattern and status code',
    labelNames: ['method', 'route', 'code'],
    registers: [registry],
  });
  const duration = new Histogram({
    name: 'switchboard_http_request_duration_seconds',
    help: 'Time from the request to the end of its response, by method and route pattern',
    labelNames: ['method', 'route'],
    buckets: BUCKETS,
    registers: [registry],
  });
  const children = new Map<string, Child>();
  app.addHook('onResponse', (req, reply, done) => {
    const route = req.routeOptions.url ?? 'unmatched';
    const code = reply.statusCode;
    const key = `${req.method} ${code} ${route}`;
    let child = children.get(key);
    if (!child) {
      child = {
        count: requests.labels(req.method, route, String(code)),
        duration: duration.labels(req.method, route),
      };
      // Routes, methods and codes are few; unmatched paths all share one route label.
      if (children.size < 1_000) children.set(key, child);
    }
    child.count.inc();
    child.duration.observe(reply.elapsedTime / 1000);
    done();
  });
}
