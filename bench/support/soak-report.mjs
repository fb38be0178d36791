// The soak's arithmetic and its report: least-squares trends, percentiles, the accounting
// of every message, and bench/results/soak.md.
import hdr from 'hdr-histogram-js';

const MB = 2 ** 20;

/** A slope counts only this many standard errors above zero: noise alone must not flag a trend. */
const MIN_T = 2;

/** Least-squares line through points [x, y]: { slope, intercept, mean, se }, or null with < 2 points. */
export function leastSquares(points) {
  const n = points.length;
  if (n < 2) return null;
  let sx = 0;
  let sy = 0;
  for (const [x, y] of points) {
    sx += x;
    sy += y;
  }
  const mx = sx / n;
  const my = sy / n;
  let sxy = 0;
  let sxx = 0;
  for (const [x, y] of points) {
    sxy += (x - mx) * (y - my);
    sxx += (x - mx) ** 2;
  }
  if (sxx === 0) return null;
  const slope = sxy / sxx;
  const intercept = my - slope * mx;
  let sse = 0;
  for (const [x, y] of points) sse += (y - intercept - slope * x) ** 2;
  // Standard error of the slope (n − 2 degrees of freedom).
  const se = n > 2 ? Math.sqrt(sse / (n - 2) / sxx) : Number.POSITIVE_INFINITY;
  return { slope, intercept, mean: my, se };
}

/**
 * The trend rule. `series`: [seconds since the soak started, bytes]. Only the second half of
 * the run counts (after warm-up: JIT, buffers and pools filling up). The line is fitted
 * either to every point (`bucketSeconds` null: the figures after a forced full GC, one per
 * window) or, for a series that still has its GC sawtooth, to its floor: the lowest sample
 * of each `bucketSeconds` window. Flagged when the growth the slope predicts over the whole
 * run (slope × runSeconds) exceeds `threshold` (10%) of the mean of the fitted points (or of
 * `relativeTo`), and the slope is at least MIN_T (2) standard errors above zero. `relativeTo`:
 * a heap's trend is held to 10% of the process's memory, not of the heap alone (10% of
 * nats-server's few-MB Go heap would be noise).
 * The plain fit through every sample of the second half is reported beside it.
 */
export function trend(
  series,
  runSeconds,
  { bucketSeconds = null, threshold = 0.1, relativeTo = null } = {},
) {
  const half = series.filter(([t]) => t >= runSeconds / 2 - 0.5);
  let points = half;
  if (bucketSeconds) {
    const floors = new Map();
    for (const [t, y] of half) {
      const b = Math.floor(t / bucketSeconds);
      if (b * bucketSeconds < runSeconds / 2 - 0.5) continue;
      const cur = floors.get(b);
      if (cur === undefined || y < cur) floors.set(b, y);
    }
    points = [...floors].map(([b, y]) => [(b + 0.5) * bucketSeconds, y]);
  }
  const fit = leastSquares(points);
  const raw = leastSquares(half);
  if (!fit) return { points: points.length, flagged: false, note: 'too few samples' };
  const projected = fit.slope * runSeconds;
  const limit = threshold * (relativeTo ?? fit.mean);
  const t = fit.se > 0 ? fit.slope / fit.se : fit.slope > 0 ? Number.POSITIVE_INFINITY : 0;
  return {
    points: points.length,
    meanMB: round(fit.mean / MB, 1),
    slopeMBPerMin: round((fit.slope * 60) / MB, 3),
    slopeSEMBPerMin: round((fit.se * 60) / MB, 3),
    t: round(t, 1),
    projectedMBOverRun: round(projected / MB, 2),
    limitMB: round(limit / MB, 2),
    rawSlopeMBPerMin: raw ? round((raw.slope * 60) / MB, 3) : null,
    flagged: projected > limit && t >= MIN_T,
  };
}

