/** The push API's own metrics (beside Node's process metrics). */
import { Counter, Histogram, type Registry } from 'prom-client';

export type RouterMetrics = ReturnType<typeof createRouterMetrics>;

export function createRouterMetrics(registry: Registry) {
  const recipients = new Counter({
    name: 'switchboard_push_recipients_total',
    help: 'Recipients by outcome: delivered, fallback, dropped (with the reason when undelivered)',
    labelNames: ['status', 'reason'],
    registers: [registry],
  });
  // The labelled children, kept: a send does not hash label values.
  const children = new Map<string, ReturnType<typeof recipients.labels>>();
  return {
    recipients,
    /** The counter child of one outcome. */
    recipientsOf(status: string, reason = '') {
      const key = `${status}|${reason}`;
      const known = children.get(key);
      if (known) return known;
      const child = recipients.labels(status, reason);
      children.set(key, child);
      return child;
    },
    nodeRequests: new Counter({
      name: 'switchboard_push_node_requests_total',
      help: 'Requests to edge nodes: ok, or failed (no responders, timeout)',
      labelNames: ['outcome'],
      registers: [registry],
    }),
    rechecks: new Counter({
      name: 'switchboard_push_presence_rechecks_total',
      help: 'Recipients the presence mirror routed that no node reached, read again from KV',
      registers: [registry],
    }),
    sendSeconds: new Histogram({
      name: 'switchboard_push_send_seconds',
      help: 'Time to route one message, from presence lookup to the last outcome',
      buckets: [0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
    }),
    ackSeconds: new Histogram({
      name: 'switchboard_push_ack_seconds',
      help: 'Sends that asked for an ack: time from the request until every recipient acked or timed out',
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers: [registry],
    }),
  };
}
