/**
 * Metrics that count what happened: known traffic moves each counter and histogram of the
 * right app by exactly the right amount (push API outcomes, HTTP requests by route and
 * code, send and ack latency counts, each edge's deliveries, handshakes and users).
 */
import { collect, http, waitFor } from '@switchboard/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Stack } from './support/stack.js';

/** `name{labels}` → value, from Prometheus' text format (the `app` label dropped). */
async function scrape(url: string): Promise<Map<string, number>> {
  const text = await (await http(`${url}/metrics`)).text();
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) continue;
    const labels = (m[2] ?? '')
      .split(/,(?=[a-zA-Z_]+=")/)
      .filter((l) => l && !l.startsWith('app='))
      .join(',');
    out.set(labels ? `${m[1]}{${labels}}` : m[1]!, Number(m[3]));
  }
  return out;
}

const delta = (before: Map<string, number>, after: Map<string, number>, key: string) =>
  (after.get(key) ?? 0) - (before.get(key) ?? 0);

describe('metrics count what happened', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await Stack.start({ edges: 2 });
  });
  afterAll(() => stack?.close());

  it('metrics - known traffic moves each counter and histogram by exactly its amount', async () => {
    const api = stack.apiUrl;
    const edgeUrls = [stack.edgeUrl(0), stack.edgeUrl(1)];
    const [apiBefore, e0Before, e1Before] = await Promise.all([
      scrape(api),
      scrape(edgeUrls[0]!),
      scrape(edgeUrls[1]!),
    ]);
    const one = collect(await stack.client('m-one', 0));
    const two = collect(await stack.client('m-two', 1), { ack: true });
    const post = (body: unknown) => stack.post('/v1/messages', body);
    for (let i = 0; i < 3; i++) await post({ to: 'm-one', event: 'n', data: i });
    for (let i = 0; i < 2; i++)
      await post({ to: 'm-two', event: 'n', ack: true, ackTimeoutMs: 2_000 });
    await post({ to: 'm-away', event: 'n', fallback: { title: 't', body: 'b' } });
    await post({ to: 'm-away', event: 'n' });
    expect((await post({ to: 'm-one' })).status).toBe(400);
    await waitFor(() => one.length === 3 && two.length === 2);
    const [apiAfter, e0After, e1After] = await Promise.all([
      scrape(api),
      scrape(edgeUrls[0]!),
      scrape(edgeUrls[1]!),
    ]);

    const d = (key: string) => delta(apiBefore, apiAfter, key);
    expect(d('switchboard_push_recipients_total{status="delivered",reason=""}')).toBe(5);
    expect(d('switchboard_push_recipients_total{status="fallback",reason="offline"}')).toBe(1);
    expect(d('switchboard_push_recipients_total{status="dropped",reason="offline"}')).toBe(1);
    expect(d('switchboard_push_send_seconds_count')).toBe(7);
    expect(d('switchboard_push_ack_seconds_count')).toBe(2);
    expect(
      d('switchboard_http_requests_total{method="POST",route="/v1/messages",code="200"}'),
    ).toBe(7);
    expect(
      d('switchboard_http_requests_total{method="POST",route="/v1/messages",code="400"}'),
    ).toBe(1);
    expect(
      d('switchboard_http_request_duration_seconds_count{method="POST",route="/v1/messages"}'),
    ).toBe(8);
    expect(apiAfter.get('switchboard_nats_connected')).toBe(1);

    expect(delta(e0Before, e0After, 'switchboard_edge_deliveries_total')).toBe(3);
    expect(delta(e1Before, e1After, 'switchboard_edge_deliveries_total')).toBe(2);
    for (const [before, after] of [
      [e0Before, e0After],
      [e1Before, e1After],
    ] as const) {
      expect(delta(before, after, 'switchboard_edge_connections_accepted_total')).toBe(1);
      expect(after.get('switchboard_edge_users')).toBe(1);
      expect(after.get('switchboard_edge_connections')).toBe(1);
      expect(after.get('switchboard_nats_connected')).toBe(1);
      expect(after.get('switchboard_edge_deliveries_refused_total{reason="ack-capacity"}')).toBe(0);
    }
  });
});