/** p50 / p99 / max in ms of µs values. */
export function percentiles(valuesUs) {
  if (valuesUs.length === 0) return { p50Ms: null, p99Ms: null, maxMs: null, n: 0 };
  const h = hdr.build({
    lowestDiscernibleValue: 1,
    highestTrackableValue: 3_600_000_000,
    numberOfSignificantValueDigits: 3,
  });
  for (const v of valuesUs) h.recordValue(Math.min(3_600_000_000, Math.max(1, Math.round(v))));
  const ms = (p) => round(h.getValueAtPercentile(p) / 1000, 2);
  return { p50Ms: ms(50), p99Ms: ms(99), maxMs: round(h.maxValue / 1000, 2), n: valuesUs.length };
}

export const round = (v, digits = 2) =>
  typeof v === 'number' && Number.isFinite(v) ? Number(v.toFixed(digits)) : (v ?? null);

const f = (v, d = 1) =>
  v === null || v === undefined || Number.isNaN(v)
    ? '–'
    : typeof v === 'number'
      ? v.toFixed(d)
      : String(v);

function table(head, rows, align) {
  const lines = [
    `| ${head.join(' | ')} |`,
    `| ${head.map((_, i) => (align?.[i] === 'l' ? '---' : '--:')).join(' | ')} |`,
  ];
  for (const r of rows) lines.push(`| ${r.join(' | ')} |`);
  return lines.join('\n');
}

/** The verdict lines, shared by the console summary and soak.md. */
export function verdictLines(out) {
  const a = out.accounting;
  const lines = [];
  lines.push(
    `Every message accounted: **${a.allAccounted ? 'yes' : 'NO'}**. ${a.sent} sent = ${a.deliveredReceived} delivered and received + ${a.deliveredThenClosed} delivered to a socket that then closed + ${a.fallback} fallback + ${a.dropped} dropped + ${a.httpErrors} HTTP errors + ${a.skipped} not sent (sender backlog) + ${a.lost} delivered but never received (unexplained) + ${a.unanswered} unanswered.`,
  );
  lines.push(
    `Fallbacks sent by OS push: ${a.osPush.accepted ?? '–'} of ${a.fallback} (log provider; queue pending at the end ${a.osPush.pending ?? '–'}, dead letters ${a.osPush.deadLetters ?? '–'}). Duplicates: ${a.duplicateMessages} messages (${a.duplicateReceipts} extra receipts). Anomalies: ${a.idMismatches} id mismatches, ${a.unknownReceipts} unknown receipts, ${a.fallbackButReceived} fallback yet received, ${a.droppedButReceived} dropped yet received, ${a.fallbackWhileConnected} fallback while the user was connected.`,
  );
  if (!out.trendsJudged)
    lines.push(
      `Memory: the run is shorter than 3 minutes, so warm-up (JIT, pools, Go's heap target) still dominates its second half: the slopes are reported, not judged.`,
    );
  for (const [label, t] of Object.entries(out.trends)) {
    const r = t.rss;
    const h = t.heap;
    if (r.note) {
      lines.push(`Memory ${label}: not judged (${t.basis}: ${r.note}).`);
      continue;
    }
    const word = !out.trendsJudged ? 'not judged' : t.flagged ? '**TREND**' : 'no trend';
    lines.push(
      `Memory ${label}: ${word}; ${t.basis} ${f(r.slopeMBPerMin, 2)} ± ${f(r.slopeSEMBPerMin, 2)} MB/min over the second half (projected ${f(r.projectedMBOverRun, 1)} MB over the run, limit ${f(r.limitMB, 1)} MB = 10% of ${f(r.meanMB, 1)} MB)${h ? `; heap used after GC ${f(h.slopeMBPerMin, 2)} ± ${f(h.slopeSEMBPerMin, 2)} MB/min (projected ${f(h.projectedMBOverRun, 1)} MB, limit ${f(h.limitMB, 1)} MB)` : ''}.`,
    );
  }
  const lag = Object.entries(out.lagMaxMs)
    .map(([label, v]) => `${label} ${f(v, 0)} ms (${f(out.lagWorstP99Ms[label], 0)})`)
    .join(', ');
  lines.push(
    `Event-loop lag, max over the run (the worst window's p99 in brackets): ${lag}; an idle canary process on the same machine: ${f(out.canaryLagMaxMs, 0)} ms.`,
  );
  lines.push(
    `Verdict: **${out.pass ? 'PASS' : 'FAIL'}**${out.failures.length ? ` (${out.failures.join('; ')})` : ''}.`,
  );
  return lines;
}

