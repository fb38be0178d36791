/**
 * A real Prometheus scraping the whole running product (two edges, the push API, presence
 * and an OS push worker on a real nats-server) with the alert rules of
 * infra/prometheus/alerts.yml loaded. After known traffic, every query of every panel of
 * the Grafana dashboard (infra/grafana/switchboard.json) returns data, and every metric it
 * names exists. Panels waiting for metrics the apps do not export yet say so in their
 * description ("Pending metric: <selector>"): for those the test asserts the selector is
 * still absent, so the mark cannot outlive the metric's arrival. Every alert rule evaluates
 * without error; the healthy stack fires none; a dead letter fires SwitchboardDeadLetters.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { jetstream } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { Subjects } from '@switchboard/protocol';
import {
  STACK_API_KEY as API_KEY,
  connectClient,
  http,
  mintToken,
  PrometheusServer,
  type PromSample,
  STACK_SECRET as SECRET,
  Stack,
  waitFor,
} from '@switchboard/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const PRESENCE_KEY = 'ops-test-presence-key-0123';

type Target = { refId: string; expr: string };
type Panel = { type: string; title: string; description?: string; targets?: Target[] };
const dashboard = JSON.parse(readFileSync(`${root}infra/grafana/switchboard.json`, 'utf8')) as {
  panels: Panel[];
};
const panels = dashboard.panels.filter((p) => p.type !== 'row');

/** Grafana's variables, as Prometheus' own API needs them. */
const forPrometheus = (expr: string) =>
  expr.replaceAll('$__rate_interval', '1m').replaceAll('$__interval', '15s');
/** The metric names an expression reads (the apps' and Node's; not Prometheus' own `up`). */
const metricNames = (expr: string) => [
  ...new Set(expr.match(/\b(?:switchboard|process|nodejs)_[a-z0-9_]+\b/g) ?? []),
];
const pendingOf = (p: Panel) =>
  [...(p.description ?? '').matchAll(/^Pending metric: (\S+)/gm)].map((m) => m[1]!);

let stack: Stack;
let prometheus: PrometheusServer;
let spy: NatsConnection;

const hostPort = (url: string) => new URL(url).host;

async function query(expr: string): Promise<PromSample[]> {
  return (await prometheus.query(expr)).result as PromSample[];
}

/** Polls `expr` until it returns a sample; a query Prometheus refuses fails at once. */
async function waitForData(expr: string, timeoutMs = 20_000): Promise<PromSample[]> {
  await query(expr);
  return waitFor(async () => ((await query(expr)).length > 0 ? query(expr) : null), {
    timeoutMs,
    intervalMs: 250,
    message: `no data for ${expr}`,
  });
}

let scraped: Promise<void> | undefined;
/** Every target scraped, then a few more scrapes: a metric absent now is not exported. */
function scrapedAFewTimes(): Promise<void> {
  scraped ??= (async () => {
    await waitFor(async () => (await query('up == 1')).length === 5, {
      timeoutMs: 20_000,
      message: 'not every target was scraped',
    });
    // Two more scrapes of every target (each `up` sample stamped after the round began), not
    // a sleep: a series absent after them is not exported.
    for (let round = 0; round < 2; round++) {
      const since = Date.now() / 1_000;
      await waitFor(
        async () => {
          const [oldest] = await query('min(timestamp(up))');
          return oldest !== undefined && Number(oldest.value[1]) > since;
        },
        { timeoutMs: 10_000, intervalMs: 250, message: 'not every target was scraped again' },
      );
    }
  })();
  return scraped;
}

