// Scenario 3, multicast: requests to 1,000 users spread over 4 socket servers, offered at
// 200 requests/s (200,000 deliveries/s, above what any system here sustains), so deliveries/s
// from the first request's due time to the last receipt is the fan-out capacity. Also: the
// time the first request (no queue yet) takes to reach all 1,000 users, and server CPU ms
// per 1,000 deliveries.
import {
  bringUpAll,
  measureRun,
  median,
  round,
  tearDown,
  userIds,
  warmUp,
} from '../support/harness.mjs';
import { SYSTEMS } from '../support/systems.mjs';

export async function run({ quick = false, log = console.log } = {}) {
  const nodes = 4;
  const users = userIds(1_000, 'm');
  const requests = quick ? 10 : 40;
  const rate = 200;
  const repeats = quick ? 1 : 3;
  let handles = {};
  const runs = Object.fromEntries(SYSTEMS.map((s) => [s, []]));
  try {
    handles = await bringUpAll(SYSTEMS, nodes, users);
    await Promise.all(
      SYSTEMS.map((name) =>
        warmUp(handles[name].system, handles[name].receivers, {
          rate: 400,
          users,
          tag: `mc-${name}`,
        }),
      ),
    );
    for (let rep = 0; rep < repeats; rep++) {
      for (const name of SYSTEMS.map((_, i) => SYSTEMS[(i + rep) % SYSTEMS.length])) {
        const r = await measureRun(handles[name].system, handles[name].receivers, {
          rate,
          count: requests,
          runId: `mc-${name}-${rep}`,
          users,
          fanout: 'all',
          idleMs: quick ? 500 : 1_000,
          tailMs: 10_000,
        });
        const first = r.window.firstDueUs;
        const lastUs = Math.max(...[...r.perSeq.values()].map(([, last]) => last));
        runs[name].push({
          valid: r.valid,
          received: r.received,
          expected: r.expected,
          deliveriesPerS: r.received / ((lastUs - first) / 1e6),
          firstFanoutMs: r.perSeq.has(0) ? (r.perSeq.get(0)[1] - first) / 1000 : null,
          cpuMsPer1k: r.cpuMsPer1k.total,
          cpuMsPer1kIdleAdjusted: r.cpuMsPer1k.idleAdjusted,
          byRole: r.cpuMsPer1k.byRole,
        });
      }
    }
  } finally {
    for (const h of Object.values(handles)) await tearDown(h);
  }
  const results = SYSTEMS.map((system) => {
    const rs = runs[system];
    const pick = (f) => round(median(rs.map(f)));
    const row = {
      system,
      valid: rs.every((r) => r.valid),
      deliveriesPerS: round(median(rs.map((r) => r.deliveriesPerS)), 0),
      deliveriesPerSSpread: [
        round(Math.min(...rs.map((r) => r.deliveriesPerS)), 0),
        round(Math.max(...rs.map((r) => r.deliveriesPerS)), 0),
      ],
      firstFanoutMs: pick((r) => r.firstFanoutMs),
      cpuMsPer1kDeliveries: pick((r) => r.cpuMsPer1k),
      cpuMsPer1kDeliveriesIdleAdjusted: pick((r) => r.cpuMsPer1kIdleAdjusted),
      byRole: Object.fromEntries(
        Object.keys(rs[0].byRole).map((k) => [k, pick((r) => r.byRole[k])]),
      ),
      received: rs.reduce((s, r) => s + r.received, 0),
      sent: rs.reduce((s, r) => s + r.expected, 0),
    };
    log(
      `  ${system}: ${row.deliveriesPerS} deliveries/s, first fan-out ${row.firstFanoutMs} ms, ${row.cpuMsPer1kDeliveries} cpu ms/1k`,
    );
    return row;
  });
  return { nodes, users: users.length, requests, rate, repeats, results };
}