export function toMarkdown(out) {
  const s = out.settings;
  const parts = [];
  parts.push(
    `# Soak: ${s.minutes} min, ${s.clients} clients, ${s.rate} messages/s, churn ${s.churn}/s, ${s.edges} edges`,
  );
  parts.push(
    `Run ${out.at} on ${out.machine.cores} cores (${out.machine.cpuModel}), Node ${out.versions.node}, nats-server ${out.versions['nats-server']}. Method: [docs/soak.md](../../docs/soak.md).`,
  );
  parts.push('## Verdict');
  parts.push(
    verdictLines(out)
      .map((l) => `- ${l}`)
      .join('\n'),
  );

  parts.push('## Traffic per window');
  parts.push(
    'Messages are placed in the window in which they were due; latency is POST (due time) to receipt at the client. "missing" are delivered outcomes not received; "closed" the part of them explained by a close of the recipient\'s socket.',
  );
  parts.push(
    table(
      [
        'window',
        'sent',
        'delivered',
        'fallback',
        'dropped',
        'HTTP err',
        'received',
        'missing (closed)',
        'p50 ms',
        'p99 ms',
        'max ms',
        'connected (per edge)',
        'churned',
      ],
      out.windows.map((w) => [
        `${w.fromS}–${w.toS} s`,
        w.sent,
        w.delivered,
        w.fallback,
        w.dropped,
        w.httpErrors,
        w.received,
        `${w.missing} (${w.closed})`,
        f(w.latency.p50Ms, 2),
        f(w.latency.p99Ms, 2),
        f(w.latency.maxMs, 1),
        w.connectedPerEdge
          ? `${w.connected} (${w.connectedPerEdge.join(' + ')})`
          : (w.connected ?? '–'),
        w.churned ?? '–',
      ]),
    ),
  );

  parts.push(
    `Overall POST→receipt: p50 ${f(out.latency.p50Ms, 2)} ms, p99 ${f(out.latency.p99Ms, 2)} ms, max ${f(out.latency.maxMs, 1)} ms over ${out.latency.n} received.${out.probes.count ? ` The ${out.probes.messagesLeftOutOfLatency} messages due during the ${out.probes.count} memory probes (forced full GCs, second half, one process at a time, ${f(Math.min(...out.probes.msEach), 0)}–${f(Math.max(...out.probes.msEach), 0)} ms each) are left out of the latency columns; with them: p99 ${f(out.latencyWithProbes.p99Ms, 2)} ms, max ${f(out.latencyWithProbes.maxMs, 1)} ms.` : ''}`,
  );
  const labels = out.processes.map((p) => p.label);
  parts.push('## Memory per window (MB)');
  parts.push(
    "RSS at the window's end from /proc; in the second half, in brackets, right after a forced full GC: RSS / RSS less the heap's free space / heap used.",
  );
  parts.push(
    table(
      ['t s', ...labels],
      out.windows.map((w) => [
        w.toS,
        ...labels.map((l) => {
          const p = w.processes?.[l];
          if (!p) return '–';
          return p.afterGc
            ? `${f(p.rssMB)} (${f(p.afterGc.rssMB)} / ${f(p.afterGc.retainedMB)} / ${f(p.afterGc.heapUsedMB)})`
            : f(p.rssMB);
        }),
      ]),
    ),
  );
  const nodeLabels = labels.filter((l) => l !== 'nats-server');
  parts.push('## Event-loop lag per window (p99 / max ms) and CPU %');
  parts.push(
    table(
      [
        't s',
        ...nodeLabels.map((l) => `${l} lag`),
        'canary lag',
        ...labels.map((l) => `${l} CPU %`),
      ],
      out.windows.map((w) => [
        w.toS,
        ...nodeLabels.map((l) => {
          const p = w.processes?.[l];
          return p ? `${f(p.lagP99Ms, 1)} / ${f(p.lagMaxMs, 1)}` : '–';
        }),
        w.canary ? `${f(w.canary.lagP99Ms, 1)} / ${f(w.canary.lagMaxMs, 1)}` : '–',
        ...labels.map((l) => f(w.processes?.[l]?.cpuPct, 0)),
      ]),
    ),
  );
  parts.push('## Memory trend (least squares over the second half)');
  parts.push(
    'Flagged when slope × run length exceeds the limit (10% of the process\'s mean) and the slope is at least 2 standard errors above zero. One point per window of the second half, right after a forced full GC (Node apps: `gc()` through the probe preload, one process at a time; nats-server: Go\'s pprof heap profile with `?gc=1`). "RSS − free heap" is RSS less the heap\'s resident but unused space (V8 resizes its young generation, and Go keeps freed spans, in steps of tens of MB that move RSS without any change in what is retained); "heap" is heap used (Go: HeapAlloc). Both are held to the rule. "RSS after GC" and "every sample" (all 2-second RSS samples of the half, sawtooth and all) are context. Without the probe (`--no-gc-probe`) the basis is the RSS floor, the lowest 2-second sample of each window.',
  );
  parts.push(
    table(
      [
        'process',
        'basis',
        'mean MB',
        'MB/min ± SE',
        'projected / limit MB',
        'heap MB/min ± SE',
        'heap projected / limit MB',
        'RSS after GC MB/min',
        'RSS MB/min (every sample)',
        'trend',
      ],
      Object.entries(out.trends).map(([l, t]) => [
        l,
        t.basis,
        f(t.rss.meanMB),
        `${f(t.rss.slopeMBPerMin, 2)} ± ${f(t.rss.slopeSEMBPerMin, 2)}`,
        `${f(t.rss.projectedMBOverRun, 1)} / ${f(t.rss.limitMB, 1)}`,
        t.heap ? `${f(t.heap.slopeMBPerMin, 2)} ± ${f(t.heap.slopeSEMBPerMin, 2)}` : '–',
        t.heap ? `${f(t.heap.projectedMBOverRun, 1)} / ${f(t.heap.limitMB, 1)}` : '–',
        f(t.rssAfterGc?.slopeMBPerMin, 2),
        f(t.everySample?.slopeMBPerMin, 2),
        !out.trendsJudged ? 'not judged' : t.flagged ? '**yes**' : 'no',
      ]),
      ['l', 'l'],
    ),
  );
  const a = out.accounting;
  parts.push('## Accounting');
  parts.push(
    [
      `- Outcomes: ${JSON.stringify(a.byOutcome)}`,
      `- HTTP errors by status: ${JSON.stringify(a.httpErrorsByStatus)}`,
      `- Missing deliveries explained by a close: ${a.deliveredThenClosed} (by who closed: ${JSON.stringify(a.closedBy)}; close − due, ms: ${JSON.stringify(a.closeOffsetMs)})`,
      `- Their events (connects c with the edge index, closes x, ms from the due time): ${JSON.stringify(a.closedExamples)}`,
      `- Unexplained (delivered, never received, no close near it): ${a.lost}${a.lostExamples.length ? `, e.g. ${JSON.stringify(a.lostExamples)}` : ''}`,
      `- Fallback while connected: ${a.fallbackWhileConnected}${a.fallbackWhileConnectedExamples.length ? `, e.g. ${JSON.stringify(a.fallbackWhileConnectedExamples)}` : ''}`,
      `- Push API's own count (switchboard_push_recipients_total): ${JSON.stringify(a.pushApiCount)}`,
      `- Clients: ${JSON.stringify(out.clients)}`,
    ].join('\n'),
  );
  parts.push('## What the apps logged (warn and above)');
  parts.push(
    Object.entries(out.logs)
      .map(
        ([l, s]) =>
          `- ${l}: ${s.counts.warn} warn, ${s.counts.error} error, ${s.counts.fatal} fatal, ${s.counts.other} other lines${
            Object.keys(s.byMessage).length
              ? `: ${Object.entries(s.byMessage)
                  .map(([m, n]) => `${m} ×${n}`)
                  .join('; ')}`
              : ''
          }`,
      )
      .join('\n'),
  );
  return `${parts.join('\n\n')}\n`;
}