describe('operations: Prometheus scraping the running stack', () => {
  beforeAll(async () => {
    // Every app a process; OS push "sends" every platform through the log provider: accepted.
    stack = await Stack.start({
      edges: 2,
      presence: { API_KEYS: PRESENCE_KEY },
      osPush: { OS_PUSH_UNCONFIGURED: 'log' },
    });
    const presenceUrl = stack.presenceUrl;
    const osPush = stack.osPush!;
    prometheus = await PrometheusServer.start({
      intervalSeconds: 1,
      ruleFiles: [`${root}infra/prometheus/alerts.yml`],
      jobs: [
        {
          job: 'switchboard-edge',
          targets: stack.edges.map((_, i) => hostPort(stack.edgeUrl(i))),
        },
        { job: 'switchboard-push-api', targets: [hostPort(stack.apiUrl)] },
        { job: 'switchboard-presence', targets: [hostPort(presenceUrl)] },
        { job: 'switchboard-os-push', targets: [hostPort(osPush.url)] },
      ],
    });
    spy = await stack.connect('ops-test');

    // Known traffic.
    await waitFor(async () => (await stack.presence!.metric('switchboard_presence_leader')) === 1, {
      message: 'presence never led',
    });
    const alice = await stack.client('alice', 0);
    await stack.client('bob', 1);
    // A token that expires in 2 s: the edge closes the socket (reason expired).
    await connectClient(stack.edgeUrl(1), {
      token: await mintToken({ sub: 'carla', secret: SECRET, expiresInSeconds: 2 }),
    }).then((s) => stack.clients.push(s));
    // A refused handshake (unauthorized) and a token refresh.
    await expect(connectClient(stack.edgeUrl(0), { token: 'not-a-token' })).rejects.toThrow();
    const refreshed = await alice.emitWithAck(
      '$refresh',
      await mintToken({ sub: 'alice', secret: SECRET }),
    );
    expect(refreshed).toMatchObject({ ok: true });
    // An offline user with a device: the message goes through OS push.
    const device = await http(`${stack.apiUrl}/v1/users/dora/devices/phone`, {
      method: 'PUT',
      headers: {
        authorization: `Bearer ${API_KEY}`,
        'content-type': 'application/json',
      },
      body: JSON.stringify({ platform: 'apns', token: 'ab'.repeat(32) }),
    });
    expect(device.status).toBe(200);
    for (const to of ['alice', 'bob', 'dora', 'nobody']) {
      const res = await stack.post('/v1/messages', {
        to,
        event: 'ops.test',
        data: { to },
        ...(to === 'dora' ? { fallback: { title: 'Hi', body: 'ops test' } } : {}),
      });
      expect(res.status).toBe(200);
    }
    const view = await http(`${presenceUrl}/v1/presence/alice`, {
      headers: { authorization: `Bearer ${PRESENCE_KEY}` },
    });
    expect(await view.json()).toMatchObject({ online: true });
    const reply = await spy.request(Subjects.presenceQuery, JSON.stringify({ userId: 'bob' }));
    expect(reply.json()).toMatchObject({ online: true });
    await waitFor(
      async () =>
        ((await osPush.metric('switchboard_os_push_messages_total', { outcome: 'acked' })) ?? 0) >=
        1,
      {
        timeoutMs: 10_000,
        message: 'OS push never finished the fallback message',
      },
    );
  });

  afterAll(async () => {
    await prometheus?.stop();
    await stack?.close();
  });

  it('every target is scraped', async () => {
    let seen: unknown;
    const targets = await waitFor(
      async () => {
        const t = await prometheus.targets();
        seen = t;
        return t.length === 5 && t.every((x) => x.health === 'up') ? t : null;
      },
      { timeoutMs: 15_000, message: () => `targets not all up: ${JSON.stringify(seen)}` },
    );
    expect(targets.map((t) => t.labels.job).sort()).toEqual([
      'switchboard-edge',
      'switchboard-edge',
      'switchboard-os-push',
      'switchboard-presence',
      'switchboard-push-api',
    ]);
  });

  it('the dashboard has panels, each with at least one query', () => {
    expect(panels.length).toBeGreaterThan(20);
    for (const p of panels) expect(p.targets?.length, p.title).toBeGreaterThan(0);
  });

  for (const panel of panels) {
    const pending = pendingOf(panel);
    const names = new Set((panel.targets ?? []).flatMap((t) => metricNames(t.expr)));
    const pendingNames = new Set(pending.map((s) => s.split('{')[0]!));
    // A panel is wholly pending when every metric it reads waits for an export.
    const wholly = pending.length > 0 && [...names].every((n) => pendingNames.has(n));

    if (pending.length > 0) {
      it(`panel "${panel.title}": still waits for ${pending.join(', ')} (fails once exported: then remove its "Pending metric" lines and "(pending metric)" from its title)`, async () => {
        await scrapedAFewTimes();
        for (const selector of pending) {
          const series = await prometheus.series(selector);
          expect(series, `${selector} is exported now`).toEqual([]);
        }
      });
    }
    if (wholly) continue;

    it(`panel "${panel.title}" returns data`, async () => {
      for (const name of names) {
        if (pendingNames.has(name)) continue;
        await waitFor(async () => (await prometheus.series(name)).length > 0, {
          timeoutMs: 20_000,
          intervalMs: 250,
          message: `metric ${name} (panel "${panel.title}") never appeared`,
        });
      }
      for (const target of panel.targets ?? []) {
        const samples = await waitForData(forPrometheus(target.expr));
        expect(samples.length, target.expr).toBeGreaterThan(0);
      }
    });
  }

  it('every alert rule evaluates without error on the live stack', async () => {
    const groups = await waitFor(
      async () => {
        const g = await prometheus.rules();
        const rules = g.flatMap((x) => x.rules);
        return rules.length > 0 && rules.every((r) => r.health !== 'unknown') ? g : null;
      },
      { timeoutMs: 10_000, message: 'alert rules never evaluated' },
    );
    const rules = groups.flatMap((g) => g.rules);
    expect(rules.length).toBeGreaterThanOrEqual(10);
    for (const r of rules)
      expect({ rule: r.name, health: r.health, err: r.lastError ?? '' }).toEqual({
        rule: r.name,
        health: 'ok',
        err: '',
      });
  });

  it('every metric the alert rules read exists', async () => {
    const text = readFileSync(`${root}infra/prometheus/alerts.yml`, 'utf8');
    const names = metricNames(text.replace(/#.*$/gm, ''));
    expect(names.length).toBeGreaterThan(5);
    for (const name of names)
      await waitFor(async () => (await prometheus.series(name)).length > 0, {
        timeoutMs: 15_000,
        intervalMs: 250,
        message: `alert rules read ${name}, which no app exports`,
      });
  });

  it('the healthy stack fires no alert, and none is pending', async () => {
    // Right after start some rules were pending (absent() before the first scrape). Lag and
    // latency alerts depend on the machine's load, not on the stack being right: left out.
    const expr = 'ALERTS{alertname!~"SwitchboardEventLoopLag|SwitchboardSlowSends"}';
    let seen: PromSample[] = [];
    await waitFor(
      async () => {
        seen = await query(expr);
        return seen.length === 0;
      },
      {
        timeoutMs: 10_000,
        message: () => `alerts on a healthy stack: ${JSON.stringify(seen.map((a) => a.metric))}`,
      },
    );
  });

  it('a dead letter fires SwitchboardDeadLetters', async () => {
    await jetstream(spy).publish(
      `${Subjects.dlqPrefix}.ops-test`,
      JSON.stringify({ synthetic: true }),
    );
    const firing = await waitForData(
      'ALERTS{alertname="SwitchboardDeadLetters",alertstate="firing"}',
      15_000,
    );
    expect(firing[0]!.metric.severity).toBe('warning');
    expect(await query('max(switchboard_os_push_dlq_messages)')).toMatchObject([
      { value: [expect.any(Number), '1'] },
    ]);
  });
});
