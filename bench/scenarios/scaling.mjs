// Scenario 1, scaling with nodes: 400 users over N socket servers, single-recipient
// messages at a fixed rate. For each N the three systems run side by side and are measured
// in turn (the order rotates each repeat); per system and N: server CPU ms per 1,000
// delivered messages over every server process (total, per role, idle-adjusted),
// received/sent, POST-to-receipt p50/p99. The limits are measured once at the same rate.
import {
  bringUp,
  bringUpAll,
  measureRun,
  median,
  round,
  tearDown,
  userIds,
  warmUp,
} from '../support/harness.mjs';
import { LIMITS, SYSTEMS } from '../support/systems.mjs';

export const DEFAULT_NODES = [1, 2, 4, 8];

export function settings({ quick, rate, repeats }) {
  return {
    rate: rate ?? 400,
    users: 400,
    repeats: repeats ?? (quick ? 1 : 3),
    sendSeconds: quick ? 2 : 5,
    idleMs: quick ? 500 : 2_000,
    warmCount: quick ? 400 : 800,
  };
}

function summarize(system, nodes, runs) {
  const pick = (f) => median(runs.map(f));
  const roles = Object.keys(runs[0].cpuMsPer1k.byRole);
  const spread = (f) => {
    const v = runs.map(f).filter((x) => typeof x === 'number');
    return v.length ? [round(Math.min(...v)), round(Math.max(...v))] : null;
  };
  return {
    system,
    nodes,
    valid: runs.every((r) => r.valid),
    repeats: runs.length,
    offeredRate: runs[0].offeredRate,
    achievedRate: round(
      pick((r) => r.achievedRate),
      1,
    ),
    cpuMsPer1k: {
      total: round(pick((r) => r.cpuMsPer1k.total)),
      idleAdjusted: round(pick((r) => r.cpuMsPer1k.idleAdjusted)),
      byRole: Object.fromEntries(roles.map((k) => [k, round(pick((r) => r.cpuMsPer1k.byRole[k]))])),
      idleAdjustedByRole: Object.fromEntries(
        roles.map((k) => [k, round(pick((r) => r.cpuMsPer1k.idleAdjustedByRole[k]))]),
      ),
    },
    spread: {
      cpuMsPer1kTotal: spread((r) => r.cpuMsPer1k.total),
      cpuMsPer1kIdleAdjusted: spread((r) => r.cpuMsPer1k.idleAdjusted),
      p99Ms: spread((r) => r.p99Ms),
    },
    p50Ms: round(pick((r) => r.p50Ms)),
    p99Ms: round(pick((r) => r.p99Ms)),
    received: runs.reduce((s, r) => s + r.received, 0),
    sent: runs.reduce((s, r) => s + r.expected, 0),
    httpErrors: runs.reduce((s, r) => s + r.httpErrors, 0),
    notDelivered: runs.reduce((s, r) => s + r.notDelivered, 0),
  };
}

/**
 * Runs the scenario. `onMeasured(system, nodes, run, handle)` is called after each
 * measurement (the profiler uses it); `startOptions(name)` adds start options per system.
 */
export async function run({
  quick = false,
  nodes = DEFAULT_NODES,
  rate,
  repeats,
  limits = true,
  startOptions = () => ({}),
  log = console.log,
} = {}) {
  const s = settings({ quick, rate, repeats });
  const users = userIds(s.users, 'u');
  const count = Math.round(s.rate * s.sendSeconds);
  const scaling = [];
  const limitRows = [];

  if (limits) {
    for (const name of LIMITS) {
      const handle = await bringUp(name, 1, users, startOptions(name));
      try {
        await warmUp(handle.system, handle.receivers, {
          rate: s.rate,
          users,
          count: s.warmCount,
          tag: name,
        });
        const runs = [];
        for (let rep = 0; rep < s.repeats; rep++) {
          runs.push(
            await measureRun(handle.system, handle.receivers, {
              rate: s.rate,
              count,
              runId: `${name}-${rep}`,
              users,
              idleMs: s.idleMs,
            }),
          );
        }
        const row = summarize(name, 1, runs);
        limitRows.push(row);
        log(`  ${name}: ${row.cpuMsPer1k.total} cpu ms/1k, p99 ${row.p99Ms} ms`);
      } finally {
        await tearDown(handle);
      }
    }
  }

  for (const n of nodes) {
    let handles = {};
    try {
      handles = await bringUpAll(SYSTEMS, n, users, startOptions);
      // Warm-ups run together (they are not measured): JIT, connections, every user once.
      await Promise.all(
        SYSTEMS.map(async (name) => {
          const ok = await warmUp(handles[name].system, handles[name].receivers, {
            rate: s.rate,
            users,
            count: s.warmCount,
            tag: `${name}-${n}`,
          });
          if (!ok) log(`  warning: ${name} N=${n} lost messages during warm-up`);
        }),
      );
      const runs = Object.fromEntries(SYSTEMS.map((name) => [name, []]));
      for (let rep = 0; rep < s.repeats; rep++) {
        // Interleaved, and the order rotates, so drift on this shared machine spreads evenly.
        const order = SYSTEMS.map((_, i) => SYSTEMS[(i + rep) % SYSTEMS.length]);
        for (const name of order) {
          const r = await measureRun(handles[name].system, handles[name].receivers, {
            rate: s.rate,
            count,
            runId: `${name}-${n}-${rep}`,
            users,
            idleMs: s.idleMs,
          });
          runs[name].push(r);
        }
      }
      for (const name of SYSTEMS) {
        const row = summarize(name, n, runs[name]);
        row.window = runs[name].at(-1).window;
        scaling.push(row);
        log(
          `  N=${n} ${name}: ${row.cpuMsPer1k.total} cpu ms/1k (idle-adj ${row.cpuMsPer1k.idleAdjusted}), p50 ${row.p50Ms} p99 ${row.p99Ms} ms, ${row.received}/${row.sent}${row.valid ? '' : ' INVALID'}`,
        );
      }
    } finally {
      for (const h of Object.values(handles)) await tearDown(h);
    }
  }
  return {
    settings: { ...s, messagesPerRun: count, nodes },
    scaling: scaling.map(({ window, ...row }) => row),
    windows: Object.fromEntries(scaling.map((r) => [`${r.system}/${r.nodes}`, r.window])),
    limits: limitRows,
  };
}
